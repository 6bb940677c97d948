"""Pacing: how send times are spread so a campaign keeps its rate.

How slots are assigned: `rate_limit_mps` counts segments per second. Each
campaign launch has one pacing cursor document holding `next_at`, the first
free instant. A fan-out batch reserves, in one transaction, the interval
[begin, begin + its segments / rate) where begin = max(next_at, now + lead),
the lead leaving time to write and enqueue the batch, and moves
`next_at` to the end. Inside its interval a batch places its messages back to
back: message i starts at begin + (segments of messages before i) / rate.
Reservations never overlap, so batches fanned out in parallel never share a
second; a redelivered batch finds its reservation recorded under its batch
number and reuses it, so it plans the same times again.

Within that plan a one-second window holds at most `rate` segment starts; a
message of k segments counts whole at its start, so a window can hold up to
k - 1 more when long messages sit at its edge. Single-segment campaigns are
exact. At send time a per-process guard (shared/delivery/rate_guard.py) keeps
late tasks from catching up in a burst.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta


def batch_duration(total_segments: int, rate: float) -> timedelta:
    return timedelta(seconds=total_segments / rate)


def plan_send_times(
    begin: datetime, segments: Sequence[int], rate: float
) -> list[datetime]:
    """Send time of each message, back to back from `begin` at `rate`."""
    times: list[datetime] = []
    used = 0
    for count in segments:
        times.append(begin + timedelta(seconds=used / rate))
        used += count
    return times
