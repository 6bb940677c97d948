"""A per-instance cache whose entries live at most `ttl` seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    """Entries are loaded once per key at a time: callers that find an entry
    expired while another caller is loading it wait for that load and take
    its value if it started after they asked, so a busy instance reads an
    expired document about once instead of once per concurrent request, and
    nobody gets a value older than a read of their own would have been."""

    def __init__(
        self,
        ttl: float,
        load: Callable[[str], T | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, T | None]] = {}
        self._loading: dict[str, threading.Lock] = {}

    def get(self, key: str) -> T | None:
        asked = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            loading = self._loading.setdefault(key, threading.Lock())
        if hit and asked - hit[0] < self._ttl:
            return hit[1]
        with loading:
            with self._lock:
                hit = self._entries.get(key)
            if hit and hit[0] >= asked:
                # Loaded by another caller after we asked: as fresh as our own.
                return hit[1]
            started = self._clock()
            value = self._load(key)
            with self._lock:
                self._entries[key] = (started, value)
            return value

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
