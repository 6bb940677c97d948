"""The webhook functions' entry points, called with the events they really get.

`twilio_webhooks` gets a Flask request; `receipt_updater` and
`inbound_processor` get a CloudEvent carrying the Pub/Sub envelope, built the
way Google's samples build it.
"""

from __future__ import annotations

import base64
import importlib.util
import io
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import flask
import pytest
from cloudevents.http import CloudEvent
from twilio.request_validator import RequestValidator

from shared.delivery.gateway import CONNECTION_OVERRIDES
from shared.payloads import InboundWebhook, StatusCallback
from tests.conftest import RecordingPublisher

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
TOKEN = "entry-point-token"
PUBLIC = "https://hooks.example.com"


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/main.py under a unique module name."""
    path = REPO / "functions" / name / "main.py"
    spec = importlib.util.spec_from_file_location(f"fn_{name}_main", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pubsub_event(topic: str, payload: Any) -> CloudEvent:
    attributes = {
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": f"//pubsub.googleapis.com/projects/ese-test/topics/{topic}",
    }
    data = {
        "message": {
            "data": base64.b64encode(payload.model_dump_json().encode()).decode(),
            "messageId": "1234",
            "publishTime": "2026-11-26T15:00:00Z",
        },
        "subscription": f"projects/ese-test/subscriptions/{topic}-push",
    }
    return CloudEvent(attributes, data)


# --- twilio_webhooks -----------------------------------------------------------


@pytest.fixture
def webhooks(monkeypatch: pytest.MonkeyPatch) -> Any:
    module = load_function("twilio_webhooks")
    publisher = RecordingPublisher()
    monkeypatch.setattr(module, "pubsub_publisher", lambda: publisher)
    monkeypatch.setattr(module, "request_validator", lambda: RequestValidator(TOKEN))
    monkeypatch.setattr(
        module, "twilio_settings", lambda: SimpleNamespace(public_base_url=PUBLIC)
    )
    monkeypatch.setattr(module, "utcnow", lambda: NOW)
    # The receipt write needs Firestore (tests/integration covers it): here it
    # is recorded, and fails unless a test says otherwise, so intake publishes.
    written: list[StatusCallback] = []
    outcome = {"write_succeeds": False}

    def write_receipt(callback: StatusCallback) -> bool:
        written.append(callback)
        return outcome["write_succeeds"]

    monkeypatch.setattr(module, "write_receipt", write_receipt)
    app = flask.Flask("webhooks-test")

    def call(
        path: str,
        params: dict[str, str],
        *,
        query: str = "",
        method: str = "POST",
        signature: str | None = None,
        json_body: bytes | None = None,
        host: str = "http://10.0.0.7:8080",
    ) -> flask.Response:
        url = f"{PUBLIC}{path}{'?' + query if query else ''}"
        headers = {
            "X-Twilio-Signature": signature
            or RequestValidator(TOKEN).compute_signature(
                url, {} if json_body is not None else params
            ),
            "I-Twilio-Idempotency-Token": "idem-1",
        }
        kwargs: dict[str, Any] = (
            {"data": json_body, "content_type": "application/json"}
            if json_body is not None
            else {"data": params}
        )
        with app.test_request_context(
            path,
            base_url=host,
            query_string=query,
            method=method,
            headers=headers,
            **kwargs,
        ):
            response: flask.Response = module.twilio_webhooks(flask.request)
        return response

    call.published = publisher.published  # type: ignore[attr-defined]
    call.written = written  # type: ignore[attr-defined]
    call.outcome = outcome  # type: ignore[attr-defined]
    call.module = module  # type: ignore[attr-defined]
    return call


@pytest.fixture
def webhooks_module(webhooks: Any) -> ModuleType:
    module: ModuleType = webhooks.module
    return module


STATUS = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+14155550100"}


SIGNED_CALLBACK = StatusCallback(
    params=STATUS,
    query={"message_id": "c1_14155550100"},
    received_at=NOW,
    idempotency_token="idem-1",
)


def test_a_signed_status_callback_is_written_and_answered_204(webhooks: Any) -> None:
    webhooks.outcome["write_succeeds"] = True
    response = webhooks("/twilio/status", STATUS, query="message_id=c1_14155550100")
    assert response.status_code == 204
    assert webhooks.written == [SIGNED_CALLBACK]
    assert webhooks.published == []


def test_a_status_callback_not_written_is_published_and_answered_204(
    webhooks: Any,
) -> None:
    response = webhooks("/twilio/status", STATUS, query="message_id=c1_14155550100")
    assert response.status_code == 204
    assert webhooks.written == [SIGNED_CALLBACK]
    [(topic, payload, _)] = webhooks.published
    assert topic == "delivery-receipts"
    assert payload == SIGNED_CALLBACK


def test_a_signed_inbound_is_answered_with_empty_twiml(webhooks: Any) -> None:
    params = {"MessageSid": "SM2", "From": "+14155550100", "Body": "STOP"}
    response = webhooks("/twilio/inbound", params)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert b"<Response/>" in response.get_data()
    assert webhooks.published[0][0] == "inbound-messages"
    assert webhooks.written == []


def test_a_forged_request_is_403_and_nothing_is_published(webhooks: Any) -> None:
    webhooks.outcome["write_succeeds"] = True
    response = webhooks("/twilio/status", STATUS, signature="forged")
    assert response.status_code == 403
    assert webhooks.published == []
    assert webhooks.written == []


def test_get_is_405(webhooks: Any) -> None:
    response = webhooks("/twilio/status", {}, method="GET")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_a_json_body_reaches_the_hash_check_unparsed(webhooks: Any) -> None:
    import hashlib

    raw = b'{"MessageSid": "SM3", "MessageStatus": "read"}'
    query = f"bodySHA256={hashlib.sha256(raw).hexdigest()}"
    response = webhooks("/twilio/status", {}, query=query, json_body=raw)
    assert response.status_code == 204
    assert webhooks.published[0][1].params == {
        "MessageSid": "SM3",
        "MessageStatus": "read",
    }


class CountingStream(io.BytesIO):
    """A request body that remembers how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.bytes_read += len(line)
        return line

    def read1(self, size: int = -1) -> bytes:
        chunk = super().read1(size)
        self.bytes_read += len(chunk)
        return chunk


def signed_large_form(size: int) -> tuple[bytes, dict[str, str]]:
    params = {**STATUS, "Body": "x" * size}
    signature = RequestValidator(TOKEN).compute_signature(
        f"{PUBLIC}/twilio/status", params
    )
    return urlencode(params).encode(), {"X-Twilio-Signature": signature}


def post_stream(
    webhooks_module: Any, body: CountingStream, headers: dict[str, str], **environ: Any
) -> flask.Response:
    app = flask.Flask("webhooks-size-test")
    with app.test_request_context(
        "/twilio/status",
        base_url="http://10.0.0.7:8080",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        input_stream=body,
        environ_overrides=environ,
    ):
        response: flask.Response = webhooks_module.twilio_webhooks(flask.request)
    return response


def test_a_body_declared_over_64_kib_is_413_and_never_read(
    webhooks: Any, webhooks_module: Any
) -> None:
    raw, headers = signed_large_form(70 * 1024)
    body = CountingStream(raw)
    response = post_stream(
        webhooks_module, body, {**headers, "Content-Length": str(len(raw))}
    )
    assert response.status_code == 413
    assert body.bytes_read == 0
    assert webhooks.published == []


def test_a_chunked_body_over_64_kib_is_413_and_read_no_further(
    webhooks: Any, webhooks_module: Any
) -> None:
    raw, headers = signed_large_form(1024 * 1024)
    body = CountingStream(raw)
    # No Content-Length; the server says the stream ends (chunked encoding).
    response = post_stream(
        webhooks_module, body, headers, **{"wsgi.input_terminated": True}
    )
    assert response.status_code == 413
    assert body.bytes_read <= 2 * 64 * 1024
    assert webhooks.published == []


def test_a_signed_body_just_under_64_kib_is_accepted(
    webhooks: Any, webhooks_module: Any
) -> None:
    raw, headers = signed_large_form(60 * 1024)
    body = CountingStream(raw)
    response = post_stream(
        webhooks_module, body, {**headers, "Content-Length": str(len(raw))}
    )
    assert response.status_code == 204
    assert webhooks.published[0][1].params["Body"] == "x" * 60 * 1024


# --- receipt_updater -------------------------------------------------------------


def test_receipt_updater_applies_the_callback_in_the_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load_function("receipt_updater")
    calls: list[tuple[Any, ...]] = []
    db = object()
    monkeypatch.setattr(module, "firestore_client", lambda: db)
    monkeypatch.setattr(module, "utcnow", lambda: NOW)
    monkeypatch.setattr(
        module,
        "apply_status_callback",
        lambda *args, **kwargs: calls.append((*args, kwargs)),
    )
    callback = StatusCallback(
        params=STATUS, query={"message_id": "c1_14155550100"}, received_at=NOW
    )
    assert module.receipt_updater(pubsub_event("delivery-receipts", callback)) is None
    [(used_db, applied, now, kwargs)] = calls
    assert (used_db, applied, now) == (db, callback, NOW)
    assert kwargs["retention"].days == 30


def test_receipt_updater_rejects_a_poison_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.platform.pubsub import PoisonMessage

    module = load_function("receipt_updater")
    monkeypatch.setattr(module, "firestore_client", lambda: object())
    event = pubsub_event(
        "delivery-receipts", InboundWebhook(params={}, received_at=NOW)
    )
    event.data["message"]["data"] = base64.b64encode(b"not json").decode()
    with pytest.raises(PoisonMessage):
        module.receipt_updater(event)


# --- inbound_processor -------------------------------------------------------------


def test_inbound_processor_processes_the_message_in_the_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load_function("inbound_processor")
    calls: list[tuple[Any, ...]] = []
    db = object()
    monkeypatch.setattr(module, "firestore_client", lambda: db)
    monkeypatch.setattr(module, "utcnow", lambda: NOW)
    monkeypatch.setattr(module, "process_inbound", lambda *args: calls.append(args))
    message = InboundWebhook(
        params={"MessageSid": "SM4", "From": "+14155550100", "Body": "HELP"},
        received_at=NOW,
    )
    module.inbound_processor(pubsub_event("inbound-messages", message))
    [(used_db, processed, _core, send_reply, now)] = calls
    assert (used_db, processed, send_reply, now) == (
        db,
        message,
        module.reply_sender(),
        NOW,
    )


def test_a_reply_is_sent_from_the_number_the_sender_wrote_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared import wiring
    from shared.inbound.processor import Reply

    # The inbound processor's replies go through the sender the wiring builds.
    module = wiring
    sent: list[Any] = []
    monkeypatch.setattr(
        module,
        "twilio_settings",
        lambda: SimpleNamespace(
            public_base_url=PUBLIC, from_number="", messaging_service_sid="MG1"
        ),
    )
    monkeypatch.setattr(
        module, "twilio_gateway", lambda: SimpleNamespace(send=sent.append)
    )
    send_reply = load_function("inbound_processor").reply_sender()
    send_reply(Reply("whatsapp:+14155550100", "whatsapp:+15005550006", "hi"))
    send_reply(Reply("+14155550100", "", "hi"))
    assert [(m.to, m.from_number, m.messaging_service_sid) for m in sent] == [
        ("whatsapp:+14155550100", "whatsapp:+15005550006", None),
        ("+14155550100", None, "MG1"),
    ]
    # Connection overrides in the fragment, so that Twilio retries a 5xx.
    assert sent[0].status_callback == f"{PUBLIC}/twilio/status#{CONNECTION_OVERRIDES}"
