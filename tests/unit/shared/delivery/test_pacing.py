"""Pacing: plans of send times at the campaign's rate (segments per second)."""

from __future__ import annotations

import math
from bisect import bisect_left
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.delivery.pacing import (
    LATENCY_ALLOWANCE,
    plan_offsets,
    plan_send_times,
    plan_window,
    span_seconds,
)

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


# The plan leaves the latency allowance: a second of plan holds 1 / 1.05 of
# the rate, and no plan window (1.05 s) holds more than the rate.
STRETCH = 1 + LATENCY_ALLOWANCE


def test_single_segment_messages_go_back_to_back_at_the_planned_rate() -> None:
    times = plan_send_times(BEGIN, [1, 1, 1, 1], rate=4)
    expected = [i * STRETCH / 4 for i in range(4)]
    assert seconds_after_begin(times) == pytest.approx(expected)


def test_the_first_message_starts_at_begin() -> None:
    assert plan_send_times(BEGIN, [3], rate=1) == [BEGIN]


def test_no_messages_no_times() -> None:
    assert plan_send_times(BEGIN, [], rate=10) == []


def test_a_long_message_waits_until_its_segments_fit_a_window() -> None:
    # Rate 2: the 3-segment message goes alone and takes 3 slots; the
    # 2-segment one waits until the 1-segment one before it leaves its window.
    times = plan_send_times(BEGIN, [3, 1, 2, 1], rate=2)
    expected = [0.0, 1.5 * STRETCH, 2.5 * STRETCH, 3.5 * STRETCH]
    assert seconds_after_begin(times) == pytest.approx(expected)


def test_zero_segment_entries_take_no_slot() -> None:
    # Fan-out plans skipped messages with 0 segments: they must not use the rate.
    times = plan_send_times(BEGIN, [1, 0, 1], rate=1)
    assert seconds_after_begin(times) == pytest.approx([0.0, STRETCH, STRETCH])


def test_a_span_is_segments_over_rate() -> None:
    assert span_seconds(30, 10) == 3
    assert span_seconds(1, 4) == 0.25
    assert span_seconds(0, 10) == 0


def test_a_batch_span_ends_a_plan_slot_after_its_last_start() -> None:
    offsets, span = plan_offsets([2, 1, 3], rate=10)
    assert span == pytest.approx(offsets[-1] + 3 * STRETCH / 10)


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
    # ...and the rate is used, not wasted: a full second holds 1 / 1.05 of it.
    if count >= rate:
        assert most_in_one_second(times) >= math.floor(rate / STRETCH)


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
def test_multi_segment_plans_keep_every_window_within_the_rate(
    segments: list[int], rate: int
) -> None:
    capacity, window = plan_window(rate)
    times = plan_send_times(BEGIN, segments, rate)
    assert times == sorted(times)
    for i, size in enumerate(segments[:-1]):
        gap = (times[i + 1] - times[i]).total_seconds()
        assert gap >= size * STRETCH / rate - 1e-6
    # Exact: no plan window holds more than the rate in segments (a message
    # longer than the rate goes alone and counts as the whole window).
    weights = [min(size, capacity) for size in segments]
    for start in times:
        end = start + timedelta(seconds=window - 1e-6)
        in_window = [w for t, w in zip(times, weights, strict=True) if start <= t < end]
        assert sum(in_window) <= capacity
