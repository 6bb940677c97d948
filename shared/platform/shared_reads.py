"""Identical reads made at once share one answer, never an older one.

A busy dashboard asks for the same list page many times a second. Each asker
of a key waits for the read of that key in progress, if any, then takes the
answer of the next read, which one of them makes: a read that started after
it asked, so as fresh as a read of its own. Nothing is kept once no caller
waits on a key: this is not a cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Key:
    turn: threading.Lock = field(default_factory=threading.Lock)
    callers: int = 0
    started: int = 0  # reads of this key started so far
    last: tuple[int, Any] | None = None  # (number of the read, its answer)


class SharedReads(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[Hashable, _Key] = {}

    def read(self, key: Hashable, load: Callable[[], T]) -> T:
        """`load()`, or the answer of a load of `key` begun after this call."""
        with self._lock:
            state = self._keys.setdefault(key, _Key())
            state.callers += 1
            asked = state.started
        try:
            with state.turn:
                if state.last is not None and state.last[0] > asked:
                    answer: T = state.last[1]
                    return answer
                with self._lock:
                    state.started += 1
                    number = state.started
                answer = load()
                state.last = (number, answer)
                return answer
        finally:
            with self._lock:
                state.callers -= 1
                if state.callers == 0:
                    del self._keys[key]
