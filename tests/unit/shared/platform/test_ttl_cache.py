"""The per-instance TTL cache: fresh entries are served, expired ones are
loaded again, and concurrent callers share one load instead of each reading."""

from __future__ import annotations

import threading

from shared.platform.ttl_cache import TtlCache

WAIT = 10.0  # a bound on each wait, never a way to synchronise


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.asked_by: list[str] = []
        self.second_caller_asked = threading.Event()

    def __call__(self) -> float:
        name = threading.current_thread().name
        self.asked_by.append(name)
        if name == "second":
            self.second_caller_asked.set()
        return self.now


def counted_cache(ttl: float) -> tuple[TtlCache[str], FakeClock, list[str]]:
    """A cache on a fake clock whose loader records each load and numbers
    the values it returns."""
    clock = FakeClock()
    loads: list[str] = []

    def load(key: str) -> str:
        loads.append(key)
        return f"{key}#{len(loads)}"

    return TtlCache(ttl, load, clock=clock), clock, loads


def test_a_fresh_entry_is_served_and_an_expired_one_is_loaded_again() -> None:
    cache, clock, loads = counted_cache(2.0)
    assert cache.get("c1") == "c1#1"
    clock.now += 1.9
    assert cache.get("c1") == "c1#1"
    clock.now += 0.2
    assert cache.get("c1") == "c1#2"
    assert loads == ["c1", "c1"]


def test_an_invalidated_entry_is_read_again() -> None:
    cache, clock, loads = counted_cache(60.0)
    cache.get("c1")
    cache.invalidate("c1")
    assert cache.get("c1") == "c1#2"


def test_a_caller_arriving_during_a_load_waits_for_it_instead_of_reading() -> None:
    clock = FakeClock()
    first_loading = threading.Event()
    loads: list[str] = []
    results: dict[str, str | None] = {}

    def load(key: str) -> str:
        loads.append(threading.current_thread().name)
        first_loading.set()
        # The first load finishes only once the second caller has asked.
        assert clock.second_caller_asked.wait(WAIT)
        return f"{key}@{len(loads)}"

    cache = TtlCache(60.0, load, clock=clock)

    def get(name: str) -> None:
        results[name] = cache.get("c1")

    first = threading.Thread(target=get, args=("first",), name="first")
    first.start()
    assert first_loading.wait(WAIT)
    second = threading.Thread(target=get, args=("second",), name="second")
    second.start()
    first.join(WAIT)
    second.join(WAIT)

    assert loads == ["first"]
    assert results == {"first": "c1@1", "second": "c1@1"}


def test_a_load_that_started_before_the_caller_asked_is_not_taken() -> None:
    """With ttl 0 every get must see a read that began after it asked."""
    cache, clock, loads = counted_cache(0.0)
    assert cache.get("c1") == "c1#1"
    clock.now += 0.001
    assert cache.get("c1") == "c1#2"
