"""The local dispatcher behaves as the deployed Cloud Tasks queue does.

Its settings are the ones infra/ deploys; retries follow RetryConfig with
max_doublings; dispatches come from a token bucket that allows a burst; a task
name stays taken for a tombstone window after the task ends, then frees. Time
is an injected clock here, never a measured gap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local import stack
from local.queue_settings import deployed_queue_settings, variable_defaults
from local.task_dispatcher import (
    DispatcherConfig,
    TaskDispatcher,
    TaskSpec,
    TokenBucket,
    config_from_args,
    default_burst_size,
    parse_args,
    retry_delay,
)
from tests.conftest import SleepingClock

T0 = 1_900_000_000.0  # the injected wall clock's start (epoch seconds)


FakeClock = SleepingClock


# --- the deployed settings ---------------------------------------------------------


def test_the_dispatcher_defaults_are_the_deployed_queue_settings() -> None:
    deployed = deployed_queue_settings()
    defaults = asdict(DispatcherConfig())
    assert {name: defaults[name] for name in deployed} == deployed


def test_the_deployed_settings_are_read_from_terraform() -> None:
    tf = variable_defaults()
    assert deployed_queue_settings() == {
        "max_dispatches_per_second": float(tf["tasks_max_dispatches_per_second"]),
        "max_concurrent": tf["tasks_max_concurrent_dispatches"],
        "max_attempts": tf["tasks_max_attempts"],
        "min_backoff": float(tf["tasks_min_backoff"].removesuffix("s")),
        "max_backoff": float(tf["tasks_max_backoff"].removesuffix("s")),
        "max_doublings": tf["tasks_max_doublings"],
        "queue_name": tf["tasks_queue_name"],
    }


def test_the_stack_starts_the_dispatcher_with_the_deployed_settings() -> None:
    assert stack.dispatcher_settings({}) == deployed_queue_settings()
    faster = stack.dispatcher_settings({"LOCAL_TASKS_MAX_DPS": "500"})
    assert faster["max_dispatches_per_second"] == "500"


def test_the_command_line_defaults_are_the_config_defaults() -> None:
    assert config_from_args(parse_args([])) == DispatcherConfig()


# --- retries: RetryConfig with max_doublings -----------------------------------------


def test_retry_intervals_follow_the_documented_example() -> None:
    # Cloud Tasks' RetryConfig docs: 10 s min, 300 s max, 3 doublings.
    delays = [retry_delay(n, 10, 300, 3) for n in range(8)]
    assert delays == [10, 20, 40, 80, 160, 240, 300, 300]


def test_retry_intervals_of_the_deployed_queue() -> None:
    config = DispatcherConfig()
    delays = [
        retry_delay(n, config.min_backoff, config.max_backoff, config.max_doublings)
        for n in range(config.max_attempts - 1)
    ]
    assert delays[:10] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert delays[-1] == 300 and len(delays) == 29


def test_max_doublings_zero_grows_linearly_from_the_start() -> None:
    assert [retry_delay(n, 5, 300, 0) for n in range(4)] == [5, 10, 15, 20]


# --- the token bucket ---------------------------------------------------------


def test_a_full_bucket_lets_a_burst_go_at_once_then_paces_by_the_rate() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=10, burst=5, clock=clock, sleep=clock.sleep)

    waits = [bucket.reserve() for _ in range(8)]

    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1, 0.2, 0.3])


def test_an_idle_bucket_refills_up_to_its_burst_and_no_more() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=10, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.reserve()
    clock.now += 0.3  # three tokens back
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])
    clock.now += 3600  # an hour idle still holds only the burst
    assert [bucket.reserve() for _ in range(6)] == pytest.approx([0] * 5 + [0.1])


def test_acquire_waits_for_its_reserved_token() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate=4, burst=1, clock=clock, sleep=clock.sleep)
    granted = [bucket.acquire() for _ in range(3)]
    assert granted == pytest.approx([0.0, 0.25, 0.5])
    assert clock.slept == pytest.approx([0.25, 0.25])


def test_the_default_burst_is_picked_from_the_rate() -> None:
    assert [default_burst_size(r) for r in (0.5, 3, 10, 500)] == [1, 3, 10, 100]
    assert DispatcherConfig(max_dispatches_per_second=10).burst_size == 10
    assert DispatcherConfig(max_burst_size=7).burst_size == 7
    with pytest.raises(ValueError):
        DispatcherConfig(max_burst_size=501)


# --- the dispatcher with an injected clock ---------------------------------------


class Target:
    """Answers each task from its plan of statuses (then 200)."""

    def __init__(self) -> None:
        self.plan: dict[str, list[int]] = {}
        self.hits: list[str] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                name = self.headers["X-CloudTasks-TaskName"]
                target.hits.append(name)
                planned = target.plan.get(name)
                self.send_response(planned.pop(0) if planned else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/send"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    served = Target()
    yield served
    served.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def start(clock: FakeClock, **settings: float) -> TaskDispatcher:
    config = DispatcherConfig(**{"max_concurrent": 2, **settings})  # type: ignore[arg-type]
    dispatcher = TaskDispatcher(config, clock=clock)
    dispatcher.start()
    return dispatcher


def spec(name: str, url: str, eta: float = T0) -> TaskSpec:
    return TaskSpec(name=name, url=url, body=b"{}", eta=eta, headers={})


def test_a_finished_name_is_taken_for_the_tombstone_window_then_free(
    clock: FakeClock, target: Target
) -> None:
    dispatcher = start(clock, tombstone_seconds=60)
    try:
        assert dispatcher.create([spec("t", target.url)]) == (1, 0)
        assert dispatcher.wait_idle(10)
        clock.now += 59
        assert dispatcher.create([spec("t", target.url, clock.now)]) == (0, 1)
        clock.now += 1
        assert dispatcher.create([spec("t", target.url, clock.now)]) == (1, 0)
        assert dispatcher.wait_idle(10)
    finally:
        dispatcher.stop()
    assert target.hits == ["t", "t"]


def test_the_default_tombstone_is_about_an_hour(
    clock: FakeClock, target: Target
) -> None:
    dispatcher = start(clock)
    try:
        dispatcher.create([spec("h", target.url)])
        assert dispatcher.wait_idle(10)
        clock.now += 3599
        assert dispatcher.create([spec("h", target.url, clock.now)]) == (0, 1)
        clock.now += 1
        assert dispatcher.create([spec("h", target.url, clock.now)]) == (1, 0)
    finally:
        dispatcher.stop()


def test_a_pending_name_is_never_free(clock: FakeClock, target: Target) -> None:
    dispatcher = start(clock, tombstone_seconds=1)
    try:
        later = T0 + 86_400
        dispatcher.create([spec("p", target.url, later)])
        clock.now += 3600
        assert dispatcher.create([spec("p", target.url, later)]) == (0, 1)
    finally:
        dispatcher.stop()


def test_a_failed_task_is_retried_after_min_backoff_on_the_clock(
    clock: FakeClock, target: Target
) -> None:
    target.plan["r"] = [503, 503]
    dispatcher = start(clock, min_backoff=2, max_backoff=300, max_doublings=6)
    try:
        dispatcher.create([spec("r", target.url)])
        wait_for_retries(dispatcher, 1)
        [pending] = dispatcher.list_tasks("pending")
        assert pending["eta"] == T0 + 2  # not yet due on the frozen clock
        clock.now += 2
        dispatcher.wake()
        wait_for_retries(dispatcher, 2)
        [pending] = dispatcher.list_tasks("pending")
        assert pending["eta"] == T0 + 2 + 4
    finally:
        dispatcher.stop()
    assert target.hits == ["r", "r"]


def wait_for_retries(dispatcher: TaskDispatcher, count: int) -> None:
    """Wait (bounded) until the dispatcher has settled `count` failed attempts."""
    deadline = time.monotonic() + 10
    while not settled(dispatcher.stats(), count):
        assert time.monotonic() < deadline, dispatcher.stats()
        time.sleep(0.01)


def settled(stats: dict[str, int], retries: int) -> bool:
    return stats["retries"] >= retries and stats["in_flight"] == 0
