"""Identical reads at once share one answer, and never one begun before the
caller asked; nothing is kept afterwards."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from shared.platform.shared_reads import SharedReads

WAIT = 10.0  # a bound on each wait, never a way to synchronise


def wait_until(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met")


def callers_of(reads: SharedReads[Any], key: str) -> int:
    with reads._lock:
        state = reads._keys.get(key)
        return state.callers if state else 0


class Loader:
    """Numbers its answers; the first load blocks until released."""

    def __init__(self) -> None:
        self.loads = 0
        self.first_started = threading.Event()
        self.release_first = threading.Event()

    def __call__(self) -> str:
        self.loads += 1
        number = self.loads
        if number == 1:
            self.first_started.set()
            assert self.release_first.wait(WAIT)
        return f"page#{number}"


def test_reads_one_after_another_each_load() -> None:
    reads: SharedReads[str] = SharedReads()
    loader = Loader()
    loader.release_first.set()
    assert reads.read("users", loader) == "page#1"
    assert reads.read("users", loader) == "page#2"
    assert reads._keys == {}


def test_callers_arriving_during_a_read_share_the_next_read() -> None:
    reads: SharedReads[str] = SharedReads()
    loader = Loader()
    answers: dict[str, str] = {}

    def call(name: str) -> None:
        answers[name] = reads.read("users", loader)

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert loader.first_started.wait(WAIT)
    # Two callers ask while the first read runs: its answer may predate them.
    later = [threading.Thread(target=call, args=(n,)) for n in ("b", "c")]
    for thread in later:
        thread.start()
    wait_until(lambda: callers_of(reads, "users") == 3)
    loader.release_first.set()
    for thread in (first, *later):
        thread.join(WAIT)

    assert answers == {"first": "page#1", "b": "page#2", "c": "page#2"}
    assert loader.loads == 2
    assert reads._keys == {}


def test_other_keys_are_read_on_their_own() -> None:
    reads: SharedReads[str] = SharedReads()
    loader = Loader()
    first = threading.Thread(target=reads.read, args=("users", loader))
    first.start()
    assert loader.first_started.wait(WAIT)
    assert reads.read("templates", lambda: "templates page") == "templates page"
    loader.release_first.set()
    first.join(WAIT)


def test_a_failed_read_fails_only_its_caller_and_a_waiter_reads_again() -> None:
    reads: SharedReads[str] = SharedReads()
    started, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def failing() -> str:
        started.set()
        assert release.wait(WAIT)
        raise RuntimeError("datastore blip")

    def first() -> None:
        with pytest.raises(RuntimeError):
            reads.read("users", failing)
        outcomes.append("first failed")

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(WAIT)
    waiter = threading.Thread(
        target=lambda: outcomes.append(reads.read("users", lambda: "page"))
    )
    waiter.start()
    wait_until(lambda: callers_of(reads, "users") == 2)
    release.set()
    thread.join(WAIT)
    waiter.join(WAIT)
    assert sorted(outcomes) == ["first failed", "page"]
    assert reads._keys == {}
