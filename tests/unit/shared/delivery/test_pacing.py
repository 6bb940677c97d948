"""Pacing: send times back to back at the campaign's rate (segments per second)."""

from __future__ import annotations

import math
from bisect import bisect_left
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.delivery.pacing import plan_send_times, span_seconds

BEGIN = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
ONE_SECOND = timedelta(seconds=1)


def seconds_after_begin(times: list[datetime]) -> list[float]:
    return [(t - BEGIN).total_seconds() for t in times]


def most_in_one_second(times: list[datetime]) -> int:
    """The most send times any half-open window [t, t + 1 s) holds.

    The fullest window can always be slid right until it starts at a send time.
    """
    ordered = sorted(times)
    return max(
        (bisect_left(ordered, t + ONE_SECOND) - i for i, t in enumerate(ordered)),
        default=0,
    )


def test_single_segment_messages_go_back_to_back_at_the_rate() -> None:
    times = plan_send_times(BEGIN, [1, 1, 1, 1], rate=4)
    assert seconds_after_begin(times) == [0.0, 0.25, 0.5, 0.75]


def test_the_first_message_starts_at_begin() -> None:
    assert plan_send_times(BEGIN, [3], rate=1) == [BEGIN]


def test_no_messages_no_times() -> None:
    assert plan_send_times(BEGIN, [], rate=10) == []


def test_a_long_message_takes_as_many_slots_as_it_has_segments() -> None:
    times = plan_send_times(BEGIN, [3, 1, 2, 1], rate=2)
    assert seconds_after_begin(times) == [0.0, 1.5, 2.0, 3.0]


def test_zero_segment_entries_take_no_slot() -> None:
    # Fan-out plans skipped messages with 0 segments: they must not use the rate.
    times = plan_send_times(BEGIN, [1, 0, 1], rate=1)
    assert seconds_after_begin(times) == [0.0, 1.0, 1.0]


def test_a_span_is_segments_over_rate() -> None:
    assert span_seconds(30, 10) == 3
    assert span_seconds(1, 4) == 0.25
    assert span_seconds(0, 10) == 0


def test_a_batch_span_ends_where_the_next_batch_would_begin() -> None:
    segments = [2, 1, 3]
    end = BEGIN + timedelta(seconds=span_seconds(sum(segments), 2))
    assert plan_send_times(BEGIN, [*segments, 1], rate=2)[-1] == end


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=400),
    rate=st.integers(min_value=1, max_value=100),
)
def test_no_one_second_window_holds_more_than_rate_single_segment_sends(
    count: int, rate: int
) -> None:
    times = plan_send_times(BEGIN, [1] * count, rate)
    assert most_in_one_second(times) <= rate
    # ...and the rate is used, not wasted: a full window holds exactly `rate`.
    if count >= rate:
        assert most_in_one_second(times) == rate


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=300),
    rate=st.floats(min_value=0.1, max_value=50, allow_nan=False),
)
def test_a_fractional_rate_holds_at_most_its_ceiling_per_second(
    count: int, rate: float
) -> None:
    times = plan_send_times(BEGIN, [1] * count, rate)
    assert most_in_one_second(times) <= math.ceil(rate)


@settings(max_examples=200, deadline=None)
@given(
    segments=st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=60),
    rate=st.integers(min_value=1, max_value=50),
)
def test_multi_segment_messages_are_spaced_by_their_segments(
    segments: list[int], rate: int
) -> None:
    times = plan_send_times(BEGIN, segments, rate)
    assert times == sorted(times)
    for i, size in enumerate(segments[:-1]):
        gap = (times[i + 1] - times[i]).total_seconds()
        assert abs(gap - size / rate) < 1e-6
    # The pacing docstring's bound: a window holds at most rate + (k - 1)
    # segment starts, where k is the longest message.
    for i, start in enumerate(times):
        in_window = [
            s
            for t, s in zip(times, segments, strict=True)
            if start <= t < start + ONE_SECOND
        ]
        assert sum(in_window) <= rate + max(segments) - 1, (i, in_window)
