"""Pacing: how sends are spread so a campaign keeps its rate.

`rate_limit_mps` counts segments per second. Every pacer here is one budget:
per campaign, the first free instant `next_free`. Taking `weight` segments
from it, `earliest` at the soonest, reserves the interval

    begin = max(next_free, earliest);  end = begin + weight / rate × margin

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
  messages sit at its edge. Single-segment campaigns are exact.
- The event router keeps it in memory per instance (`PacingLedger`): a cursor
  document would take one transaction per event on one document, and
  Firestore sustains about one write per second per document, so a campaign
  answering a busy event type would be throttled by its own pacing. With N
  router instances a campaign can reach N × its rate at most; the router's
  max instance count bounds N and the send queue's max dispatches per second
  caps the total.
- The sender's `RateGuard` keeps it in memory per process, on a monotonic
  clock, with a margin (`SPACING_MARGIN`): tasks reach the sender with jitter
  (cold starts, a slow write, a retry), and late sends would catch up in a
  burst. It waits for the reserved moment, up to a limit after which the task
  is retried later; spacing a little slower than the rate also absorbs the
  milliseconds between the guard and Twilio's accept. With several sender
  instances each guard sees only its share; the queue's max dispatches per
  second (one queue per sender, sized to its MPS) caps the total.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Generic, TypeVar

# A little slower than the rate, so jitter after the rate guard cannot add up
# to more than `rate` sends inside one second.
SPACING_MARGIN = 1.06

# An instant: a datetime (planned send times) or monotonic seconds (the guard).
Instant = TypeVar("Instant", datetime, float)


def span_seconds(weight: float, rate: float, margin: float = 1.0) -> float:
    """How long `weight` segments take at `rate` per second, spaced by `margin`."""
    return weight / rate * margin


def batch_duration(total_segments: int, rate: float) -> timedelta:
    return timedelta(seconds=span_seconds(total_segments, rate))


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


class RateGuard:
    """Holds each campaign's sends in this process to its rate, with a margin."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._ledger: PacingLedger[float] = PacingLedger()

    def acquire(self, key: str, rate: float, weight: int, max_wait: float) -> bool:
        """Reserve the next moment for `weight` segments of `key`, then wait
        for it; False (nothing reserved) when it is more than `max_wait` away."""
        seconds = span_seconds(max(weight, 1), rate, SPACING_MARGIN)
        taken = self._ledger.take_within(key, self._clock, seconds, max_wait)
        if taken is None:
            return False
        now, start = taken
        if start > now:
            self._sleep(start - now)
        return True
