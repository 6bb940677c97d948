"""The sender's rate guard, counted where the rate is defined: at Twilio's
accept time, which lies anywhere between a send's start and its response.

A small discrete-event simulation drives the real guard: requests arrive,
each send takes its own latency, Twilio accepts it at any instant inside it,
and the guard learns only when the response comes back. No one-second window
of accept times may hold more than the rate, in segments, however long the
requests take; a backlog still goes out at >= 0.9 of the rate, and a plan
made by fan-out or the router never waits in the guard (so never piles up
into refusals and retries).
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.delivery.pacing import (
    LATENCY_ALLOWANCE,
    RateGuard,
    SendSlot,
    plan_offsets,
    steady_span,
)
from tests.conftest import SleepingClock

# Windows a hair shorter than one second: edges are exact only up to float
# rounding.
EPSILON = 1e-9


@dataclass(frozen=True)
class Request:
    gap: float  # after the previous request arrived
    weight: int
    latency: float  # from the send's start to Twilio's response
    accept: float  # where in [start, response] Twilio accepts it, 0..1
    unknown: bool = False  # the response is a timeout: outcome unknown


@dataclass(frozen=True)
class Sent:
    start: float
    accepted: float
    weight: int


@dataclass
class Simulation:
    """One campaign's requests through the guard on a simulated clock.

    Requests are handled in arrival order. A send's response comes back at
    start + latency, when the guard is told (`finish`); a guard waiting for
    room lets simulated time pass to the next response."""

    hold: float = 3.0
    now: float = 0.0
    responses: list[tuple[float, int, SendSlot, bool]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    refused: int = 0
    waits: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.guard = RateGuard(
            clock=lambda: self.now, sleep=lambda _s: None, wait=self._wait
        )

    def _respond_until(self, instant: float) -> None:
        while self.responses and self.responses[0][0] <= instant:
            at, _, slot, unknown = heapq.heappop(self.responses)
            self.now = max(self.now, at)
            self.guard.finish(slot, self.hold if unknown else 0.0)
        self.now = max(self.now, instant)

    def _wait(self, timeout: float) -> bool:
        # Called with the guard's lock held, as Condition.wait would be.
        limit = self.now + timeout
        if self.responses and self.responses[0][0] <= limit:
            self._respond_until(self.responses[0][0])
            return True
        self.now = limit
        return False

    def run(
        self, rate: float, requests: list[Request], max_wait: float = 1e9
    ) -> list[Sent]:
        arrived = 0.0
        for request in requests:
            arrived += request.gap
            self._respond_until(arrived)
            slot = self.guard.acquire("c", rate, request.weight, max_wait)
            if slot is None:
                self.refused += 1
                continue
            self.waits.append(slot.start - arrived)
            response = slot.start + request.latency
            window = request.latency + (self.hold if request.unknown else 0.0)
            accepted = slot.start + request.accept * window
            self.sent.append(Sent(slot.start, accepted, max(request.weight, 1)))
            entry = (response, len(self.sent), slot, request.unknown)
            heapq.heappush(self.responses, entry)
        self._respond_until(math.inf)
        return self.sent


def most_in_window(
    moments: list[tuple[float, int]], width: float = 1.0 - EPSILON
) -> int:
    """The most weight whose moment lies in any half-open [t, t + width)."""
    return max(
        (sum(w for m, w in moments if t <= m < t + width) for t, _ in moments),
        default=0,
    )


def accepted(sends: list[Sent]) -> list[tuple[float, int]]:
    return [(s.accepted, s.weight) for s in sends]


def within(capacity: int, requests: list[Request]) -> list[Request]:
    """The requests with no message longer than the window holds (one such
    goes alone in its window: test_each_send_waits_until_...)."""
    return [replace(r, weight=min(r.weight, capacity)) for r in requests]


requests = st.lists(
    st.builds(
        Request,
        # Bursts (0) and pauses alike.
        gap=st.sampled_from([0.0, 0.0, 0.001, 0.01, 0.05, 0.2, 0.7, 1.3]),
        weight=st.integers(min_value=0, max_value=4),
        # From a local request to a slow Twilio answer.
        latency=st.sampled_from([0.0, 0.002, 0.02, 0.06, 0.15, 0.4, 1.2]),
        accept=st.floats(min_value=0, max_value=1),
        unknown=st.booleans() | st.just(False),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(rate=st.integers(min_value=1, max_value=40), requests=requests)
def test_no_second_of_accept_times_holds_more_than_the_rate_in_segments(
    rate: int, requests: list[Request]
) -> None:
    sends = Simulation().run(rate, within(rate, requests))
    assert len(sends) == len(requests)
    assert most_in_window(accepted(sends)) <= rate


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(min_value=0.2, max_value=30, allow_nan=False),
    requests=requests,
)
def test_a_fractional_rate_holds_its_whole_segments_per_second(
    rate: float, requests: list[Request]
) -> None:
    capacity = max(1, math.floor(rate))
    sends = Simulation().run(rate, within(capacity, requests))
    assert most_in_window(accepted(sends)) <= capacity
    # Under one per second: one send per 1 / rate seconds of accept times.
    assert most_in_window(accepted(sends), max(1.0, 1 / rate) - EPSILON) <= capacity


@settings(max_examples=150, deadline=None)
@given(rate=st.integers(min_value=1, max_value=40), requests=requests)
def test_refusals_keep_the_rate_and_reserve_nothing(
    rate: int, requests: list[Request]
) -> None:
    simulation = Simulation()
    sends = simulation.run(rate, within(rate, requests), max_wait=0.3)
    assert len(sends) + simulation.refused == len(requests)
    assert max(simulation.waits, default=0.0) <= 0.3 + EPSILON
    assert most_in_window(accepted(sends)) <= rate


@settings(max_examples=200, deadline=None)
@given(
    per_message=st.integers(min_value=1, max_value=4),
    messages_per_window=st.integers(min_value=1, max_value=15),
    count=st.integers(min_value=2, max_value=200),
    latency=st.floats(min_value=0, max_value=0.1),
)
def test_a_backlog_goes_out_at_no_less_than_nine_tenths_of_the_rate(
    per_message: int, messages_per_window: int, count: int, latency: float
) -> None:
    """Sends all due at once, each of k segments with k dividing the rate and
    taking up to 100 ms: the mean over the span (the last start ends it) is
    at least 0.9 of the rate, and never above it."""
    rate = per_message * messages_per_window
    backlog = [Request(0.0, per_message, latency, 1.0)] * count
    sends = Simulation().run(rate, backlog)
    span = sends[-1].start - sends[0].start
    mean = per_message * (count - 1) / span
    assert mean >= 0.9 * rate
    assert mean <= rate * (1 + EPSILON)


def arriving_on_plan(
    offsets: list[float], weights: list[int], latencies: list[float]
) -> list[Request]:
    gaps = [
        later - earlier
        for earlier, later in zip([0.0, *offsets], offsets, strict=False)
    ]
    return [
        Request(gap, weight, latency, 1.0)
        for gap, weight, latency in zip(gaps, weights, latencies, strict=False)
    ]


latencies_within_allowance = st.lists(
    st.floats(min_value=0, max_value=LATENCY_ALLOWANCE), min_size=300
)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([1, 2, 5, 10, 25, 50]),
    weights=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=300),
    latencies=latencies_within_allowance,
)
def test_a_fanout_plan_never_waits_in_the_guard(
    rate: int, weights: list[int], latencies: list[float]
) -> None:
    """Tasks arriving on fan-out's plan of one batch (any mix of lengths),
    each send taking up to the latency allowance: no send waits, however long
    the campaign, so the plan never piles up into refusals and retries."""
    offsets, span = plan_offsets(weights, rate)
    simulation = Simulation()
    simulation.run(rate, arriving_on_plan(offsets, weights, latencies))
    assert max(simulation.waits) <= 1e-6
    assert span >= offsets[-1]


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([1, 2, 5, 10, 25, 50]),
    weight=st.integers(min_value=1, max_value=3),
    count=st.integers(min_value=1, max_value=300),
    latencies=latencies_within_allowance,
)
def test_a_router_stream_never_waits_in_the_guard(
    rate: int, weight: int, count: int, latencies: list[float]
) -> None:
    """The router spaces each message by `steady_span`: a stream of messages
    of one length (two segments at 25/s too) never waits in the guard."""
    offsets = [i * steady_span(weight, rate) for i in range(count)]
    simulation = Simulation()
    simulation.run(rate, arriving_on_plan(offsets, [weight] * count, latencies))
    assert max(simulation.waits) <= 1e-6


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([10, 25, 50]),
    weights=st.lists(st.integers(min_value=1, max_value=2), min_size=200, max_size=300),
)
def test_a_plan_loses_only_what_long_messages_leave_unused(
    rate: int, weights: list[int]
) -> None:
    """The plan's mean is the rate less the allowance, less at most k - 1
    segments per window that a k-segment message could not fill."""
    offsets, span = plan_offsets(weights, rate)
    unused = max(weights) - 1
    assert sum(weights) / span >= (rate - unused) / (1 + LATENCY_ALLOWANCE) - 1e-6
    if unused == 0:
        assert sum(weights) / span >= 0.95 * rate


@pytest.mark.parametrize(
    ("rate", "weights", "slept"),
    [
        # Spaced by 1/rate, then the third waits until the first ended a
        # second ago (each ends as it starts here).
        (2, [1, 1, 1], [0.5, 0.5]),
        # 3 + 2 > 4: not at 0.75 s (its spacing) but a second after the first.
        (4, [3, 2], [1.0]),
        # An empty message counts as one segment.
        (1, [0, 0], [1.0]),
        # A message longer than the rate goes alone in its second.
        (2, [5, 1], [1.0]),
    ],
    ids=["rate-then-window", "long-message", "empty-message", "over-the-rate"],
)
def test_each_send_waits_until_its_segments_fit_the_window(
    rate: int, weights: list[int], slept: list[float]
) -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    for weight in weights:
        slot = guard.acquire("c", rate=rate, weight=weight, max_wait=10)
        assert slot is not None
        guard.finish(slot)
    assert clock.slept == pytest.approx(slept)


def passing(clock: SleepingClock) -> Callable[[float], bool]:
    """A wait for a finish that lets the whole timeout pass, none coming."""

    def wait(timeout: float) -> bool:
        clock.now += timeout
        return False

    return wait


def test_a_send_in_flight_counts_until_a_second_after_its_response() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep, wait=passing(clock))
    first = guard.acquire("c", rate=1, weight=1, max_wait=10)
    assert first is not None
    # Twilio has not answered the first: it may accept it at any moment, so
    # no room opens however long the second waits.
    assert guard.acquire("c", rate=1, weight=1, max_wait=3) is None
    assert clock.now == 103.0
    guard.finish(first)  # answered at 103
    second = guard.acquire("c", rate=1, weight=1, max_wait=3)
    assert second is not None
    assert second.start == 104.0


def test_an_unknown_outcome_stays_in_flight_for_the_hold() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep, wait=passing(clock))
    first = guard.acquire("c", rate=1, weight=1, max_wait=10)
    assert first is not None
    guard.finish(first, hold=5.0)
    # In flight until 105, then counted a second more.
    assert guard.acquire("c", rate=1, weight=1, max_wait=5.5) is None
    # It waited for the hold to pass, then found no room before 106.
    assert clock.now == 105.0
    clock.now = 100.0
    second = guard.acquire("c", rate=1, weight=1, max_wait=6)
    assert second is not None
    assert second.start == 106.0


def test_a_send_never_finished_stops_counting_after_the_flight_limit() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(
        clock=clock, sleep=clock.sleep, flight_limit=30.0, wait=passing(clock)
    )
    assert guard.acquire("c", rate=1, weight=1, max_wait=10) is not None
    clock.now += 30.0
    assert guard.acquire("c", rate=1, weight=1, max_wait=0.5) is None
    clock.now += 1.0
    assert guard.acquire("c", rate=1, weight=1, max_wait=0) is not None


def test_the_guard_refuses_a_wait_beyond_max_wait_and_reserves_nothing() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    first = guard.acquire("c", rate=1, weight=1, max_wait=1)
    assert first is not None
    guard.finish(first)
    assert guard.acquire("c", rate=1, weight=1, max_wait=0.5) is None
    assert guard.acquire("c", rate=1, weight=1, max_wait=0.5) is None
    assert clock.slept == []
    clock.now += 1
    # Refusals reserved nothing: the second is free again.
    assert guard.acquire("c", rate=1, weight=1, max_wait=0) is not None
    assert clock.slept == []


def test_the_backlog_is_the_wait_spacing_alone_imposes() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=lambda _s: None)
    assert guard.backlog("c") == 0.0
    for _ in range(4):
        slot = guard.acquire("c", rate=2, weight=1, max_wait=10)
        assert slot is not None
        guard.finish(slot)
    assert guard.backlog("c") == pytest.approx(2.0)
    assert guard.backlog("other") == 0.0


def test_the_guard_keeps_campaigns_apart() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    assert guard.acquire("a", rate=1, weight=1, max_wait=0) is not None
    assert guard.acquire("b", rate=1, weight=1, max_wait=0) is not None
    assert clock.slept == []


def test_a_finish_wakes_a_send_waiting_on_another_thread() -> None:
    clock = SleepingClock(100.0)
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    first = guard.acquire("c", rate=1, weight=1, max_wait=10)
    assert first is not None
    got: list[SendSlot | None] = []
    waiter = threading.Thread(
        target=lambda: got.append(guard.acquire("c", rate=1, weight=1, max_wait=10))
    )
    waiter.start()
    guard.finish(first)
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert got[0] is not None
    assert got[0].start == 101.0


class SharedClock:
    """Simulated seconds shared by threads: each read moves it on a little,
    and a sleep moves it to the sleeper's start."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += 0.003
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def test_concurrent_senders_never_overfill_a_second_of_accepts() -> None:
    """Threads sending at once: whether Twilio accepts each send as it starts
    or as it answers, no second holds more than the rate."""
    clock = SharedClock()
    guard = RateGuard(clock=clock, sleep=clock.sleep)
    lock = threading.Lock()
    spans: list[tuple[float, float, int]] = []

    def send_many() -> None:
        for weight in [1, 2, 1, 3] * 10:
            slot = guard.acquire("c", rate=5, weight=weight, max_wait=1e9)
            assert slot is not None
            answered = clock()
            guard.finish(slot)
            with lock:
                spans.append((slot.start, answered, weight))

    threads = [threading.Thread(target=send_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(spans) == 160
    assert most_in_window([(start, w) for start, _, w in spans]) <= 5
    assert most_in_window([(answered, w) for _, answered, w in spans]) <= 5
