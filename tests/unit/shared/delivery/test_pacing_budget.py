"""The pacing budget: next free instant, intervals, and the in-memory ledger."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.delivery.pacing import (
    PacingLedger,
    next_interval,
    plan_offsets,
    plan_send_times,
    span_seconds,
)

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)

rates = st.floats(min_value=0.5, max_value=500, allow_nan=False)
weights = st.integers(min_value=0, max_value=20)
# Offsets of each request's earliest instant from NOW, in any order: callers'
# clocks and leads differ, and a late request may carry an older `now`.
requests = st.lists(
    st.tuples(st.integers(min_value=0, max_value=600_000), weights),
    min_size=1,
    max_size=40,
)


def test_a_first_interval_begins_at_earliest() -> None:
    begin, end = next_interval(None, NOW, 2.5)
    assert (begin, end) == (NOW, NOW + timedelta(seconds=2.5))


def test_an_interval_begins_at_the_next_free_instant_when_it_is_later() -> None:
    later = NOW + timedelta(seconds=7)
    assert next_interval(later, NOW, 1.0) == (later, later + timedelta(seconds=1))


def test_a_next_free_instant_in_the_past_is_not_used() -> None:
    past = NOW - timedelta(minutes=1)
    assert next_interval(past, NOW, 1.0)[0] == NOW


def test_intervals_work_on_monotonic_seconds_too() -> None:
    assert next_interval(10.0, 4.0, 0.5) == (10.0, 10.5)
    assert next_interval(None, 4.0, 0.5) == (4.0, 4.5)


def test_the_span_is_segments_over_rate() -> None:
    assert span_seconds(2, 4) == 0.5


@given(rate=rates, taken=requests)
def test_ledger_intervals_never_overlap_and_keep_the_rate(
    rate: float, taken: list[tuple[int, int]]
) -> None:
    ledger: PacingLedger[datetime] = PacingLedger()
    begins: list[datetime] = []
    for offset_ms, weight in taken:
        earliest = NOW + timedelta(milliseconds=offset_ms)
        begin = ledger.take("c", earliest, span_seconds(weight, rate))
        assert begin >= earliest
        begins.append(begin)
    for (_, weight), begin, following in zip(taken, begins, begins[1:], strict=False):
        # The next interval starts no sooner than this one's end.
        assert following >= begin + timedelta(seconds=span_seconds(weight, rate))


@given(rate=rates, taken=requests)
def test_the_cursor_arithmetic_and_the_ledger_agree(
    rate: float, taken: list[tuple[int, int]]
) -> None:
    """Fan-out's cursor (next_interval over a stored next_free) and the
    router's ledger plan the same begins for the same requests."""
    ledger: PacingLedger[datetime] = PacingLedger()
    cursor: datetime | None = None
    for offset_ms, weight in taken:
        earliest = NOW + timedelta(milliseconds=offset_ms)
        seconds = span_seconds(weight, rate)
        begin, cursor = next_interval(cursor, earliest, seconds)
        assert ledger.take("c", earliest, seconds) == begin


def test_the_plan_fills_its_interval() -> None:
    segments = [2, 1, 3]
    offsets, span = plan_offsets(segments, 2)
    begin, end = next_interval(None, NOW, span)
    times = plan_send_times(begin, segments, rate=2)
    assert times[0] == begin
    assert times[-1] == begin + timedelta(seconds=offsets[-1])
    assert times[-1] < end


def test_ledger_keys_are_separate_budgets() -> None:
    ledger: PacingLedger[float] = PacingLedger()
    assert ledger.take("a", 0.0, 3.0) == 0.0
    assert ledger.take("a", 0.0, 1.0) == 3.0
    assert ledger.take("b", 0.0, 1.0) == 0.0


def test_concurrent_takes_never_share_an_instant() -> None:
    ledger: PacingLedger[float] = PacingLedger()
    begins: list[float] = []
    record = threading.Lock()

    def take_many() -> None:
        for _ in range(200):
            begin = ledger.take("c", 0.0, 1.0)
            with record:
                begins.append(begin)

    threads = [threading.Thread(target=take_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(begins) == [float(i) for i in range(800)]


def test_take_within_refuses_without_reserving() -> None:
    ledger: PacingLedger[float] = PacingLedger()
    assert ledger.take_within("c", lambda: 0.0, 5.0, max_wait=1.0) == (0.0, 0.0)
    assert ledger.take_within("c", lambda: 0.0, 5.0, max_wait=1.0) is None
    # Refused, so the next free instant is still 5.0.
    assert ledger.take_within("c", lambda: 4.0, 5.0, max_wait=1.0) == (4.0, 5.0)


def test_take_within_accepts_a_wait_of_exactly_max_wait() -> None:
    ledger: PacingLedger[float] = PacingLedger()
    ledger.take("c", 0.0, 2.0)
    assert ledger.take_within("c", lambda: 0.0, 1.0, max_wait=2.0) == (0.0, 2.0)
