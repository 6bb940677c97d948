"""The TaskQueue port: task names, the local adapter and the Cloud Tasks adapter."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from local.task_dispatcher import DispatcherConfig, DispatcherServer
from shared.platform import tasks as tasks_mod
from shared.platform.tasks import (
    CloudTasksQueue,
    EnqueueResult,
    LocalTaskQueue,
    SendTask,
    TaskQueueError,
    build_task_queue,
    task_name_for,
)

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,500}$")


# -- task_name_for ----------------------------------------------------------


def test_task_name_is_deterministic_and_generation_specific() -> None:
    assert task_name_for("c1:l1:+15551234567", 0) == task_name_for(
        "c1:l1:+15551234567", 0
    )
    assert task_name_for("c1:l1:+15551234567", 0) != task_name_for(
        "c1:l1:+15551234567", 1
    )
    name = task_name_for("msg-1", 3)
    assert re.fullmatch(r"[0-9a-f]{8}-msg-1-g3", name)


@pytest.mark.parametrize(
    "message_id",
    ["c1:l1:+1555", "a/b.c d", "ünïcødé", "x" * 2000, "-", "e:ev_1:camp/2"],
)
def test_task_name_charset_and_length(message_id: str) -> None:
    name = task_name_for(message_id, 12345)
    assert NAME_RE.match(name)
    assert name.endswith("-g12345")


def test_ids_that_sanitise_alike_get_different_names() -> None:
    assert task_name_for("a.b", 0) != task_name_for("a_b", 0)
    assert task_name_for("a.b", 0)[9:] == task_name_for("a_b", 0)[9:]


def test_hash_prefix_spreads_names() -> None:
    prefixes = {task_name_for(f"msg-{i}", 0)[:2] for i in range(200)}
    assert len(prefixes) > 100


def test_task_name_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        task_name_for("", 0)
    with pytest.raises(ValueError):
        task_name_for("m", -1)


def test_send_task_validates_name_and_timezone() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValueError):
        SendTask("has space", {}, now)
    with pytest.raises(ValueError):
        SendTask("ok", {}, datetime(2030, 1, 1))


# -- LocalTaskQueue against a real dispatcher -------------------------------


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.posts: list[int] = []

    def post(self, url: Any, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.posts.append(len(kwargs["json"]["tasks"]))
        return super().post(url, *args, **kwargs)


@pytest.fixture
def dispatcher() -> Iterator[DispatcherServer]:
    server = DispatcherServer(
        DispatcherConfig(max_concurrent=4, min_backoff=0.05, max_backoff=0.1)
    ).start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback target recording the JSON bodies and headers it receives."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                received.append({"body": body, "headers": dict(self.headers)})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/send", received
    server.shutdown()
    server.server_close()


def _tasks(n: int, at: datetime, prefix: str = "m") -> list[SendTask]:
    return [
        SendTask(task_name_for(f"{prefix}{i}", 0), {"message_id": f"{prefix}{i}"}, at)
        for i in range(n)
    ]


def test_local_queue_chunks_and_dedupes(dispatcher: DispatcherServer) -> None:
    session = CountingSession()
    later = datetime.now(UTC) + timedelta(hours=1)
    queue = LocalTaskQueue(dispatcher.url, "http://127.0.0.1:9/send", session=session)
    batch = _tasks(2500, later)
    assert queue.enqueue(batch) == EnqueueResult(created=2500, duplicates=0)
    assert session.posts == [1000, 1000, 500]
    assert queue.enqueue(batch[:10] + _tasks(2, later, "new")) == EnqueueResult(
        created=2, duplicates=10
    )
    assert dispatcher.dispatcher.stats()["pending"] == 2502
    assert queue.enqueue([]) == EnqueueResult(0, 0)


def test_local_queue_tasks_are_dispatched_to_the_target(
    dispatcher: DispatcherServer, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    queue = LocalTaskQueue(dispatcher.url, url)
    soon = datetime.now(timezone(timedelta(hours=-5)))  # any aware zone
    queue.enqueue(_tasks(3, soon))
    assert dispatcher.dispatcher.wait_idle(5)
    assert sorted(r["body"]["message_id"] for r in received) == ["m0", "m1", "m2"]
    names = {r["headers"]["X-CloudTasks-TaskName"] for r in received}
    assert names == {task_name_for(f"m{i}", 0) for i in range(3)}
    eta = float(received[0]["headers"]["X-CloudTasks-TaskETA"])
    assert eta == pytest.approx(soon.timestamp(), abs=1e-3)


def test_local_queue_raises_on_non_2xx(dispatcher: DispatcherServer) -> None:
    queue = LocalTaskQueue(dispatcher.url + "/nowhere", "http://127.0.0.1:9/send")
    with pytest.raises(TaskQueueError, match="404"):
        queue.enqueue(_tasks(1, datetime.now(UTC)))


def test_local_queue_raises_when_unreachable() -> None:
    queue = LocalTaskQueue("http://127.0.0.1:9", "http://127.0.0.1:9/send", timeout=2)
    with pytest.raises(TaskQueueError, match="unreachable"):
        queue.enqueue(_tasks(1, datetime.now(UTC)))


# -- CloudTasksQueue with a fake client -------------------------------------


class FakeCloudTasksClient:
    task_path = staticmethod(tasks_v2.CloudTasksClient.task_path)
    queue_path = staticmethod(tasks_v2.CloudTasksClient.queue_path)

    def __init__(self, existing: set[str] | None = None) -> None:
        self.existing = existing or set()
        self.calls: list[dict[str, Any]] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def create_task(self, **kwargs: Any) -> tasks_v2.Task:
        task: tasks_v2.Task = kwargs["task"]
        with self.lock:
            self.calls.append(kwargs)
            self.threads.add(threading.current_thread().name)
            if task.name in self.existing:
                raise gexc.AlreadyExists("task exists")
            self.existing.add(task.name)
        return task


def _cloud_queue(client: FakeCloudTasksClient) -> CloudTasksQueue:
    return CloudTasksQueue(
        "proj",
        "us-central1",
        "message-sends",
        "https://sender.example/run",
        "tasks@proj.iam.gserviceaccount.com",
        client=client,
    )


def test_cloud_queue_builds_the_http_task() -> None:
    client = FakeCloudTasksClient()
    at = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    name = task_name_for("msg-1", 0)
    result = _cloud_queue(client).enqueue([SendTask(name, {"message_id": "msg-1"}, at)])
    assert result == EnqueueResult(created=1, duplicates=0)
    [call] = client.calls
    assert call["parent"] == "projects/proj/locations/us-central1/queues/message-sends"
    task: tasks_v2.Task = call["task"]
    assert task.name == f"{call['parent']}/tasks/{name}"
    assert task.schedule_time == at
    pb = tasks_v2.Task.pb(task)
    assert (pb.schedule_time.seconds, pb.schedule_time.nanos) == (
        int(at.timestamp()),
        123456000,
    )
    http = task.http_request
    assert http.http_method == tasks_v2.HttpMethod.POST
    assert http.url == "https://sender.example/run"
    assert json.loads(http.body) == {"message_id": "msg-1"}
    assert http.headers["Content-Type"] == "application/json"
    assert http.oidc_token.service_account_email == "tasks@proj.iam.gserviceaccount.com"
    assert http.oidc_token.audience == "https://sender.example/run"


def test_cloud_queue_counts_already_exists_as_duplicate() -> None:
    at = datetime.now(UTC)
    batch = _tasks(5, at)
    full_name = FakeCloudTasksClient.task_path(
        "proj", "us-central1", "message-sends", batch[0].name
    )
    client = FakeCloudTasksClient(existing={full_name})
    assert _cloud_queue(client).enqueue(batch) == EnqueueResult(4, 1)
    assert _cloud_queue(client).enqueue(batch) == EnqueueResult(0, 5)


def test_cloud_queue_creates_large_batches_concurrently() -> None:
    client = FakeCloudTasksClient()
    assert _cloud_queue(client).enqueue(_tasks(200, datetime.now(UTC))) == (
        EnqueueResult(200, 0)
    )
    assert len(client.calls) == 200
    assert len(client.threads) > 1
    assert threading.current_thread().name not in client.threads


def test_cloud_queue_propagates_other_errors() -> None:
    class Broken(FakeCloudTasksClient):
        def create_task(self, **kwargs: Any) -> tasks_v2.Task:
            raise gexc.PermissionDenied("no")

    with pytest.raises(gexc.PermissionDenied):
        _cloud_queue(Broken()).enqueue(_tasks(3, datetime.now(UTC)))


def test_cloud_client_is_created_lazily_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeCloudTasksClient] = []

    def factory() -> FakeCloudTasksClient:
        made.append(FakeCloudTasksClient())
        return made[-1]

    monkeypatch.setattr(tasks_mod.tasks_v2, "CloudTasksClient", factory)
    queue = CloudTasksQueue("p", "l", "q", "https://t/", "sa@p.iam")
    assert made == []
    queue.enqueue(_tasks(40, datetime.now(UTC)))
    queue.enqueue(_tasks(1, datetime.now(UTC), "x"))
    assert len(made) == 1
    assert len(made[0].calls) == 41


# -- factory ------------------------------------------------------------------


def test_build_task_queue_selects_the_adapter() -> None:
    common: dict[str, Any] = {
        "project": "p",
        "location": "us-central1",
        "queue": "message-sends",
        "target_url": "https://t/",
        "service_account_email": "sa@p.iam",
        "local_dispatcher_url": "http://127.0.0.1:8123",
    }
    assert isinstance(build_task_queue(backend="cloud", **common), CloudTasksQueue)
    assert isinstance(build_task_queue(backend="local", **common), LocalTaskQueue)
    with pytest.raises(ValueError):
        build_task_queue(backend="pubsub", **common)
    with pytest.raises(ValueError):
        build_task_queue(backend="local", **{**common, "local_dispatcher_url": ""})
    with pytest.raises(ValueError):
        build_task_queue(backend="cloud", **{**common, "service_account_email": ""})
