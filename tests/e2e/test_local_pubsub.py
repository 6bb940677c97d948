"""The local stack's push subscriptions keep redelivering nacked messages.

The fault suite relies on it: a handler that fails is pushed the message again
until it succeeds, or until the dead-letter topic takes it, and a function that
is restarting loses nothing. Here the consumer is a plain HTTP server that fails
each message's first attempts, all of them at once, and always fails a poison
message.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from local import emulators, stack

REPO = Path(__file__).resolve().parents[2]
TOPIC = "recipient-batches"
FAILED_ATTEMPTS = 3
MESSAGES = 20
# Longer than a function takes to restart on a busy machine.
DOWNTIME_SECONDS = 15


class FlakyConsumer(ThreadingHTTPServer):
    """Answers 500 to a message's first FAILED_ATTEMPTS pushes, then 204;
    always 500 to `poison`."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _FlakyHandler)
        self.attempts: Counter[str] = Counter()
        self.acked: set[str] = set()
        self.lock = threading.Lock()

    def answer(self, data: str) -> int:
        with self.lock:
            self.attempts[data] += 1
            if data != "poison" and self.attempts[data] > FAILED_ATTEMPTS:
                self.acked.add(data)
                return 204
            return 500


class _FlakyHandler(BaseHTTPRequestHandler):
    server: FlakyConsumer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        data = base64.b64decode(body["message"]["data"]).decode()
        self.send_response(self.server.answer(data))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(server: FlakyConsumer) -> Iterator[FlakyConsumer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def consumer() -> Iterator[FlakyConsumer]:
    with serving(FlakyConsumer()) as server:
        yield server


@pytest.fixture
def pubsub_port() -> Iterator[int]:
    if emulators.missing_emulators():
        pytest.skip("Pub/Sub emulator unavailable")
    port = emulators.free_port()
    server = emulators.start_pubsub(port, REPO / ".local" / "test-logs", stack.PROJECT)
    try:
        yield port
    finally:
        emulators.stop_group(server.pgid, grace=2)


def subscribe_all_to(pubsub_port: int, consumer_port: int) -> str:
    """The local stack's topics and subscriptions, every push to one port."""
    ports = {"pubsub": pubsub_port}
    ports.update({name: consumer_port for name in stack.PUSH_FUNCTIONS.values()})
    stack.create_topics(ports)
    return f"http://127.0.0.1:{pubsub_port}/v1/projects/{stack.PROJECT}"


def publish(base: str, data: str) -> None:
    encoded = base64.b64encode(data.encode()).decode()
    response = requests.post(
        f"{base}/topics/{TOPIC}:publish",
        json={"messages": [{"data": encoded}]},
        timeout=10,
    )
    response.raise_for_status()


def dead_lettered(base: str) -> list[str]:
    response = requests.post(
        f"{base}/subscriptions/{TOPIC}-dlq-pull:pull",
        json={"maxMessages": 10, "returnImmediately": True},
        timeout=10,
    )
    response.raise_for_status()
    received = response.json().get("receivedMessages", [])
    return [base64.b64decode(m["message"]["data"]).decode() for m in received]


# The stack's own budget (60 attempts, about a minute) is the same code path;
# a smaller one keeps this test at seconds. Above FAILED_ATTEMPTS, with room.
TEST_DELIVERY_ATTEMPTS = 8


def test_nacked_messages_are_redelivered_until_acked_or_dead_lettered(
    pubsub_port: int, consumer: FlakyConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "MAX_DELIVERY_ATTEMPTS", TEST_DELIVERY_ATTEMPTS)
    base = subscribe_all_to(pubsub_port, consumer.server_port)
    wanted = {f"batch-{i}" for i in range(MESSAGES)}
    for data in sorted(wanted):
        publish(base, data)
    publish(base, "poison")

    letters: list[str] = []
    deadline = time.monotonic() + 3 * stack.MAX_DELIVERY_ATTEMPTS
    while time.monotonic() < deadline and not (letters and consumer.acked == wanted):
        letters += dead_lettered(base)
        time.sleep(1)

    assert consumer.acked == wanted, dict(consumer.attempts)
    assert letters == ["poison"], dict(consumer.attempts)
    assert consumer.attempts["poison"] == stack.MAX_DELIVERY_ATTEMPTS


def test_messages_outlast_a_consumer_that_is_down(pubsub_port: int) -> None:
    port = emulators.free_port()
    base = subscribe_all_to(pubsub_port, port)
    wanted = {f"batch-{i}" for i in range(5)}
    for data in sorted(wanted):
        publish(base, data)
    time.sleep(DOWNTIME_SECONDS)  # every push meanwhile is refused

    with serving(FlakyConsumer(port)) as consumer:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and consumer.acked != wanted:
            time.sleep(1)
        assert consumer.acked == wanted, dict(consumer.attempts)
    assert dead_lettered(base) == []
