"""A per-instance cache whose entries live at most `ttl` seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    def __init__(self, ttl: float, load: Callable[[str], T | None]) -> None:
        self._ttl = ttl
        self._load = load
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, T | None]] = {}

    def get(self, key: str) -> T | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        value = self._load(key)
        with self._lock:
            self._entries[key] = (now, value)
        return value

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
