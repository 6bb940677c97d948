"""Pacing: how sends are spread so a campaign keeps its rate.

`rate_limit_mps` counts segments per second, at Twilio's accept time: no
one-second window of accept times may hold more than the rate.

Plans. Every plan here is one budget: per campaign, the first free instant
`next_free`. Taking a plan of `seconds` from it, `earliest` at the soonest,
reserves the interval

    begin = max(next_free, earliest);  end = begin + seconds

and moves `next_free` to `end` (`next_interval`). Inside an interval each
message starts after the one before, its segments over the planned rate
later, and no sooner than its segments fit the guard's window stretched by
the allowance (`plan_offsets`; one message at a time: `steady_span`). The
planned rate is the rate less `LATENCY_ALLOWANCE` (`planned_rate`): the
guard below sustains only rate / (1 + the send's latency), and a plan faster
than the guard would pile sends up in it until they are refused and
retried; a plan that reaches the guard on time never waits in it while a
send takes at most the allowance. Three users hold the budget in different
places:

- Fan-out keeps it on a cursor document per launch (shared/store/campaigns.py
  owns its layout), read and moved in one transaction per batch, with
  earliest = now + a lead for writing and enqueueing the batch. Reservations
  never overlap, so batches fanned out in parallel never share a second; a
  redelivered batch finds its reservation recorded under its batch number and
  reuses it, so it plans the same times again. Across two batches a window
  can hold k - 1 segments more when a k-segment message opens the second
  batch; the guard holds it back.
- The event router keeps it in memory per instance (`PacingLedger`): a cursor
  document would take one transaction per event on one document, and
  Firestore sustains about one write per second per document, so a campaign
  answering a busy event type would be throttled by its own pacing. With N
  router instances the plans add up to N × the rate at most; the guard holds
  them to the rate.
- The sender's `RateGuard` is the last step before Twilio and the one that
  makes the rate exact, per campaign, in memory, on a monotonic clock. What
  Twilio's accept time will be is unknown, only that it lies between the
  send's start and its response. So a send counts from the moment the guard
  admits it, while it is in flight, and for `ACCEPT_WINDOW` (one second)
  after its response came back; a send of k segments starts only when the
  segments so counted plus k stay within the rate. Why that is exact: take
  any one-second window of accept times and, of the sends accepted in it, the
  one that started last, j. Every other send i in it was accepted less than
  a second before j was, so after j's start less one second, and its response
  came after its accept: when j was admitted, i was in flight or had ended
  within the last second, so it was counted. However long the requests take.
  A send whose outcome is unknown (a timeout, a 5xx: Twilio may still accept
  it) stays counted as in flight for a while longer (`finish(hold=...)`).
  The guard also spaces a campaign's sends by their segments over the rate,
  so a backlog goes out evenly, not in a burst; it holds each send until it
  fits, up to a limit after which the task is retried later. The cost: a
  backlog goes at rate / (1 + latency), the latency being from admission to
  the response (tens of ms locally; Twilio's API often 0.1–0.3 s).
  The guard sees only its own process: with several sender instances each
  one's guard holds only its own sends to the rate (docs/architecture.md §8
  says what bounds the total then).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

# The window of Twilio accept times the rate is counted over.
ACCEPT_WINDOW = 1.0
# Seconds per second of plan the plans leave for a send's own latency (the
# guard's rate is rate / (1 + latency)): plans keep to 1 / 1.05 of the rate,
# as fast as the guard as long as a send takes at most 50 ms.
LATENCY_ALLOWANCE = 0.05
# A send the sender never finished (a crash between admission and answer)
# stops counting as in flight after this long: the sender's request deadline.
FLIGHT_LIMIT = 60.0

# An instant: a datetime (planned send times) or monotonic seconds (the guard).
Instant = TypeVar("Instant", datetime, float)


def span_seconds(weight: float, rate: float) -> float:
    """How long `weight` segments take at `rate` per second."""
    return weight / rate


def planned_rate(rate: float) -> float:
    """The rate plans keep to: the campaign's, less the latency allowance."""
    return rate / (1 + LATENCY_ALLOWANCE)


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


def plan_window(rate: float) -> tuple[int, float]:
    """(capacity, length) of the windows a plan fills: the guard's, with the
    latency allowance, so a plan the guard receives on time never waits."""
    capacity, length = window_size(rate, ACCEPT_WINDOW)
    return capacity, length * (1 + LATENCY_ALLOWANCE)


def plan_offsets(segments: Sequence[int], rate: float) -> tuple[list[float], float]:
    """Seconds after an interval's begin at which each message starts, and the
    interval's length: each at the planned rate after the one before, and no
    sooner than its segments fit the plan's window (`plan_window`). Entries
    of 0 segments (messages that will not be sent) take no time."""
    capacity, length = plan_window(rate)
    starts: list[tuple[float, int]] = []
    offsets: list[float] = []
    free = 0.0
    for count in segments:
        if count <= 0:
            offsets.append(free)
            continue
        weight = min(count, capacity)
        start = earliest_start(starts, free, weight, capacity, length)
        offsets.append(start)
        starts.append((start, weight))
        free = start + span_seconds(count, planned_rate(rate))
    return offsets, free


def plan_send_times(
    begin: datetime, segments: Sequence[int], rate: float
) -> list[datetime]:
    """Send time of each message from `begin` at the campaign's `rate`
    (`plan_offsets`)."""
    offsets, _ = plan_offsets(segments, rate)
    return [_after(begin, offset) for offset in offsets]


def steady_span(weight: int, rate: float) -> float:
    """The plan's time for one message of `weight` segments in a stream of
    such messages: at the planned rate, and no more of them per plan window
    than fit in it whole."""
    capacity, length = plan_window(rate)
    per_window = max(1, capacity // max(weight, 1))
    return max(span_seconds(weight, planned_rate(rate)), length / per_window)


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

    `starts` are (instant, weight) in order of instant; each counts until its
    instant + `length`. `weight` must not exceed `capacity`.
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


@dataclass(eq=False)
class SendSlot:
    """One send the guard let through: in flight until `finish`, and counted
    as in flight until `until` at the latest."""

    key: str
    start: float
    weight: int
    until: float


class _Book:
    """One campaign's sends that still count: in flight, or ended less than
    the window ago; and its spacing cursor."""

    def __init__(self) -> None:
        self.in_flight: list[SendSlot] = []
        self.ended: list[tuple[float, int]] = []  # (end, weight), by end
        self.next_free: float | None = None

    def end(self, slot: SendSlot, at: float) -> None:
        if slot in self.in_flight:
            self.in_flight.remove(slot)
            bisect.insort(self.ended, (at, slot.weight))

    def forget_before(self, now: float, length: float) -> None:
        for slot in [s for s in self.in_flight if s.until <= now]:
            self.end(slot, slot.until)
        gone = 0
        while gone < len(self.ended) and self.ended[gone][0] + length <= now:
            gone += 1
        del self.ended[:gone]

    def next_change(self) -> float | None:
        """When an in-flight send stops counting as such without a finish."""
        return min((s.until for s in self.in_flight), default=None)

    def soonest(
        self, now: float, weight: int, capacity: int, length: float
    ) -> tuple[float, float | None]:
        """(at best, for sure): the soonest start if every send in flight
        ended now, and the soonest start while they stay in flight (None:
        not before one of them ends)."""
        not_before = now if self.next_free is None else max(now, self.next_free)
        flying = sum(s.weight for s in self.in_flight)
        ended_now = sorted(self.ended + [(now, s.weight) for s in self.in_flight])
        at_best = earliest_start(ended_now, not_before, weight, capacity, length)
        if flying + weight > capacity:
            return at_best, None
        room = capacity - flying
        return at_best, earliest_start(self.ended, not_before, weight, room, length)


class RateGuard:
    """Holds each campaign's sends in this process to its rate, in segments,
    counted at Twilio's accept time (module docstring).

    `acquire` admits a send and returns its slot; the caller must `finish`
    the slot when Twilio's answer is in (or the request failed)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        flight_limit: float = FLIGHT_LIMIT,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._flight_limit = flight_limit
        # Finishes notify under this lock; reentrant so a test's `wait` may
        # finish sends itself.
        self._changed = threading.Condition(threading.RLock())
        self._wait = wait or self._changed.wait
        self._books: dict[str, _Book] = {}

    def acquire(
        self, key: str, rate: float, weight: int, max_wait: float
    ) -> SendSlot | None:
        """Reserve the soonest moment `weight` segments of `key` fit, then
        wait for it; None (nothing reserved) when it is more than `max_wait`
        away. A message of more segments than the window holds goes alone."""
        capacity, length = window_size(rate, ACCEPT_WINDOW)
        weight = min(max(weight, 1), capacity)
        with self._changed:
            deadline = self._clock() + max_wait
            slot = self._reserve(key, rate, weight, (capacity, length), deadline)
        if slot is not None:
            pause = slot.start - self._clock()
            if pause > 0:
                self._sleep(pause)
        return slot

    def _reserve(
        self,
        key: str,
        rate: float,
        weight: int,
        window: tuple[int, float],
        deadline: float,
    ) -> SendSlot | None:
        capacity, length = window
        book = self._books.setdefault(key, _Book())
        while True:
            now = self._clock()
            book.forget_before(now, length)
            at_best, for_sure = book.soonest(now, weight, capacity, length)
            if at_best > deadline:
                return None
            if for_sure is not None and for_sure <= deadline:
                break
            # Only a send in flight ending can make room in time.
            change = book.next_change()
            until = deadline if change is None else min(deadline, change)
            if now >= deadline:
                return None
            self._wait(until - now)
        slot = SendSlot(key, for_sure, weight, for_sure + self._flight_limit)
        book.in_flight.append(slot)
        book.next_free = for_sure + span_seconds(weight, rate)
        return slot

    def finish(self, slot: SendSlot, hold: float = 0.0) -> None:
        """The send's answer is in: it counts as ended now and for the window
        after. `hold` > 0: the outcome is unknown (Twilio may still accept
        it), so it stays in flight `hold` seconds more."""
        with self._changed:
            book = self._books[slot.key]
            now = self._clock()
            if hold > 0:
                slot.until = now + hold
            else:
                book.end(slot, now)
            self._changed.notify_all()

    def backlog(self, key: str) -> float:
        """Seconds until the next send of `key` could start by spacing alone."""
        with self._changed:
            book = self._books.get(key)
            if book is None or book.next_free is None:
                return 0.0
            return max(0.0, book.next_free - self._clock())
