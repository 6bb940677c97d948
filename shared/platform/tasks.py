"""The task-queue port and its adapters (docs/architecture.md §4, "Ports and adapters").

Domain code enqueues `SendTask`s through the `TaskQueue` protocol and never sees
which backend is behind it:

- `CloudTasksQueue` creates HTTP tasks with google-cloud-tasks (production);
- `LocalTaskQueue` posts the same tasks to the local task dispatcher
  (`local/task_dispatcher.py`), which stands in for Cloud Tasks locally.

Task names are deterministic (`task_name_for`), so a re-run of fan-out cannot
enqueue the same send twice: both backends dedupe by name, and a name that
already exists is reported as a duplicate, not an error.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import tasks_v2
from google.protobuf import timestamp_pb2

MAX_TASK_NAME_LEN = 500
LOCAL_BATCH_SIZE = 1000
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_HASH_PREFIX_LEN = 8


class TaskQueueError(RuntimeError):
    """The task backend refused or failed a request."""


@dataclass(frozen=True)
class SendTask:
    """One HTTP task: POST `body` as JSON to the queue's target at `schedule_time`."""

    name: str  # deterministic task id (see task_name_for)
    body: dict[str, Any]  # JSON body, e.g. {"message_id": "..."}
    schedule_time: datetime  # aware UTC datetime

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > MAX_TASK_NAME_LEN:
            raise ValueError(f"task name must be 1..{MAX_TASK_NAME_LEN} chars")
        if _UNSAFE_CHARS.search(self.name):
            raise ValueError(
                f"task name has characters outside [A-Za-z0-9_-]: {self.name!r}"
            )
        if self.schedule_time.tzinfo is None:
            raise ValueError("schedule_time must be timezone-aware")


@dataclass(frozen=True)
class EnqueueResult:
    created: int
    duplicates: int  # names that already existed (deduped), not errors

    def __add__(self, other: EnqueueResult) -> EnqueueResult:
        return EnqueueResult(
            self.created + other.created, self.duplicates + other.duplicates
        )


class TaskQueue(Protocol):
    def enqueue(self, tasks: Sequence[SendTask]) -> EnqueueResult: ...


def task_name_for(message_id: str, generation: int) -> str:
    """Deterministic Cloud Tasks task id for one send attempt of a message.

    `<8 hex of sha256>-<sanitised message id>-g<generation>`: the hash prefix
    spreads names over the key space (Google's advice for high task rates) and,
    being taken over the raw id, keeps ids that sanitise alike apart.
    """
    if not message_id:
        raise ValueError("message_id must not be empty")
    if generation < 0:
        raise ValueError("generation must be >= 0")
    digest = hashlib.sha256(f"{message_id}\x00{generation}".encode()).hexdigest()
    prefix = digest[:_HASH_PREFIX_LEN]
    suffix = f"-g{generation}"
    room = MAX_TASK_NAME_LEN - len(prefix) - 1 - len(suffix)
    safe = _UNSAFE_CHARS.sub("_", message_id)[:room]
    return f"{prefix}-{safe}{suffix}"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# --------------------------------------------------------------------------
# Cloud Tasks (production)
# --------------------------------------------------------------------------

_CREATE_RETRY = gretry.Retry(
    predicate=gretry.if_exception_type(
        gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError
    ),
    initial=0.2,
    maximum=5.0,
    multiplier=2.0,
    timeout=60.0,
)


class CloudTasksQueue:
    """Creates HTTP tasks (OIDC-authenticated) in one Cloud Tasks queue."""

    def __init__(
        self,
        project: str,
        location: str,
        queue: str,
        target_url: str,
        service_account_email: str,
        *,
        client: Any = None,
        max_workers: int = 16,
        request_timeout: float = 30.0,
    ) -> None:
        if not service_account_email:
            raise ValueError("CloudTasksQueue needs service_account_email for OIDC")
        self._project = project
        self._location = location
        self._queue = queue
        self._target_url = target_url
        self._service_account_email = service_account_email
        self._client = client
        self._client_lock = threading.Lock()
        self._max_workers = max(1, max_workers)
        self._request_timeout = request_timeout

    def _get_client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = tasks_v2.CloudTasksClient()
        return self._client

    def build_task(self, task: SendTask) -> tasks_v2.Task:
        """The Cloud Tasks `Task` for one `SendTask`."""
        client = self._get_client()
        http_request = tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=self._target_url,
            headers={"Content-Type": "application/json"},
            body=json.dumps(task.body, separators=(",", ":")).encode(),
            oidc_token=tasks_v2.OidcToken(
                service_account_email=self._service_account_email,
                audience=self._target_url,
            ),
        )
        schedule = timestamp_pb2.Timestamp()
        schedule.FromDatetime(_utc(task.schedule_time))
        return tasks_v2.Task(
            name=client.task_path(
                self._project, self._location, self._queue, task.name
            ),
            http_request=http_request,
            schedule_time=schedule,
        )

    def _create_one(self, task: SendTask) -> bool:
        """Create one task; False when its name already exists."""
        client = self._get_client()
        parent = client.queue_path(self._project, self._location, self._queue)
        try:
            client.create_task(
                parent=parent,
                task=self.build_task(task),
                retry=_CREATE_RETRY,
                timeout=self._request_timeout,
            )
        except gexc.AlreadyExists:
            return False
        return True

    def enqueue(self, tasks: Sequence[SendTask]) -> EnqueueResult:
        if not tasks:
            return EnqueueResult(0, 0)
        workers = min(self._max_workers, len(tasks))
        if workers == 1:
            outcomes = [self._create_one(t) for t in tasks]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(self._create_one, tasks))
        created = sum(outcomes)
        return EnqueueResult(created=created, duplicates=len(outcomes) - created)


# --------------------------------------------------------------------------
# Local dispatcher (local stack and tests)
# --------------------------------------------------------------------------


class LocalTaskQueue:
    """Posts tasks to the local task dispatcher, which dispatches them over HTTP."""

    def __init__(
        self,
        dispatcher_url: str,
        target_url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        batch_size: int = LOCAL_BATCH_SIZE,
    ) -> None:
        self._create_url = dispatcher_url.rstrip("/") + "/v1/tasks:batchCreate"
        self._target_url = target_url
        self._session = session or requests.Session()
        self._timeout = timeout
        self._batch_size = max(1, min(batch_size, LOCAL_BATCH_SIZE))

    def _payload(self, task: SendTask) -> dict[str, Any]:
        return {
            "name": task.name,
            "url": self._target_url,
            "body": task.body,
            "schedule_time": _utc(task.schedule_time).isoformat(),
            "headers": {"Content-Type": "application/json"},
        }

    def _post_chunk(self, chunk: Sequence[SendTask]) -> EnqueueResult:
        payload = {"tasks": [self._payload(t) for t in chunk]}
        try:
            resp = self._session.post(
                self._create_url, json=payload, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise TaskQueueError(f"local dispatcher unreachable: {exc}") from exc
        if not 200 <= resp.status_code < 300:
            raise TaskQueueError(
                f"local dispatcher answered {resp.status_code}: {resp.text[:500]}"
            )
        data = resp.json()
        return EnqueueResult(int(data["created"]), int(data["duplicates"]))

    def enqueue(self, tasks: Sequence[SendTask]) -> EnqueueResult:
        result = EnqueueResult(0, 0)
        for start in range(0, len(tasks), self._batch_size):
            result = result + self._post_chunk(tasks[start : start + self._batch_size])
        return result


def build_task_queue(
    *,
    backend: str,
    project: str,
    location: str,
    queue: str,
    target_url: str,
    service_account_email: str = "",
    local_dispatcher_url: str = "",
) -> TaskQueue:
    """The `TaskQueue` adapter for a backend: "cloud" or "local"."""
    if backend == "cloud":
        return CloudTasksQueue(
            project, location, queue, target_url, service_account_email
        )
    if backend == "local":
        if not local_dispatcher_url:
            raise ValueError("the local task backend needs local_dispatcher_url")
        return LocalTaskQueue(local_dispatcher_url, target_url)
    raise ValueError(f"unknown task backend: {backend!r} (expected cloud or local)")
