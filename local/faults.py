"""Fault injection for the local stack (reliability tests).

Off unless the stack starts with faults on; then each function runs through
`local/fault_entry.py`, which wraps the real entry point and reads the fault
plan from the JSON file named by ESE_FAULTS_FILE (re-read about once a second,
so a test can switch fault classes on a running stack):

    {"seed": 7,
     "pubsub_redeliver": 0.1,     # a Pub/Sub handler fails after succeeding
     "crash_after_accept": 0.05,  # the sender raises after Twilio accepted
     "firestore_aborted": 0.05,   # a commit (write, batch, transaction) aborts
     "exception_rate": 0.0}       # an HTTP handler fails before running

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
