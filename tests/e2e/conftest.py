"""The local stack for end-to-end tests: one stack for the whole e2e layer.

With ESE_ENDPOINTS pointing at an endpoints.json, the tests use that running
stack; otherwise the session starts its own stack and stops it at the end.
The stack always runs its functions behind the fault-injection wrapper
(local/faults.py) with every fault off; the fault suite switches classes on.
Each test starts from an empty database, simulator and task queue, with
faults off.

The fault schedules' seed is ESE_FAULT_SEED, or a random one; either way it
is printed at the start and the end of the session, to replay a failure.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from local import emulators, stack
from local.faults import COUNTS_DIR

REPO = Path(__file__).resolve().parents[2]
# In the environment, so every import of this module (pytest's conftest and
# the test modules' `tests.e2e.conftest`) sees the same seed.
FAULT_SEED = int(
    os.environ.setdefault("ESE_FAULT_SEED", str(random.randrange(1, 10**9)))
)
# The unified stack's settings, for the fault suite's sake: a short sending
# lease so a send that crashed after Twilio accepted is reconciled soon; a
# campaign completes only once its receipts (queued behind faults) landed.
STACK_ENV = {
    "SCHEDULER_TICK_SECONDS": "2",
    "SENDING_LEASE_SECONDS": "6",
    "SETTLE_SECONDS": "600",
    # Faster than the deployed queue (10/s, backoff up to 300 s): the tests
    # send hundreds of messages at 500/s and retry within seconds.
    "LOCAL_TASKS_MAX_DPS": "500",
    "LOCAL_TASKS_MIN_BACKOFF": "0.1",
    "LOCAL_TASKS_MAX_BACKOFF": "2",
    "LOCAL_TASKS_MAX_CONCURRENT": "32",
    # 10 attempts (the deployed queue has 30) so a send task runs out of them
    # in about 12 s in the fault test that exhausts one.
    "LOCAL_TASKS_MAX_ATTEMPTS": "10",
    # Past that retry budget and any backlog of the default sizes, so the
    # stranded-QUEUED sweep requeues only a message whose send task ran out of
    # attempts; the full sizes queue longer behind their faults.
    "STRANDED_QUEUED_SECONDS": "120"
    if os.environ.get("ESE_TEST_FULL") == "1"
    else "20",
    # Pub/Sub pushes a nacked message again about a second later: 30 attempts
    # dead-letter the poison message in about 30 s (the stack's default is 60)
    # and still outlast a function restarted mid-batch (a few seconds).
    "LOCAL_PUBSUB_MAX_DELIVERY_ATTEMPTS": "30",
    # Small campaigns still span several recipient batches.
    "FANOUT_BATCH_SIZE": os.environ.get(
        "ESE_FANOUT_BATCH_SIZE",
        "250" if os.environ.get("ESE_TEST_FULL") == "1" else "25",
    ),
}


def seed_line() -> str:
    return f"fault seed: {FAULT_SEED} (replay with ESE_FAULT_SEED={FAULT_SEED})"


def pytest_report_header() -> str:
    return seed_line()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(seed_line())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault suite last: its stragglers never meet a smaller test."""
    items.sort(key=lambda item: item.path.name == "test_faults.py")


class Stack:
    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.endpoints = endpoints
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {endpoints['api_key']}"
        # gunicorn closes idle keep-alive connections after 2 s; a poll that
        # reuses one just then is reset. Reads are safe to send again.
        retry = Retry(total=3, connect=3, read=3, allowed_methods={"GET"})
        self.http.mount("http://", HTTPAdapter(max_retries=retry))

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(
            method, self.endpoints["api"] + path, timeout=30, **kwargs
        )

    def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method, self.endpoints["simulator"] + path, timeout=30, **kwargs
        )
        response.raise_for_status()
        return response.json()

    def sent_messages(self) -> list[dict[str, Any]]:
        return list(self.sim("GET", "/_sim/messages")["messages"])

    def tick(self) -> dict[str, Any]:
        response = requests.post(self.endpoints["campaign_scheduler"] + "/", timeout=60)
        response.raise_for_status()
        return dict(response.json())

    def firestore(self) -> Any:
        from google.cloud import firestore

        os.environ["FIRESTORE_EMULATOR_HOST"] = self.endpoints["firestore_emulator"]
        try:
            return firestore.Client(project=self.endpoints["project"])
        finally:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)

    @property
    def faults_file(self) -> Path | None:
        given = self.endpoints.get("extra_env", {}).get("ESE_FAULTS_FILE")
        return Path(given) if given else None

    def set_faults(self, label: str = "", **plan: Any) -> None:
        """Switch fault classes on (or all off): a plan for local/faults.py
        under `label`, and the task dispatcher's duplicate-after-success rate."""
        if self.faults_file is not None:
            self.faults_file.write_text(
                json.dumps({"seed": FAULT_SEED, "label": label, **plan})
            )
        rate = plan.get("tasks_duplicate", 0.0)
        requests.post(
            self.endpoints["task_dispatcher"] + "/v1/config",
            json={"duplicate_after_success_rate": rate},
            timeout=10,
        ).raise_for_status()

    def reset(self) -> None:
        self.set_faults()
        requests.post(
            self.endpoints["task_dispatcher"] + "/v1/tasks:purge", timeout=30
        ).raise_for_status()
        self.sim("POST", "/_sim/reset")
        emulators.reset_firestore(
            self.endpoints["firestore_emulator"], self.endpoints["project"]
        )


def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.3
) -> Any:
    """Poll until `condition()` is truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Stack]:
    given = os.environ.get("ESE_ENDPOINTS")
    if given:
        yield Stack(json.loads(Path(given).read_text()))
        return
    missing = emulators.missing_emulators()
    if missing:
        pytest.skip(f"local stack unavailable: missing {', '.join(missing)}")
    base = stack.free_base_port(int(os.environ.get("ESE_E2E_BASE_PORT", "18700")))
    state_dir = REPO / ".local" / f"e2e-stack-{base}"
    state_dir.mkdir(parents=True, exist_ok=True)
    faults_file = state_dir / "faults.json"
    faults_file.write_text("{}")
    # Injection counts of an earlier session must not count in this one.
    shutil.rmtree(state_dir / COUNTS_DIR, ignore_errors=True)
    print(f"\n{seed_line()}", flush=True)
    try:
        env = {**STACK_ENV, "ESE_FAULTS_FILE": str(faults_file)}
        endpoints = stack.up(base, state_dir, env)
        yield Stack(endpoints)
    finally:
        stack.down(state_dir)


@pytest.fixture
def e2e(local_stack: Stack) -> Stack:
    local_stack.reset()
    return local_stack


def city_segment(e2e: Stack, city: str) -> str:
    """A segment of the users whose `city` attribute is `city`; its id."""
    response = e2e.api(
        "POST",
        "/v1/segments",
        json={
            "name": city,
            "definition": {"attribute": "city", "operator": "equals", "value": city},
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
