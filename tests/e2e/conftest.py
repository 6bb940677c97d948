"""The local stack for end-to-end tests.

With ESE_ENDPOINTS pointing at an endpoints.json, the tests use that running
stack; otherwise the session starts its own stack and stops it at the end.
Each test starts from an empty database, simulator and task queue.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from local import emulators, stack

REPO = Path(__file__).resolve().parents[2]


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

    def reset(self) -> None:
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
    try:
        endpoints = stack.up(base, state_dir, {"SCHEDULER_TICK_SECONDS": "2"})
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
