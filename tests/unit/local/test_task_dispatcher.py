"""The local Cloud Tasks stand-in, against an in-process recording target."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from local.task_dispatcher import (
    DispatcherConfig,
    DispatcherServer,
    InvalidTask,
    TokenBucket,
    config_from_args,
    parse_args,
    parse_task,
)


@dataclass
class Hit:
    at: float
    path: str
    headers: dict[str, str]
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class Target:
    """A loopback HTTP server that records requests and answers from a plan.

    ``plan[name]`` is a list of statuses returned in order for that task name
    (then 200); ``default_status`` answers the others; ``delay`` slows handling.
    """

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.plan: dict[str, list[int]] = {}
        self.default_status = 200
        self.delay = 0.0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                target.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/send"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        raw = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        name = h.headers.get("X-CloudTasks-TaskName", "")
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.hits.append(Hit(arrived, h.path, dict(h.headers), json.loads(raw)))
            planned = self.plan.get(name)
            status = planned.pop(0) if planned else self.default_status
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def hits_for(self, name: str) -> list[Hit]:
        with self.lock:
            return [x for x in self.hits if x.headers["X-CloudTasks-TaskName"] == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


def start_dispatcher(
    clock: Callable[[], float] = time.time, **overrides: Any
) -> DispatcherServer:
    cfg: dict[str, Any] = {
        "max_dispatches_per_second": 500.0,
        "max_concurrent": 8,
        "max_attempts": 5,
        "min_backoff": 0.05,
        "max_backoff": 1.0,
        "dispatch_timeout": 5.0,
    }
    cfg.update(overrides)
    return DispatcherServer(DispatcherConfig(**cfg), clock=clock).start()


@pytest.fixture
def dispatcher() -> Iterator[DispatcherServer]:
    server = start_dispatcher()
    yield server
    server.stop()


def task(name: str, url: str, at: datetime | None = None, **extra: Any) -> dict:
    return {
        "name": name,
        "url": url,
        "body": {"message_id": name},
        "schedule_time": at.isoformat() if at else None,
        **extra,
    }


def create(server: DispatcherServer, *tasks: dict) -> dict:
    resp = requests.post(
        f"{server.url}/v1/tasks:batchCreate", json={"tasks": list(tasks)}, timeout=5
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def get(server: DispatcherServer, path: str) -> Any:
    resp = requests.get(f"{server.url}{path}", timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_healthz_and_empty_stats(dispatcher: DispatcherServer) -> None:
    assert get(dispatcher, "/healthz") == {"ok": True}
    stats = get(dispatcher, "/v1/tasks/stats")
    for key in ("pending", "in_flight", "succeeded", "failed", "retries", "duplicates"):
        assert stats[key] == 0


def test_dispatches_body_and_cloud_tasks_headers(
    dispatcher: DispatcherServer, target: Target
) -> None:
    at = datetime.now(UTC)
    extra = {"headers": {"X-Custom": "yes"}}
    assert create(dispatcher, task("t-1", target.url, at, **extra)) == {
        "created": 1,
        "duplicates": 0,
    }
    assert dispatcher.dispatcher.wait_idle(5)
    [hit] = target.hits
    assert hit.path == "/send"
    assert hit.body == {"message_id": "t-1"}
    h = hit.headers
    assert h["Content-Type"] == "application/json"
    assert h["X-CloudTasks-QueueName"] == "message-sends"
    assert h["X-CloudTasks-TaskName"] == "t-1"
    assert h["X-CloudTasks-TaskRetryCount"] == "0"
    assert h["X-CloudTasks-TaskExecutionCount"] == "0"
    assert float(h["X-CloudTasks-TaskETA"]) == pytest.approx(at.timestamp(), abs=1e-3)
    assert h["X-Custom"] == "yes"
    stats = get(dispatcher, "/v1/tasks/stats")
    assert stats["succeeded"] == 1 and stats["pending"] == stats["in_flight"] == 0


class ManualClock:
    """The dispatcher's clock (epoch seconds), moved only by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def at(self, offset: float = 0.0) -> datetime:
        """A schedule time; a microsecond early, so rounding never puts a
        task due "now" after the clock."""
        return datetime.fromtimestamp(self.now + offset - 1e-6, UTC)


def wait_until(condition: Any, timeout: float = 5.0) -> Any:
    """Poll a real condition (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clocked(clock: ManualClock) -> Iterator[DispatcherServer]:
    server = start_dispatcher(clock=clock)
    yield server
    server.stop()


_probes = iter(range(10**6))


def release_pass(server: DispatcherServer, target: Target, clock: ManualClock) -> None:
    """Barrier: a task due now has been dispatched, so the scheduler has
    released everything due at the clock's current time."""
    name = f"probe-{next(_probes)}"
    create(server, task(name, target.url, clock.at()))
    wait_until(lambda: target.hits_for(name))


def eta_of(hit: Hit) -> float:
    return float(hit.headers["X-CloudTasks-TaskETA"])


def test_schedule_time_is_honoured(
    clocked: DispatcherServer, target: Target, clock: ManualClock
) -> None:
    at = clock.at(0.5)
    create(clocked, task("later", target.url, at))
    release_pass(clocked, target, clock)
    assert target.hits_for("later") == []
    assert get(clocked, "/v1/tasks/stats")["pending"] == 1
    clock.advance(0.5)
    [hit] = wait_until(lambda: target.hits_for("later"))
    assert eta_of(hit) == pytest.approx(at.timestamp(), abs=2e-6)


def test_dedupes_by_name_in_every_state(
    dispatcher: DispatcherServer, target: Target
) -> None:
    first = create(dispatcher, task("a", target.url), task("a", target.url))
    assert first == {"created": 1, "duplicates": 1}
    assert dispatcher.dispatcher.wait_idle(5)
    # Done tasks keep their names reserved.
    again = create(dispatcher, task("a", target.url), task("b", target.url))
    assert again == {"created": 1, "duplicates": 1}
    assert dispatcher.dispatcher.wait_idle(5)
    assert len(target.hits_for("a")) == 1
    assert len(target.hits_for("b")) == 1
    assert get(dispatcher, "/v1/tasks/stats")["duplicates"] == 2


def test_retries_with_backoff_then_succeeds(
    clocked: DispatcherServer, target: Target, clock: ManualClock
) -> None:
    target.plan["flaky"] = [503, 503, 429]
    create(clocked, task("flaky", target.url, clock.at()))
    # min_backoff 0.05 doubling: 0.05, 0.1, 0.2 on the dispatcher's clock.
    due: list[float] = []
    for attempt, backoff in enumerate((0.05, 0.1, 0.2), start=1):
        wait_until(lambda n=attempt: get(clocked, "/v1/tasks/stats")["retries"] == n)
        due.append(clock.now + backoff)  # the clock stands still meanwhile
        clock.advance(backoff - 0.001)
        release_pass(clocked, target, clock)
        assert len(target.hits_for("flaky")) == attempt, "retried before its backoff"
        clock.advance(0.002)  # past the ETA, float rounding aside
        wait_until(lambda n=attempt: len(target.hits_for("flaky")) == n + 1)
    assert clocked.dispatcher.wait_idle(5)
    hits = target.hits_for("flaky")
    assert [h.headers["X-CloudTasks-TaskRetryCount"] for h in hits] == [
        "0",
        "1",
        "2",
        "3",
    ]
    assert [h.headers["X-CloudTasks-TaskExecutionCount"] for h in hits] == [
        "0",
        "1",
        "2",
        "3",
    ]
    assert hits[1].headers["X-CloudTasks-TaskPreviousResponse"] == "503"
    assert [eta_of(h) for h in hits[1:]] == pytest.approx(due, abs=2e-6)
    stats = get(clocked, "/v1/tasks/stats")
    assert stats["retries"] == 3 and stats["succeeded"] == 4 and stats["failed"] == 0


def test_max_attempts_then_failed_and_listed(target: Target) -> None:
    server = start_dispatcher(max_attempts=3, min_backoff=0.01, max_backoff=0.02)
    try:
        target.default_status = 500
        create(server, task("doomed", target.url))
        # A closed port: connection errors are retried like any failure.
        create(server, task("unreachable", "http://127.0.0.1:9/send"))
        assert server.dispatcher.wait_idle(5)
        assert len(target.hits_for("doomed")) == 3
        failed = {t["name"]: t for t in get(server, "/v1/tasks?state=failed")}
        assert failed["doomed"]["attempts"] == 3
        assert failed["doomed"]["last_status"] == 500
        assert failed["doomed"]["url"] == target.url
        assert failed["unreachable"]["attempts"] == 3
        assert failed["unreachable"]["last_status"] is None
        stats = get(server, "/v1/tasks/stats")
        assert stats["failed"] == 2 and stats["retries"] == 4
        # A failed name stays reserved.
        assert create(server, task("doomed", target.url))["duplicates"] == 1
    finally:
        server.stop()


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(
        sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times)
    )


def test_rate_cap_holds_in_every_one_second_window(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts: list[float] = []
    acquire = TokenBucket.acquire

    def recording_acquire(self: TokenBucket) -> float:
        started = acquire(self)
        starts.append(started)
        return started

    monkeypatch.setattr(TokenBucket, "acquire", recording_acquire)
    # A bucket of one token: no burst, so dispatches are spaced by the rate.
    server = start_dispatcher(
        max_dispatches_per_second=20, max_burst_size=1, max_concurrent=8
    )
    try:
        create(server, *(task(f"r{i}", target.url) for i in range(60)))
        assert server.dispatcher.wait_idle(10)
    finally:
        server.stop()
    arrivals = [h.at for h in target.hits]
    assert len(arrivals) == len(starts) == 60
    # Tokens as the bucket grants them: its burst (1) plus the rate in any
    # window. (Arrivals add loopback and GIL jitter; the clock-injected tests in
    # test_task_dispatcher_semantics.py pin the bucket down exactly.)
    assert _max_in_window(starts, 1.0) <= 21
    assert max(arrivals) - min(arrivals) >= 2.0


def test_max_concurrent_in_flight(target: Target) -> None:
    server = start_dispatcher(max_concurrent=2)
    try:
        target.delay = 0.1
        create(server, *(task(f"c{i}", target.url) for i in range(6)))
        assert server.dispatcher.wait_idle(5)
    finally:
        server.stop()
    assert len(target.hits) == 6
    assert target.max_active == 2


def test_purge_drops_pending_and_forgets_names(
    dispatcher: DispatcherServer, target: Target
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    create(dispatcher, *(task(f"p{i}", target.url, later) for i in range(5)))
    assert get(dispatcher, "/v1/tasks/stats")["pending"] == 5
    resp = requests.post(f"{dispatcher.url}/v1/tasks:purge", timeout=5)
    assert resp.json() == {"purged": 5}
    assert get(dispatcher, "/v1/tasks/stats")["pending"] == 0
    assert create(dispatcher, task("p0", target.url)) == {
        "created": 1,
        "duplicates": 0,
    }
    assert dispatcher.dispatcher.wait_idle(5)
    assert len(target.hits) == 1


def test_duplicate_after_success_redelivers_once(target: Target) -> None:
    server = start_dispatcher(duplicate_after_success_rate=1.0, seed=7)
    try:
        create(server, task("dup", target.url))
        assert server.dispatcher.wait_idle(5)
        stats = get(server, "/v1/tasks/stats")
    finally:
        server.stop()
    hits = target.hits_for("dup")
    assert [h.headers["X-CloudTasks-TaskRetryCount"] for h in hits] == ["0", "1"]
    assert stats["succeeded"] == 1 and stats["redelivered"] == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"tasks": [{"name": "bad name!", "url": "http://x/", "body": {}}]},
        {"tasks": [{"name": "n", "url": "ftp://x/", "body": {}}]},
        {"tasks": [{"name": "n", "url": "http://x/", "body": [1]}]},
        {
            "tasks": [
                {
                    "name": "n",
                    "url": "http://x/",
                    "body": {},
                    "schedule_time": "2030-01-01T00:00:00",
                }
            ]
        },
        {"nope": []},
    ],
)
def test_invalid_batches_are_rejected_whole(
    dispatcher: DispatcherServer, payload: dict
) -> None:
    resp = requests.post(
        f"{dispatcher.url}/v1/tasks:batchCreate", json=payload, timeout=5
    )
    assert resp.status_code == 400
    assert "error" in resp.json()
    assert get(dispatcher, "/v1/tasks/stats")["pending"] == 0


def test_parse_task_accepts_rfc3339_zulu_with_nanoseconds() -> None:
    spec = parse_task(
        {
            "name": "z",
            "url": "http://127.0.0.1/x",
            "body": {"message_id": "z"},
            "schedule_time": "2030-01-01T00:00:00.123456789Z",
        }
    )
    assert spec.eta == pytest.approx(
        datetime(2030, 1, 1, 0, 0, 0, 123456, tzinfo=UTC).timestamp()
    )
    assert json.loads(spec.body) == {"message_id": "z"}
    with pytest.raises(InvalidTask):
        parse_task({"name": "z", "url": "http://x/", "body": {}, "schedule_time": 5})


def test_cli_arguments_build_the_config() -> None:
    args = parse_args(
        [
            "--port",
            "0",
            "--max-dispatches-per-second",
            "50",
            "--max-concurrent",
            "4",
            "--max-attempts",
            "3",
            "--min-backoff",
            "0.2",
            "--max-backoff",
            "5",
            "--duplicate-after-success-rate",
            "0.1",
            "--seed",
            "42",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.max_dispatches_per_second, cfg.max_concurrent, cfg.max_attempts) == (
        50,
        4,
        3,
    )
    assert (cfg.min_backoff, cfg.max_backoff) == (0.2, 5)
    assert (cfg.duplicate_after_success_rate, cfg.seed) == (0.1, 42)
    assert args.host == "127.0.0.1"
    with pytest.raises(ValueError):
        DispatcherConfig(duplicate_after_success_rate=2)
