"""Twilio webhook intake: check the signature, publish the raw parameters.

Intake writes nothing to Firestore; the Pub/Sub handlers persist what they get.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

from shared.payloads import InboundWebhook, StatusCallback
from shared.platform.pubsub import Publisher, Topic

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass(frozen=True)
class WebhookRequest:
    path: str
    query_string: str
    form: Mapping[str, str]
    raw_body: bytes
    signature: str | None
    idempotency_token: str | None
    json_body: bool = False


@dataclass(frozen=True)
class IntakeResult:
    status: int
    body: str = ""
    content_type: str = "text/plain"


def public_url(public_base_url: str, request: WebhookRequest) -> str:
    """The URL Twilio signed: our public base, never the URL seen behind a proxy."""
    query = f"?{request.query_string}" if request.query_string else ""
    return f"{public_base_url.rstrip('/')}{request.path}{query}"


def signature_valid(
    validator: RequestValidator, public_base_url: str, request: WebhookRequest
) -> bool:
    if not request.signature:
        return False
    url = public_url(public_base_url, request)
    if request.json_body:
        # JSON webhooks sign the URL (with bodySHA256) and carry the body's hash.
        return bool(
            validator.validate(
                url, request.raw_body.decode("utf-8", "replace"), request.signature
            )
        )
    # RequestValidator also tries the URL with and without an explicit port.
    return bool(validator.validate(url, dict(request.form), request.signature))


def accept_webhook(
    validator: RequestValidator,
    public_base_url: str,
    publisher: Publisher,
    request: WebhookRequest,
    now: datetime,
) -> IntakeResult:
    if request.path not in (STATUS_PATH, INBOUND_PATH):
        return IntakeResult(404, "not found")
    if not signature_valid(validator, public_base_url, request):
        return IntakeResult(403, "invalid signature")
    params = {str(k): str(v) for k, v in request.form.items()}
    if request.path == STATUS_PATH:
        publisher.publish(
            Topic.DELIVERY_RECEIPTS,
            StatusCallback(
                params=params,
                query=dict(parse_qsl(request.query_string)),
                received_at=now,
                idempotency_token=request.idempotency_token,
            ),
        )
        return IntakeResult(204)
    publisher.publish(
        Topic.INBOUND_MESSAGES, InboundWebhook(params=params, received_at=now)
    )
    return IntakeResult(200, EMPTY_TWIML, "text/xml")
