"""A per-process guard that keeps each campaign within its segments per second.

Fan-out plans send times at the campaign's rate, but tasks reach the sender
with jitter (cold starts, a slow write, a retry), and late sends would catch
up in a burst. The guard spaces each campaign's sends in this process at
least `segments / rate` seconds apart (a leaky bucket), waiting for the next
free moment, up to a limit after which the task is retried later. Spacing,
rather than a count per window, also absorbs the few milliseconds between the
guard and Twilio's accept.

In production several sender instances share a campaign, so each guard sees
only its share; there the queue's max dispatches per second (one queue per
sender, sized to its MPS) caps the total. Locally one process sends, so the
guard alone keeps the rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A little slower than the rate, so jitter after the guard cannot add up to
# more than `rate` sends inside one second.
SPACING_MARGIN = 1.06


class RateGuard:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free: dict[str, float] = {}

    def acquire(self, key: str, rate: float, weight: int, max_wait: float) -> bool:
        """Reserve the next moment for `weight` segments of `key`, then wait
        for it; False (nothing reserved) when it is more than `max_wait` away."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_free.get(key, now))
            if start - now > max_wait:
                return False
            self._next_free[key] = start + max(weight, 1) / rate * SPACING_MARGIN
        if start > now:
            self._sleep(start - now)
        return True
