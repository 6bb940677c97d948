"""Pacing: how sends are spread so a campaign keeps its rate.

`rate_limit_mps` counts segments per second. Every plan here is one budget:
per campaign, the first free instant `next_free`. Taking `weight` segments
from it, `earliest` at the soonest, reserves the interval

    begin = max(next_free, earliest);  end = begin + weight / rate

and moves `next_free` to `end` (`next_interval`). Inside an interval messages
go back to back: message i starts at begin + (segments before i) / rate
(`plan_send_times`). Three users hold the budget in different places:

- Fan-out keeps it on a cursor document per launch (shared/store/campaigns.py
  owns its layout), read and moved in one transaction per batch, with
  earliest = now + a lead for writing and enqueueing the batch. Reservations
  never overlap, so batches fanned out in parallel never share a second; a
  redelivered batch finds its reservation recorded under its batch number and
  reuses it, so it plans the same times again. Within a plan a one-second
  window holds at most `rate` segment starts; a message of k segments counts
  whole at its start, so a window can hold up to k - 1 more when long
  messages sit at its edge (the sender's guard holds those back). Single-
  segment plans are exact.
- The event router keeps it in memory per instance (`PacingLedger`): a cursor
  document would take one transaction per event on one document, and
  Firestore sustains about one write per second per document, so a campaign
  answering a busy event type would be throttled by its own pacing. With N
  router instances a campaign can reach N × its rate at most; the router's
  max instance count bounds N and the send queue's max dispatches per second
  caps the total.
- The sender's `RateGuard` is the last step before Twilio and the one that
  makes the rate exact: per campaign, in memory, on a monotonic clock, it lets
  a send of `weight` segments start only when the segments started in the
  last `GUARD_WINDOW` seconds plus `weight` stay within the rate
  (`earliest_start`), and no sooner than the previous send's segments over
  the rate (spacing, so a backlog goes out evenly, not in a burst). Plans and
  routers above it may be off by a few segments (a long message at a window's
  edge, tasks arriving with jitter, N router instances); the guard holds each
  send until it fits, up to a limit after which the task is retried later.
  The window is a little over one second so that the milliseconds between the
  guard and Twilio's accept cannot fit one more send into any second of
  accept times; the mean stays at 1 / GUARD_WINDOW of the rate. With several
  sender instances each guard sees only its share; the queue's max
  dispatches per second (one queue per sender, sized to its MPS) caps the
  total.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Generic, TypeVar

# The guard counts segments over a window a little longer than one second:
# the jitter between the guard and Twilio's accept (one request: a few tens of
# ms measured by bench/bench_pacing.py) must not let one more send into any
# second of accept times. The mean rate is 1 / GUARD_WINDOW of the rate.
GUARD_WINDOW = 1.05

# An instant: a datetime (planned send times) or monotonic seconds (the guard).
Instant = TypeVar("Instant", datetime, float)


def span_seconds(weight: float, rate: float) -> float:
    """How long `weight` segments take at `rate` per second."""
    return weight / rate


def _after(instant: Instant, seconds: float) -> Instant:
    if isinstance(instant, datetime):
        return instant + timedelta(seconds=seconds)
    return instant + seconds


def _seconds_between(start: Instant, end: Instant) -> float:
    if isinstance(start, datetime):
        return (end - start).total_seconds()
    return end - start


def next_interval(
    next_free: Instant | None, earliest: Instant, seconds: float
) -> tuple[Instant, Instant]:
    """The (begin, end) of `seconds` taken from the first free instant, no
    sooner than `earliest`; `end` is the budget's next free instant."""
    begin = earliest if next_free is None else max(next_free, earliest)
    return begin, _after(begin, seconds)


def plan_send_times(
    begin: datetime, segments: Sequence[int], rate: float
) -> list[datetime]:
    """Send time of each message, back to back from `begin` at `rate`."""
    times: list[datetime] = []
    used = 0
    for count in segments:
        times.append(_after(begin, span_seconds(used, rate)))
        used += count
    return times


class PacingLedger(Generic[Instant]):
    """The budget in memory: per key, the first free instant, in this process.

    A clock passed as `now` is read under the lock, so reservations follow
    the clock's order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_free: dict[str, Instant] = {}

    def take(self, key: str, now: Instant, seconds: float) -> Instant:
        """Reserve `seconds` for `key` from `now` at the soonest; its begin."""
        with self._lock:
            begin, self._next_free[key] = next_interval(
                self._next_free.get(key), now, seconds
            )
        return begin

    def take_within(
        self, key: str, now: Callable[[], Instant], seconds: float, max_wait: float
    ) -> tuple[Instant, Instant] | None:
        """(now, begin) of a reservation as `take`; None, and nothing
        reserved, when it would begin more than `max_wait` after now."""
        with self._lock:
            earliest = now()
            begin, end = next_interval(self._next_free.get(key), earliest, seconds)
            if _seconds_between(earliest, begin) > max_wait:
                return None
            self._next_free[key] = end
        return earliest, begin


def window_size(rate: float, window: float) -> tuple[int, float]:
    """(capacity, length): at most `capacity` segments may start in any
    `length` seconds. Whole segments: a rate of 10.5 allows 10 per second; a
    rate under one allows one per 1 / rate seconds."""
    capacity = max(1, math.floor(rate))
    return capacity, window * max(1.0, capacity / rate)


def earliest_start(
    starts: Sequence[tuple[float, int]],
    not_before: float,
    weight: int,
    capacity: int,
    length: float,
) -> float:
    """The soonest instant from `not_before` at which `weight` more segments
    keep every window of `length` seconds within `capacity`.

    `starts` are earlier (instant, weight) starts in order, none after
    `not_before`; a start counts until its instant + `length`. `weight` must
    not exceed `capacity`.
    """
    start = not_before
    first = 0
    while first < len(starts) and starts[first][0] + length <= start:
        first += 1
    held = sum(w for _, w in starts[first:])
    while held + weight > capacity:
        # Wait for the oldest start still in the window to leave it.
        start = starts[first][0] + length
        while first < len(starts) and starts[first][0] + length <= start:
            held -= starts[first][1]
            first += 1
    return start


class _Window:
    """One campaign's starts still inside the window, and its spacing cursor."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, int]] = []
        self.next_free: float | None = None

    def forget_before(self, instant: float, length: float) -> None:
        gone = 0
        while gone < len(self.starts) and self.starts[gone][0] + length <= instant:
            gone += 1
        del self.starts[:gone]


class RateGuard:
    """Holds each campaign's sends in this process to its rate, in segments:
    never more than the rate start in any `GUARD_WINDOW` seconds."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = GUARD_WINDOW,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._window = window
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def acquire(self, key: str, rate: float, weight: int, max_wait: float) -> bool:
        """Reserve the soonest moment `weight` segments of `key` fit, then
        wait for it; False (nothing reserved) when it is more than `max_wait`
        away. A message of more segments than the window holds goes alone."""
        capacity, length = window_size(rate, self._window)
        weight = min(max(weight, 1), capacity)
        with self._lock:
            now = self._clock()
            window = self._windows.setdefault(key, _Window())
            window.forget_before(now, length)
            spaced = window.next_free
            not_before = now if spaced is None else max(now, spaced)
            start = earliest_start(window.starts, not_before, weight, capacity, length)
            if start - now > max_wait:
                return False
            window.starts.append((start, weight))
            window.next_free = start + span_seconds(weight, rate)
        if start > now:
            self._sleep(start - now)
        return True
