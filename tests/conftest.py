"""Shared fixtures: the Firestore emulator, a clean database per test, the API.

Integration tests use the official Firestore emulator. When
FIRESTORE_EMULATOR_HOST is already set (make test sets it), that emulator is
used; otherwise one is started for the session and stopped at its end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local import emulators

PROJECT = os.environ.setdefault("GCP_PROJECT", "ese-test")
os.environ.setdefault("API_KEYS", "test-key")
# The local stack's fixed value, so a test can derive the stack's message ids.
os.environ.setdefault("RECIPIENT_KEY", "local-recipient-key-not-secret")
os.environ.setdefault("MESSAGE_SENDER_URL", "http://127.0.0.1:9/")
os.environ.setdefault("TASKS_BACKEND", "local")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def firestore_host() -> Iterator[str]:
    existing = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if existing:
        yield existing
        return
    missing = emulators.missing_emulators()
    if missing:
        pytest.skip(f"Firestore emulator unavailable: {', '.join(missing)}")
    server = emulators.start_firestore(emulators.free_port(), REPO / ".local/test-logs")
    os.environ["FIRESTORE_EMULATOR_HOST"] = server.host
    try:
        yield server.host
    finally:
        emulators.stop_group(server.pgid, grace=2)
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)


@pytest.fixture
def db(firestore_host: str) -> Any:
    from google.cloud import firestore

    emulators.reset_firestore(firestore_host, PROJECT)
    return firestore.Client(project=PROJECT)


class RecordingPublisher:
    """Records what handlers publish (the Pub/Sub path runs end to end elsewhere)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Any, dict[str, str]]] = []

    def publish(self, topic: Any, payload: Any, **attributes: str) -> None:
        self.published.append((str(topic), payload, attributes))

    def publish_many(self, topic: Any, payloads: Any, **attributes: str) -> None:
        for payload in payloads:
            self.publish(topic, payload, **attributes)


class RecordingTaskQueue:
    def __init__(self) -> None:
        self.tasks: list[Any] = []
        self.names: set[str] = set()

    def enqueue(self, tasks: Any) -> Any:
        from shared.platform.tasks import EnqueueResult

        created = 0
        for task in tasks:
            if task.name not in self.names:
                self.names.add(task.name)
                self.tasks.append(task)
                created += 1
        return EnqueueResult(created=created, duplicates=len(tasks) - created)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class SleepingClock:
    """Monotonic seconds that move only when code under test sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 26, 15, 0, tzinfo=UTC))


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def task_queue() -> RecordingTaskQueue:
    return RecordingTaskQueue()


@pytest.fixture
def api(
    db: Any,
    publisher: RecordingPublisher,
    task_queue: RecordingTaskQueue,
    clock: FixedClock,
) -> Any:
    """Call the API in-process: api("POST", "/v1/users", json={...})."""
    import json as jsonlib

    from shared.api.app import handle_request
    from shared.api.context import ApiContext
    from shared.api.http import ApiRequest
    from shared.platform.config import ApiSettings, CoreSettings

    context = ApiContext(
        db=db,
        publisher=publisher,
        tasks=lambda: task_queue,
        core=CoreSettings(),
        api=ApiSettings(),
        clock=clock,
    )

    def call(
        method: str,
        path: str,
        json: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        key: str | None = "test-key",
    ) -> Any:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        raw = (
            body
            if body is not None
            else (jsonlib.dumps(json).encode() if json is not None else b"")
        )
        return handle_request(
            ApiRequest(method, path, query or {}, all_headers, raw), context
        )

    call.context = context  # type: ignore[attr-defined]
    return call
