"""Fault injection for the local stack (reliability tests).

Off unless the stack starts with faults on; then each function runs through
`local/fault_entry.py`, which wraps the real entry point and reads the fault
plan from the JSON file named by ESE_FAULTS_FILE (re-read about once a second,
so a test can switch fault classes on a running stack):

    {"seed": 7,
     "pubsub_redeliver": 0.1,     # a Pub/Sub handler fails after succeeding
     "crash_after_accept": 0.05,  # the sender raises after Twilio accepted
     "firestore_aborted": 0.05,   # a commit (write, batch, transaction) aborts
     "exception_rate": 0.0,       # an HTTP handler fails before running
     "reconcile_rendezvous": 1.0, # two reconcilers claim one SID at once
     "send_task_exhausted": 1.0}  # the sender fails every send task it gets

Faults that must be seen to happen are counted per class in JSON files under
`fault-counts/` beside the plan (one per process): `read_fault_counts` sums them.

Production code knows nothing of this: the wrappers patch from the outside.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc


class InjectedFault(RuntimeError):
    pass


COUNTS_DIR = "fault-counts"


class FaultCounters:
    """How often each fault class fired in this process, kept in a file."""

    def __init__(self, plan_path: str | None, name: str) -> None:
        self._dir = Path(plan_path).parent / COUNTS_DIR if plan_path else None
        self._name = name
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, fault: str) -> None:
        with self._lock:
            self._counts[fault] = self._counts.get(fault, 0) + 1
            if self._dir is None:
                return
            self._dir.mkdir(parents=True, exist_ok=True)
            path = self._dir / f"{self._name}-{os.getpid()}.json"
            partial = path.with_suffix(".tmp")
            partial.write_text(json.dumps(self._counts))
            partial.replace(path)


def read_fault_counts(plan_dir: Path) -> dict[str, int]:
    """Every process's counts, added up per fault class."""
    total: dict[str, int] = {}
    for path in (plan_dir / COUNTS_DIR).glob("*.json"):
        for fault, count in json.loads(path.read_text()).items():
            total[fault] = total.get(fault, 0) + int(count)
    return total


class FaultPlan:
    def __init__(self, path: str | None, name: str) -> None:
        self._path = Path(path) if path else None
        self._name = name
        self._lock = threading.Lock()
        self._plan: dict[str, Any] = {}
        self._loaded_at = 0.0
        self._rng = random.Random()
        self._seed: object = None

    def _current(self) -> dict[str, Any]:
        with self._lock:
            if self._path and time.monotonic() - self._loaded_at > 1.0:
                self._loaded_at = time.monotonic()
                try:
                    self._plan = json.loads(self._path.read_text())
                except (OSError, ValueError):
                    self._plan = {}
                seed = self._plan.get("seed")
                if seed != self._seed:
                    self._seed = seed
                    self._rng = random.Random(f"{seed}:{self._name}:{os.getpid()}")
            return self._plan

    def should(self, fault: str) -> bool:
        rate = float(self._current().get(fault, 0.0))
        with self._lock:
            return rate > 0 and self._rng.random() < rate


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


def wrap_http_handler(
    plan: FaultPlan, handler: Callable[..., Any]
) -> Callable[..., Any]:
    def handle(request: Any) -> Any:
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

    gateway.TwilioGateway.send = send  # type: ignore[method-assign]


def patch_firestore_commits(plan: FaultPlan) -> None:
    """Every commit may answer Aborted: single-document writes and batches
    (create, set, update, delete all commit a WriteBatch) and transactions,
    whose Aborted the client's transactional retry loop sees as from the
    server. Nothing was written either way."""
    from google.cloud.firestore_v1 import batch, transaction

    original_batch_commit = batch.WriteBatch.commit
    original_transaction_commit = transaction.Transaction._commit

    def batch_commit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if plan.should("firestore_aborted"):
            raise gexc.Aborted("injected: commit aborted")
        return original_batch_commit(self, *args, **kwargs)

    def transaction_commit(self: Any) -> Any:
        if plan.should("firestore_aborted"):
            # As the server would: the transaction is gone, its locks released.
            self._rollback()
            raise gexc.Aborted("injected: transaction aborted")
        return original_transaction_commit(self)

    batch.WriteBatch.commit = batch_commit  # type: ignore[method-assign]
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


def patch_reconcile_claims(plan: FaultPlan, counters: FaultCounters) -> None:
    """Forces two same-text reconcilers of one number to claim together."""
    from shared.delivery import sender

    original = sender.claim_sid
    rendezvous = Rendezvous(wait_s=5.0)

    def claim_sid(db: Any, message: Any, sid: str, now: Any) -> Any:
        if plan.should("reconcile_rendezvous") and rendezvous.meet(sid, message.id):
            counters.add("reconcile_rendezvous")
        return original(db, message, sid, now)

    sender.claim_sid = claim_sid


def wrap_send_task_handler(
    plan: FaultPlan, counters: FaultCounters, handler: Callable[..., Any]
) -> Callable[..., Any]:
    """The sender fails every task it gets: Cloud Tasks retries until the
    task's attempts are spent, and the message stays QUEUED."""

    def handle(request: Any) -> Any:
        if plan.should("send_task_exhausted"):
            counters.add("send_task_exhausted")
            raise InjectedFault("injected: send task failed")
        return handler(request)

    return handle
