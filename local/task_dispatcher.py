"""Local stand-in for Cloud Tasks (local tooling only; never deployed).

Run: ``python -m local.task_dispatcher --port 8123``.

It accepts HTTP tasks over a small JSON API and dispatches them the way a Cloud
Tasks queue does (docs/architecture.md §4):

- each task is POSTed to its url at or after its ``schedule_time`` with its JSON
  body and the ``X-CloudTasks-*`` headers;
- a 2xx marks it done; any other status, a connection error or a timeout is
  retried as Cloud Tasks' RetryConfig says: the interval starts at
  ``min_backoff``, doubles ``max_doublings`` times, then grows linearly by
  that last interval, capped at ``max_backoff``, until ``max_attempts``
  (-1: unlimited); then the task is kept as failed;
- names are deduped: a name that is pending or running, or that finished
  (done or failed) less than ``tombstone_seconds`` ago (Cloud Tasks: about an
  hour), is reported as a duplicate and not created again;
- dispatches take tokens from a bucket of ``max_burst_size`` tokens refilled
  at ``max_dispatches_per_second`` (Cloud Tasks' token bucket, so a queue that
  was idle may start a burst at once), with at most ``max_concurrent`` in
  flight.

The defaults are the deployed queue's settings (infra/variables.tf), which the
stack reads at start (``local/queue_settings.py``) and passes in.

API:
  POST /v1/tasks:batchCreate  {"tasks": [{"name", "url", "body",
                                "schedule_time", "headers"}]}
                               -> {"created": n, "duplicates": n}
  GET  /v1/tasks/stats         -> counters
  GET  /v1/tasks?state=failed  -> [{"name", "url", "attempts", "last_status", ...}]
  POST /v1/tasks:purge         -> drops pending tasks and forgets every name
  GET  /healthz

Fault injection: ``--duplicate-after-success-rate X`` re-dispatches a task once
more after a 2xx with probability X (seeded by ``--seed``), with its retry count
increased, like Cloud Tasks' at-least-once delivery.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import queue
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger("local.task_dispatcher")

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
_STATES = ("pending", "running", "done", "failed")


class InvalidTask(ValueError):
    """A task in a batchCreate request is malformed (answered with 400)."""


# Cloud Tasks keeps a finished or deleted task's name for about an hour.
NAME_TOMBSTONE_SECONDS = 3600.0
# Cloud Tasks' largest max_burst_size.
MAX_BURST_SIZE = 500


def default_burst_size(rate: float) -> int:
    """The burst Cloud Tasks picks for a rate (max_burst_size is output only).

    Its rule is not documented: take one second's worth of dispatches, and 100
    at most, the value gcloud reports for a queue at the default 500/s.
    """
    return min(100, max(1, math.ceil(rate)))


@dataclass(frozen=True)
class DispatcherConfig:
    # The deployed send queue's settings (infra/variables.tf); a unit test holds
    # these defaults equal to them.
    max_dispatches_per_second: float = 10.0
    max_concurrent: int = 50
    max_attempts: int = 30
    min_backoff: float = 2.0
    max_backoff: float = 300.0
    max_doublings: int = 6
    max_burst_size: int | None = None  # None: picked from the rate
    tombstone_seconds: float = NAME_TOMBSTONE_SECONDS
    dispatch_timeout: float = 60.0
    duplicate_after_success_rate: float = 0.0
    seed: int | None = None
    queue_name: str = "message-sends"

    @property
    def burst_size(self) -> int:
        if self.max_burst_size is not None:
            return self.max_burst_size
        return default_burst_size(self.max_dispatches_per_second)

    def __post_init__(self) -> None:
        if self.max_dispatches_per_second <= 0:
            raise ValueError("max_dispatches_per_second must be > 0")
        if self.max_concurrent < 1 or not (
            self.max_attempts >= 1 or self.max_attempts == -1
        ):
            raise ValueError("max_concurrent >= 1 and max_attempts >= 1 or -1")
        if self.max_doublings < 0 or self.tombstone_seconds < 0:
            raise ValueError("max_doublings and tombstone_seconds must be >= 0")
        if not 1 <= self.burst_size <= MAX_BURST_SIZE:
            raise ValueError(f"max_burst_size must be in [1, {MAX_BURST_SIZE}]")
        if not 0.0 <= self.duplicate_after_success_rate <= 1.0:
            raise ValueError("duplicate_after_success_rate must be in [0, 1]")


@dataclass(frozen=True)
class TaskSpec:
    """One validated task of a batchCreate request."""

    name: str
    url: str
    body: bytes
    eta: float  # epoch seconds
    headers: dict[str, str]


@dataclass
class _Task:
    spec: TaskSpec
    epoch: int
    eta: float
    state: str = "pending"
    retries: int = 0  # failed attempts so far
    executions: int = 0  # attempts that got an HTTP response
    attempts: int = 0
    last_status: int | None = None
    last_error: str = ""
    redelivered: bool = False
    finished_at: float | None = None  # when it ended done or failed (its tombstone)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "url": self.spec.url,
            "state": self.state,
            "eta": self.eta,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


# (eta, sequence, task, is_redelivery); the sequence keeps tasks uncompared.
_Entry = tuple[float, int, _Task, bool]


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _parse_schedule_time(value: Any) -> float:
    if value is None or value == "":
        return time.time()
    if not isinstance(value, str):
        raise InvalidTask("schedule_time must be an RFC 3339 string or null")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidTask(f"schedule_time is not RFC 3339: {value!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidTask(f"schedule_time has no UTC offset: {value!r}")
    return parsed.astimezone(UTC).timestamp()


def _parse_headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidTask("headers must be an object of strings")
    return dict(value)


def parse_task(raw: Any) -> TaskSpec:
    """Validate one task object of a batchCreate body."""
    if not isinstance(raw, dict):
        raise InvalidTask("each task must be an object")
    name, url, body = raw.get("name"), raw.get("url"), raw.get("body")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidTask(f"task name must match [A-Za-z0-9_-]{{1,500}}: {name!r}")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidTask(f"task url must be http(s): {url!r}")
    if not isinstance(body, dict):
        raise InvalidTask("task body must be a JSON object")
    return TaskSpec(
        name=name,
        url=url,
        body=json.dumps(body, separators=(",", ":")).encode(),
        eta=_parse_schedule_time(raw.get("schedule_time")),
        headers=_parse_headers(raw.get("headers")),
    )


def parse_batch(payload: Any) -> list[TaskSpec]:
    """Validate a whole batchCreate body; nothing is created if one task is bad."""
    if not isinstance(payload, dict) or not isinstance(payload.get("tasks"), list):
        raise InvalidTask('body must be {"tasks": [...]}')
    return [parse_task(raw) for raw in payload["tasks"]]


# --------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------


def retry_delay(
    retry: int, min_backoff: float, max_backoff: float, max_doublings: int
) -> float:
    """Seconds before retry number ``retry`` (0 is the first retry).

    Cloud Tasks' RetryConfig: the interval starts at ``min_backoff``, doubles
    ``max_doublings`` times, then grows linearly by that last interval, and is
    never over ``max_backoff``. With 10 s, 300 s and 3 doublings: 10, 20, 40,
    80, 160, 240, 300, 300, ...
    """
    if retry <= max_doublings:
        delay = min_backoff * 2**retry
    else:
        delay = min_backoff * 2**max_doublings * (retry - max_doublings + 1)
    return min(delay, max_backoff)


class TokenBucket:
    """Cloud Tasks' dispatch limiter: a bucket of up to ``burst`` tokens,
    refilled continuously at ``rate`` per second; each dispatch takes one.

    A caller that finds the bucket empty reserves the next token and waits for
    it, so waiting callers go in order and the long-run rate is exact.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it (0 if one was there)."""
        with self._lock:
            now = self._clock()
            refill = (now - self._updated) * self._rate
            self._tokens = min(float(self._burst), self._tokens + refill)
            self._updated = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def acquire(self) -> float:
        """Block until a token is ours; return when it was granted (the clock's
        time plus the wait: the bucket's own schedule, free of sleep jitter)."""
        granted_after = self.reserve()
        granted_at = self._clock() + granted_after
        if granted_after > 0:
            self._sleep(granted_after)
        return granted_at


# --------------------------------------------------------------------------
# Dispatcher
# --------------------------------------------------------------------------


@dataclass
class _Counters:
    created: int = 0
    duplicates: int = 0
    dispatches: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    redelivered: int = 0


@dataclass
class _Outcome:
    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class TaskDispatcher:
    """The queue: a heap keyed by ETA, a scheduler thread and a worker pool."""

    def __init__(
        self,
        config: DispatcherConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or DispatcherConfig()
        # Wall-clock seconds: ETAs, backoff and name tombstones (tests inject it).
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[_Entry] = []
        self._ready: queue.Queue[_Entry | None] = queue.Queue()
        self._tasks: dict[str, _Task] = {}
        self._seq = 0
        self._epoch = 0
        self._pending = 0
        self._in_flight = 0
        self._counters = _Counters()
        self._rng = random.Random(self.config.seed)
        self._limiter = TokenBucket(
            self.config.max_dispatches_per_second, self.config.burst_size
        )
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._threads.append(
            threading.Thread(target=self._scheduler_loop, name="tasks-scheduler")
        )
        for i in range(self.config.max_concurrent):
            self._threads.append(
                threading.Thread(target=self._worker_loop, name=f"tasks-worker-{i}")
            )
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for _ in range(self.config.max_concurrent):
            self._ready.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    # -- API ---------------------------------------------------------------

    def create(self, specs: Sequence[TaskSpec]) -> tuple[int, int]:
        """Create tasks; return (created, duplicates)."""
        created = duplicates = 0
        with self._cond:
            now = self._clock()
            for spec in specs:
                if not self._name_free_locked(spec.name, now):
                    duplicates += 1
                    continue
                task = _Task(spec=spec, epoch=self._epoch, eta=spec.eta)
                self._tasks[spec.name] = task
                self._push_locked(task, spec.eta, redelivery=False)
                created += 1
            self._counters.created += created
            self._counters.duplicates += duplicates
        return created, duplicates

    def _name_free_locked(self, name: str, now: float) -> bool:
        """A name is taken while its task lives and for a while after it ends."""
        task = self._tasks.get(name)
        if task is None:
            return True
        if task.finished_at is None:  # pending or running
            return False
        return now - task.finished_at >= self.config.tombstone_seconds

    def stats(self) -> dict[str, int]:
        with self._cond:
            c = self._counters
            return {
                "pending": self._pending,
                "in_flight": self._in_flight,
                "succeeded": c.succeeded,
                "failed": c.failed,
                "retries": c.retries,
                "duplicates": c.duplicates,
                "created": c.created,
                "dispatches": c.dispatches,
                "redelivered": c.redelivered,
            }

    def list_tasks(
        self, state: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        with self._cond:
            found = (t for t in self._tasks.values() if state in (None, t.state))
            return [t.summary() for _, t in zip(range(limit), found, strict=False)]

    def purge(self) -> int:
        """Drop pending tasks, forget every name and reset the counters."""
        with self._cond:
            dropped = self._pending
            self._epoch += 1
            self._heap.clear()
            self._drain_ready_locked()
            self._tasks.clear()
            self._pending = 0
            self._counters = _Counters()
            self._cond.notify_all()
        return dropped

    def wake(self) -> None:
        """Look for due tasks now (after an injected clock moved on)."""
        with self._cond:
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending or in flight (for tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats["pending"] == 0 and stats["in_flight"] == 0:
                return True
            time.sleep(0.01)
        return False

    # -- scheduling ----------------------------------------------------------

    def _push_locked(self, task: _Task, eta: float, *, redelivery: bool) -> None:
        self._seq += 1
        task.eta = eta
        heapq.heappush(self._heap, (eta, self._seq, task, redelivery))
        self._pending += 1
        self._cond.notify()

    def _drain_ready_locked(self) -> None:
        while True:
            try:
                self._ready.get_nowait()
            except queue.Empty:
                return

    def _release_due_locked(self) -> float | None:
        """Move due entries to the ready queue; return seconds to the next ETA."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            self._ready.put(heapq.heappop(self._heap))
        return self._heap[0][0] - now if self._heap else None

    def _scheduler_loop(self) -> None:
        with self._cond:
            while not self._stopping:
                self._cond.wait(timeout=self._release_due_locked())

    # -- dispatching ---------------------------------------------------------

    def _worker_loop(self) -> None:
        with requests.Session() as session:
            while True:
                entry = self._ready.get()
                if entry is None:
                    return
                self._run(entry, session)

    def _claim(self, task: _Task, redelivery: bool) -> bool:
        with self._cond:
            if task.epoch != self._epoch or self._stopping:
                return False
            self._pending -= 1
            self._in_flight += 1
            if not redelivery:
                task.state = "running"
            return True

    def _run(self, entry: _Entry, session: requests.Session) -> None:
        eta, _, task, redelivery = entry
        if not self._claim(task, redelivery):
            return
        try:
            self._limiter.acquire()
            outcome = self._post(session, task, eta, redelivery)
            self._settle(task, outcome, redelivery)
        finally:
            with self._cond:
                self._in_flight -= 1

    def _headers(self, task: _Task, eta: float, redelivery: bool) -> dict[str, str]:
        headers = dict(task.spec.headers)
        headers.update(
            {
                "Content-Type": "application/json",
                "X-CloudTasks-QueueName": self.config.queue_name,
                "X-CloudTasks-TaskName": task.spec.name,
                "X-CloudTasks-TaskRetryCount": str(task.retries + int(redelivery)),
                "X-CloudTasks-TaskExecutionCount": str(task.executions),
                "X-CloudTasks-TaskETA": f"{eta:.6f}",
            }
        )
        if task.last_status is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(task.last_status)
        return headers

    def _post(
        self, session: requests.Session, task: _Task, eta: float, redelivery: bool
    ) -> _Outcome:
        with self._cond:
            headers = self._headers(task, eta, redelivery)
            self._counters.dispatches += 1
        try:
            resp = session.post(
                task.spec.url,
                data=task.spec.body,
                headers=headers,
                timeout=self.config.dispatch_timeout,
            )
        except requests.RequestException as exc:
            return _Outcome(None, f"{type(exc).__name__}: {exc}"[:300])
        return _Outcome(resp.status_code, "" if resp.ok else resp.text[:300])

    def _settle(self, task: _Task, outcome: _Outcome, redelivery: bool) -> None:
        with self._cond:
            if task.epoch != self._epoch:
                return
            task.attempts += 1
            if outcome.status is not None:
                task.executions += 1
            task.last_status, task.last_error = outcome.status, outcome.error
            if redelivery:
                self._counters.redelivered += 1
            elif outcome.ok:
                self._succeed_locked(task)
            else:
                self._fail_locked(task)

    def _succeed_locked(self, task: _Task) -> None:
        task.state = "done"
        task.finished_at = self._clock()
        self._counters.succeeded += 1
        rate = self.config.duplicate_after_success_rate
        if rate > 0 and not task.redelivered and self._rng.random() < rate:
            task.redelivered = True
            self._push_locked(task, self._clock(), redelivery=True)

    def _fail_locked(self, task: _Task) -> None:
        limit = self.config.max_attempts
        if limit != -1 and task.attempts >= limit:
            task.state = "failed"
            task.finished_at = self._clock()
            self._counters.failed += 1
            log.warning(
                "task %s failed after %d attempts (last status %s)",
                task.spec.name,
                task.attempts,
                task.last_status,
            )
            return
        task.state = "pending"
        cfg = self.config
        backoff = retry_delay(
            task.retries, cfg.min_backoff, cfg.max_backoff, cfg.max_doublings
        )
        task.retries += 1
        self._counters.retries += 1
        self._push_locked(task, self._clock() + backoff, redelivery=False)


# --------------------------------------------------------------------------
# HTTP API
# --------------------------------------------------------------------------


def create_app(dispatcher: TaskDispatcher) -> Flask:
    app = Flask(__name__)

    @app.post("/v1/tasks:batchCreate")
    def batch_create() -> tuple[Response, int]:
        try:
            specs = parse_batch(request.get_json(force=True, silent=True))
        except InvalidTask as exc:
            return jsonify({"error": str(exc)}), 400
        created, duplicates = dispatcher.create(specs)
        return jsonify({"created": created, "duplicates": duplicates}), 200

    @app.get("/v1/tasks/stats")
    def stats() -> Response:
        return jsonify(dispatcher.stats())

    @app.get("/v1/tasks")
    def list_tasks() -> tuple[Response, int]:
        state = request.args.get("state") or None
        if state is not None and state not in _STATES:
            return jsonify({"error": f"state must be one of {_STATES}"}), 400
        limit = request.args.get("limit", default=1000, type=int)
        return jsonify(dispatcher.list_tasks(state, limit)), 200

    @app.post("/v1/tasks:purge")
    def purge() -> Response:
        return jsonify({"purged": dispatcher.purge()})

    @app.post("/v1/config")
    def configure() -> tuple[Response, int]:
        """Change the fault-injection rate at run time (fault tests)."""
        body = request.get_json(force=True, silent=True) or {}
        rate = body.get("duplicate_after_success_rate")
        if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            return jsonify({"error": "duplicate_after_success_rate in [0, 1]"}), 400
        dispatcher.config = replace(
            dispatcher.config, duplicate_after_success_rate=float(rate)
        )
        return jsonify({"duplicate_after_success_rate": rate}), 200

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"ok": True})

    return app


@dataclass
class DispatcherServer:
    """The dispatcher and its HTTP API, served from a background thread."""

    config: DispatcherConfig = field(default_factory=DispatcherConfig)
    host: str = "127.0.0.1"
    port: int = 0
    clock: Callable[[], float] = time.time
    dispatcher: TaskDispatcher = field(init=False)
    _server: BaseWSGIServer | None = field(init=False, default=None)
    _thread: threading.Thread | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.dispatcher = TaskDispatcher(self.config, self.clock)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self._server.server_port}"

    def bind(self) -> BaseWSGIServer:
        self._server = make_server(
            self.host, self.port, create_app(self.dispatcher), threaded=True
        )
        return self._server

    def start(self) -> DispatcherServer:
        server = self.bind()
        self.dispatcher.start()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="tasks-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
        self.dispatcher.stop()

    def __enter__(self) -> DispatcherServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Local Cloud Tasks stand-in.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8123)
    defaults = DispatcherConfig()
    p.add_argument(
        "--max-dispatches-per-second",
        type=float,
        default=defaults.max_dispatches_per_second,
    )
    p.add_argument("--max-burst-size", type=int, default=None)
    p.add_argument("--max-concurrent", type=int, default=defaults.max_concurrent)
    p.add_argument("--max-attempts", type=int, default=defaults.max_attempts)
    p.add_argument("--min-backoff", type=float, default=defaults.min_backoff)
    p.add_argument("--max-backoff", type=float, default=defaults.max_backoff)
    p.add_argument("--max-doublings", type=int, default=defaults.max_doublings)
    p.add_argument(
        "--tombstone-seconds", type=float, default=defaults.tombstone_seconds
    )
    p.add_argument("--dispatch-timeout", type=float, default=60.0)
    p.add_argument("--duplicate-after-success-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--queue-name", default="message-sends")
    p.add_argument("--log-requests", action="store_true")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> DispatcherConfig:
    return DispatcherConfig(
        max_dispatches_per_second=args.max_dispatches_per_second,
        max_burst_size=args.max_burst_size,
        max_concurrent=args.max_concurrent,
        max_attempts=args.max_attempts,
        min_backoff=args.min_backoff,
        max_backoff=args.max_backoff,
        max_doublings=args.max_doublings,
        tombstone_seconds=args.tombstone_seconds,
        dispatch_timeout=args.dispatch_timeout,
        duplicate_after_success_rate=args.duplicate_after_success_rate,
        seed=args.seed,
        queue_name=args.queue_name,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.log_requests:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Block SIGINT/SIGTERM in every thread (threads inherit the mask) and take
    # them synchronously in the main thread, so shutdown is immediate and clean.
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    server = DispatcherServer(config_from_args(args), args.host, args.port).start()
    log.info("task dispatcher listening on %s", server.url)
    try:
        received = signal.sigwait(signals)
        log.info("signal %s: stopping", signal.Signals(received).name)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
