"""Deterministic fault injection for the local stack (reliability tests).

When the stack starts with ESE_FAULTS_FILE set (the e2e stack always does),
each function runs through `local/fault_entry.py`, which wraps the real entry
point and reads the fault plan from that JSON file whenever it changes, so a
test can switch fault classes on a running stack:

    {"seed": 7,                   # the run's seed (printed by the e2e session)
     "label": "test-name",        # a new label starts new schedules and counts
     "pubsub_redeliver": 0.1,     # a number: the rate in every function
     "crash_after_accept": {"message_sender": 0.05, "*": 0.0}}  # or per function

Schedules are deterministic: each (seed, label, function, class) has its own
`random.Random`, so the n-th decision of a class in a function is the same in
every run with that seed; `ESE_FAULT_SEED=<seed>` replays one. (Which message
meets the n-th decision still depends on thread timing.)

Besides the fault classes, `"clock_offset_seconds": -120.5` shifts every
function's clock (`shared.platform.clock.utcnow`, the one source of `now`):
an injected clock for tests of time windows such as quiet hours.

Every injection is counted. Each function process keeps its counts in
`<dir of ESE_FAULTS_FILE>/fault-counts/<function>.<pid>.json`
(`{"seed", "label", "counts": {class: n}}`); `injection_counts()` sums the files
of one label, so a test can assert that each of its classes fired.

Adding a fault class (say "twilio_500_after_create"):
1. add it to FAULT_CLASSES below with where it strikes;
2. at that point, `if plan.should("twilio_500_after_create"): <inject>` (a
   wrapper or patch in this module, installed by `fault_entry.py`);
3. give it a rate in the fault test's plan (tests/e2e/test_faults.py
   FAULT_CLASSES); the counters and the "fired at least once" check follow.

Production code knows nothing of this: the wrappers patch from the outside.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc

# name -> where it strikes. The registry documents the classes and lets the
# tests check a plan names only real ones.
FAULT_CLASSES: dict[str, str] = {
    "pubsub_redeliver": "a Pub/Sub handler fails after succeeding (redelivery)",
    "crash_after_accept": "the sender raises after Twilio accepted the message",
    "firestore_aborted": "a commit (write, batch, transaction) answers Aborted",
    "exception_rate": "an HTTP handler fails before running",
    # Counted only when two claims of one SID met, not at every draw.
    "reconcile_rendezvous": "two same-text reconcilers of one number claim one "
    "SID at the same moment (a rendezvous holds the first for the second)",
    "send_task_exhausted": "the sender fails a send task it gets, so its "
    "attempts run out and the message stays QUEUED (the stranded sweep's case)",
}
COUNTS_DIR = "fault-counts"


class InjectedFault(RuntimeError):
    pass


class FaultPlan:
    def __init__(self, path: str | None, name: str) -> None:
        self._path = Path(path) if path else None
        self._name = name
        self._lock = threading.Lock()
        self._plan: dict[str, Any] = {}
        self._stamp: tuple[int, int] | None = None
        self._rngs: dict[str, random.Random] = {}
        self._counts: Counter[str] = Counter()
        self._schedule: tuple[object, object] = (None, None)
        self._counts_path = (
            self._path.parent / COUNTS_DIR / f"{name}.{os.getpid()}.json"
            if self._path
            else None
        )

    def _current(self) -> dict[str, Any]:
        """The plan, re-read when its file changed (one stat per call)."""
        if self._path is None:
            return self._plan
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._plan = json.loads(self._path.read_text()) if stamp else {}
            except (OSError, ValueError):
                self._plan = {}
            schedule = (self._plan.get("seed"), self._plan.get("label"))
            if schedule != self._schedule:
                # A new seed or label: fresh schedules and fresh counts.
                self._schedule = schedule
                self._rngs = {}
                self._counts = Counter()
        return self._plan

    def rate(self, fault: str) -> float:
        value = self._current().get(fault, 0.0)
        if isinstance(value, dict):
            value = value.get(self._name, value.get("*", 0.0))
        return float(value)

    def clock_offset(self) -> float:
        """Seconds the functions' clock runs ahead of the real one."""
        with self._lock:
            return float(self._current().get("clock_offset_seconds", 0.0))

    def should(self, fault: str) -> bool:
        """Inject `fault` now? Each yes is counted as one injection."""
        with self._lock:
            if not self._draw(fault):
                return False
            self._record(fault)
            return True

    def draw(self, fault: str) -> bool:
        """The schedule's next decision for `fault`, not counted: for a class
        that fires only when something else happens too (`record` it then)."""
        with self._lock:
            return self._draw(fault)

    def record(self, fault: str) -> None:
        """Count one injection of `fault` that a `draw` prepared."""
        with self._lock:
            self._record(fault)

    def _draw(self, fault: str) -> bool:
        rate = self.rate(fault)
        if rate <= 0:
            return False
        rng = self._rngs.get(fault)
        if rng is None:
            seed, label = self._schedule
            rng = random.Random(f"{seed}:{label}:{self._name}:{fault}")
            self._rngs[fault] = rng
        return rng.random() < rate

    def _record(self, fault: str) -> None:
        self._counts[fault] += 1
        self._write_counts()

    def _write_counts(self) -> None:
        if self._counts_path is None:
            return
        seed, label = self._schedule
        record = {"seed": seed, "label": label, "counts": dict(self._counts)}
        self._counts_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._counts_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record))
        temporary.replace(self._counts_path)


def injection_counts(faults_file: Path, label: str) -> dict[str, dict[str, int]]:
    """{class: {function: injections}} of every process under `label`."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted((faults_file.parent / COUNTS_DIR).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("label") != label:
            continue
        function = path.name.split(".")[0]
        for fault, count in record.get("counts", {}).items():
            per_function = found.setdefault(fault, {})
            per_function[function] = per_function.get(function, 0) + count
    return found


def patch_clock(plan: FaultPlan) -> None:
    """Before the function is loaded: its `utcnow` follows the plan's offset."""
    from shared.platform import clock

    real_utcnow = clock.utcnow

    def utcnow() -> datetime:
        return real_utcnow() + timedelta(seconds=plan.clock_offset())

    clock.utcnow = utcnow


def wrap_pubsub_handler(
    plan: FaultPlan, handler: Callable[..., Any]
) -> Callable[..., Any]:
    def handle(event: Any) -> Any:
        result = handler(event)
        if plan.should("pubsub_redeliver"):
            # The work is done, but Pub/Sub sees a failure and delivers again.
            raise InjectedFault("injected: fail after success (redelivery)")
        return result

    return handle


# The api's request-log entries that infra/monitoring.tf's exclusion
# (`api_phone_urls`) drops: URLs in which a caller may name a phone.
EXCLUDED_API_URLS = ("/v1/users", "phone=")


def log_request(name: str, request: Any) -> None:
    """A stand-in for Cloud Run's request log: the raw URL, never masked.

    The platform writes it outside the application's log handler, so whatever
    an identifier in a URL holds (a task name, a callback's message id) lands
    there as is; the log-hygiene test scans these lines too.
    """
    url = str(request.url)
    if name == "api" and any(part in url for part in EXCLUDED_API_URLS):
        return
    entry = {
        "httpRequest": {"requestMethod": request.method, "requestUrl": url},
        "taskName": request.headers.get("X-CloudTasks-TaskName"),
    }
    print(json.dumps(entry), file=sys.stderr, flush=True)


def wrap_http_handler(
    plan: FaultPlan, handler: Callable[..., Any], name: str = ""
) -> Callable[..., Any]:
    def handle(request: Any) -> Any:
        log_request(name, request)
        if plan.should("exception_rate"):
            raise InjectedFault("injected: handler exception")
        return handler(request)

    return handle


def patch_twilio_gateway(plan: FaultPlan) -> None:
    from shared.delivery import gateway

    original = gateway.TwilioGateway.send

    def send(self: Any, message: Any) -> Any:
        accepted = original(self, message)
        if plan.should("crash_after_accept"):
            raise InjectedFault("injected: crash after Twilio accepted")
        return accepted

    # Injection replaces the method in place; mypy rejects assigning to a method.
    gateway.TwilioGateway.send = send  # type: ignore[method-assign]


def patch_firestore_commits(plan: FaultPlan) -> None:
    """Every commit may answer Aborted: single-document writes and batches
    (create, set, update, delete all commit a WriteBatch; the blind updates
    built directly commit through `blind_update.commit`) and transactions,
    whose Aborted the client's transactional retry loop sees as from the
    server. Nothing was written either way."""
    from google.cloud.firestore_v1 import batch, transaction

    from shared.platform import blind_update

    original_batch_commit = batch.WriteBatch.commit
    original_blind_commit = blind_update.commit
    original_transaction_commit = transaction.Transaction._commit

    def batch_commit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if plan.should("firestore_aborted"):
            raise gexc.Aborted("injected: commit aborted")
        return original_batch_commit(self, *args, **kwargs)

    def blind_commit(*args: Any, **kwargs: Any) -> Any:
        if plan.should("firestore_aborted"):
            raise gexc.Aborted("injected: commit aborted")
        return original_blind_commit(*args, **kwargs)

    def transaction_commit(self: Any) -> Any:
        if plan.should("firestore_aborted"):
            # As the server would: the transaction is gone, its locks released.
            self._rollback()
            raise gexc.Aborted("injected: transaction aborted")
        return original_transaction_commit(self)

    # Injection replaces the methods in place; mypy rejects assigning to a method.
    batch.WriteBatch.commit = batch_commit  # type: ignore[method-assign]
    blind_update.commit = blind_commit
    transaction.Transaction._commit = transaction_commit  # type: ignore[method-assign]


class Rendezvous:
    """Holds the first claim of a SID until a second claim of it arrives (or
    `wait_s` passes), so that two reconcilers claim one SID at one moment."""

    def __init__(self, wait_s: float) -> None:
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}
        self._met: set[str] = set()

    def meet(self, sid: str, message_id: str) -> bool:
        """True for the claim that arrived second and released the first."""
        with self._lock:
            if message_id in self._met:
                return False  # its first claim met already; no second wait
            self._met.add(message_id)
            first = self._waiting.pop(sid, None)
            if first is not None:
                first.set()
                return True
            arrived = threading.Event()
            self._waiting[sid] = arrived
        if not arrived.wait(self._wait_s):
            with self._lock:
                if self._waiting.get(sid) is arrived:
                    del self._waiting[sid]
        return False


def patch_reconcile_claims(plan: FaultPlan) -> None:
    """Forces two same-text reconcilers of one number to claim together;
    counted when two claims met (a claim that waited alone injected nothing)."""
    from shared.delivery import sender

    original = sender.claim_sid
    rendezvous = Rendezvous(wait_s=5.0)

    def claim_sid(db: Any, message: Any, sid: str, now: Any) -> Any:
        if plan.draw("reconcile_rendezvous") and rendezvous.meet(sid, message.id):
            plan.record("reconcile_rendezvous")
        return original(db, message, sid, now)

    sender.claim_sid = claim_sid


def wrap_send_task_handler(
    plan: FaultPlan, handler: Callable[..., Any]
) -> Callable[..., Any]:
    """The sender fails the tasks it gets (every one at rate 1): Cloud Tasks
    retries until the task's attempts are spent, and the message stays QUEUED."""

    def handle(request: Any) -> Any:
        if plan.should("send_task_exhausted"):
            raise InjectedFault("injected: send task failed")
        return handler(request)

    return handle
