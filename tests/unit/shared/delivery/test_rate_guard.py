"""The sender's rate guard: never more than the rate, in segments, starts in
any window of GUARD_WINDOW seconds, so no second of Twilio accepts holds more
than the rate; and a backlog still goes at the rate (over the window)."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.delivery.pacing import GUARD_WINDOW, RateGuard, window_size
from tests.conftest import SleepingClock

W = GUARD_WINDOW
# Windows a hair shorter than the guard's: its edge is exact only up to float
# rounding.
EPSILON = 1e-9


class ArrivalClock:
    """Requests arrive at set instants and each waits on its own thread, so
    the clock is where the request arrived, and a sleep only records when
    that request's send starts."""

    def __init__(self) -> None:
        self.now = 0.0
        self.starts: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.starts[-1] = self.now + seconds


def run_guard(
    rate: float, arrivals: list[tuple[float, int]], max_wait: float = 1e9
) -> list[tuple[float, int]]:
    """(start, weight) of each send the guard let through, for requests
    arriving at the given gaps after one another."""
    clock = ArrivalClock()
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    sent: list[tuple[float, int]] = []
    for gap, weight in arrivals:
        clock.now += gap
        clock.starts.append(clock.now)
        if guard.acquire("c", rate, weight, max_wait):
            sent.append((clock.starts[-1], weight))
    return sent


def most_in_window(sends: list[tuple[float, int]], width: float = 1.0) -> int:
    """The most segments whose start lies in any half-open [t, t + width)."""
    return max(
        (sum(w for s, w in sends if t <= s < t + width) for t, _ in sends),
        default=0,
    )


# Gaps between arrivals: bursts (0) and pauses alike.
arrivals = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.001, 0.01, 0.05, 0.2, 0.7, 1.3]),
        st.integers(min_value=0, max_value=4),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(rate=st.integers(min_value=1, max_value=40), requests=arrivals)
def test_no_second_holds_more_than_the_rate_in_segments(
    rate: int, requests: list[tuple[float, int]]
) -> None:
    sends = run_guard(rate, [(gap, min(w, rate)) for gap, w in requests])
    # Empty messages count as one segment.
    counted = [(s, max(w, 1)) for s, w in sends]
    assert most_in_window(counted) <= rate
    # ...and so does every window of GUARD_WINDOW seconds.
    assert most_in_window(counted, W - EPSILON) <= rate


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=40),
    requests=arrivals,
    delays=st.lists(
        st.floats(min_value=0, max_value=W - 1, exclude_max=True), min_size=120
    ),
)
def test_jitter_after_the_guard_under_the_window_margin_keeps_the_rate(
    rate: int, requests: list[tuple[float, int]], delays: list[float]
) -> None:
    """Twilio accepts a send some milliseconds after the guard lets it go; a
    spread of those delays shorter than GUARD_WINDOW - 1 s cannot put more
    than the rate into a second of accept times."""
    sends = run_guard(rate, [(gap, min(w, rate)) for gap, w in requests])
    accepted = [(s + d, max(w, 1)) for (s, w), d in zip(sends, delays, strict=False)]
    assert most_in_window(accepted) <= rate


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.2, max_value=30, allow_nan=False),
    requests=arrivals,
)
def test_a_fractional_rate_holds_its_whole_segments_per_second(
    rate: float, requests: list[tuple[float, int]]
) -> None:
    capacity, length = window_size(rate, W)
    sends = run_guard(rate, [(gap, min(w, capacity)) for gap, w in requests])
    counted = [(s, max(w, 1)) for s, w in sends]
    assert most_in_window(counted) <= max(1, math.floor(rate))
    # Under one per second: one send per 1 / rate seconds, over the window.
    assert most_in_window(counted, length - EPSILON) <= capacity


@settings(max_examples=200, deadline=None)
@given(
    per_message=st.integers(min_value=1, max_value=4),
    messages_per_window=st.integers(min_value=1, max_value=15),
    count=st.integers(min_value=2, max_value=200),
)
def test_a_backlog_goes_out_at_no_less_than_nine_tenths_of_the_rate(
    per_message: int, messages_per_window: int, count: int
) -> None:
    """Sends all due at once, each of k segments with k dividing the rate: the
    mean over the span (the last start ends it) is at least 0.9 of the rate."""
    rate = per_message * messages_per_window
    sends = run_guard(rate, [(0.0, per_message)] * count)
    assert len(sends) == count
    span = sends[-1][0] - sends[0][0]
    mean = per_message * (count - 1) / span
    assert mean >= 0.9 * rate
    assert mean <= rate * (1 + EPSILON)


@pytest.mark.parametrize(
    ("rate", "weights", "slept"),
    [
        # Spaced by 1/rate, then the third waits until the first leaves the
        # window.
        (2, [1, 1, 1], [0.5, W - 0.5]),
        # 3 + 2 > 4: not at 0.75 s (its spacing) but when the first leaves.
        (4, [3, 2], [W]),
        # An empty message counts as one segment.
        (1, [0, 0], [W]),
        # A message longer than the rate goes alone in its window.
        (2, [5, 1], [W]),
    ],
    ids=["rate-then-window", "long-message", "empty-message", "over-the-rate"],
)
def test_each_send_waits_until_its_segments_fit_the_window(
    rate: int, weights: list[int], slept: list[float]
) -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    for weight in weights:
        assert guard.acquire("c", rate=rate, weight=weight, max_wait=10)
    assert clock.slept == pytest.approx(slept)


def test_the_guard_refuses_a_wait_beyond_max_wait_and_reserves_nothing() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    assert guard.acquire("c", rate=1, weight=1, max_wait=1)
    assert not guard.acquire("c", rate=1, weight=1, max_wait=1)
    assert not guard.acquire("c", rate=1, weight=1, max_wait=1)
    assert clock.slept == []
    clock.now += W
    # Refusals reserved nothing: the window is free again.
    assert guard.acquire("c", rate=1, weight=1, max_wait=1)
    assert clock.slept == []


def test_the_guard_keeps_campaigns_apart() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    guard.acquire("a", rate=1, weight=1, max_wait=10)
    guard.acquire("b", rate=1, weight=1, max_wait=10)
    assert clock.slept == []


def test_concurrent_senders_never_overfill_a_window() -> None:
    """Threads acquiring at once on a shared fake clock: every reserved start
    still keeps each window within the rate."""
    lock = threading.Lock()
    starts: list[tuple[float, int]] = []
    local = threading.local()

    def clock() -> float:
        return 0.0

    def sleep(seconds: float) -> None:
        local.slept = seconds

    guard = RateGuard(clock=clock, sleep=sleep)

    def send_many() -> None:
        for weight in [1, 2, 1, 3] * 10:
            local.slept = 0.0
            assert guard.acquire("c", rate=5, weight=weight, max_wait=1e9)
            with lock:
                starts.append((local.slept, weight))

    threads = [threading.Thread(target=send_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 160
    assert most_in_window(starts) <= 5
