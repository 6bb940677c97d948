"""Per-process singletons that are built exactly once, even under threads.

functools.lru_cache may call the builder twice when two threads miss at the
same time; for clients that hold per-process state (a rate guard, a
connection pool) that would split the state. Builders run lazily, after the
server forks its workers, because gRPC channels must not cross a fork.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

T = TypeVar("T")


def once(build: Callable[[], T]) -> Callable[[], T]:
    lock = threading.Lock()
    built: list[T] = []

    @wraps(build)
    def get() -> T:
        if not built:
            with lock:
                if not built:
                    built.append(build())
        return built[0]

    return get
