"""Twilio webhook intake: check the signature, then store or publish.

A status callback that names its message is applied right here: the one blind,
idempotent write of `shared.delivery.receipts` (a 204 means it is committed).
Any other callback, or one whose write fails, is published to
`delivery-receipts` as before, and an inbound message always goes to
`inbound-messages`. Intake keeps no state of its own, so a duplicate webhook is
answered exactly like the first one, and the writes make it harmless.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs, parse_qsl

from pydantic import BaseModel
from twilio.request_validator import RequestValidator

from shared.payloads import InboundWebhook, StatusCallback
from shared.platform.logging import get_logger
from shared.platform.pubsub import Publisher, Topic

log = get_logger(__name__)

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio puts the body's SHA-256 in the signed URL when it posts JSON.
BODY_HASH_PARAM = "bodySHA256"
# Twilio's callbacks are a few KiB; the endpoint is public, so a larger body is
# refused before it is read (docs/architecture.md §9).
MAX_WEBHOOK_BODY_BYTES = 64 * 1024


# Applies a status callback now; False when it must go through the queue.
ReceiptWriter = Callable[[StatusCallback], bool]


@dataclass(frozen=True)
class WebhookRequest:
    """The parts of an HTTP request that intake reads, free of any web framework."""

    method: str
    path: str
    query_string: str
    # Every value of every form field: the signature covers repeated fields too.
    form: Mapping[str, Sequence[str]]
    signature: str | None
    idempotency_token: str | None = None
    json_body: bool = False
    raw_body: bytes = b""


@dataclass(frozen=True)
class IntakeResult:
    status: int
    body: str = ""
    content_type: str = "text/plain"
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Route:
    topic: Topic
    accepted: IntakeResult


ROUTES: dict[str, Route] = {
    STATUS_PATH: Route(Topic.DELIVERY_RECEIPTS, IntakeResult(204)),
    INBOUND_PATH: Route(
        Topic.INBOUND_MESSAGES, IntakeResult(200, EMPTY_TWIML, "text/xml")
    ),
}

NOT_ALLOWED = IntakeResult(405, "method not allowed", headers={"Allow": "POST"})
NOT_FOUND = IntakeResult(404, "not found")
FORBIDDEN = IntakeResult(403, "invalid signature", reason="signature_rejected")
UNSUPPORTED_BODY = IntakeResult(400, "unsupported body", reason="unsupported_body")
PUBLISH_FAILED = IntakeResult(503, "publish failed", reason="publish_failed")
TOO_LARGE = IntakeResult(413, "body too large", reason="body_too_large")


def declared_too_large(content_length: int | None) -> bool:
    """A Content-Length over the limit: refused without reading a byte."""
    return content_length is not None and content_length > MAX_WEBHOOK_BODY_BYTES


class _FormValues(dict[str, list[str]]):
    """Form fields with all their values, in the shape RequestValidator reads."""

    def getlist(self, key: str) -> list[str]:
        return self[key]


def public_url(public_base_url: str, request: WebhookRequest) -> str:
    """The URL Twilio signed: our public base, never the URL seen behind a proxy.

    The query string is kept byte for byte: Twilio signs it as it was given.
    """
    query = f"?{request.query_string}" if request.query_string else ""
    return f"{public_base_url.rstrip('/')}{request.path}{query}"


def signature_valid(
    validator: RequestValidator, public_base_url: str, request: WebhookRequest
) -> bool:
    """Twilio's own check; `validate` also tries the URL with and without a port."""
    if not request.signature:
        return False
    url = public_url(public_base_url, request)
    if request.json_body:
        # A JSON webhook signs the URL alone; the URL carries the body's hash,
        # which `validate` compares when given the raw body as a string.
        if BODY_HASH_PARAM not in parse_qs(request.query_string):
            return False
        body = request.raw_body.decode("utf-8", "replace")
        return bool(validator.validate(url, body, request.signature))
    form = _FormValues({key: list(values) for key, values in request.form.items()})
    return bool(validator.validate(url, form, request.signature))


def webhook_params(request: WebhookRequest) -> dict[str, str] | None:
    """The webhook's parameters as one string per name; None if unreadable."""
    if not request.json_body:
        return {key: values[0] for key, values in request.form.items() if values}
    try:
        decoded = json.loads(request.raw_body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict):
        return None
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in decoded.items()
    }


def webhook_payload(
    request: WebhookRequest, params: dict[str, str], now: datetime
) -> BaseModel:
    if request.path == STATUS_PATH:
        return StatusCallback(
            params=params,
            query=dict(parse_qsl(request.query_string)),
            received_at=now,
            idempotency_token=request.idempotency_token,
        )
    return InboundWebhook(params=params, received_at=now)


def accept_webhook(
    validator: RequestValidator,
    public_base_url: str,
    publisher: Publisher,
    request: WebhookRequest,
    now: datetime,
    write_receipt: ReceiptWriter | None = None,
) -> IntakeResult:
    """Validate, then apply a status callback with `write_receipt` or publish
    to the route's topic; 403 stores and publishes nothing."""
    route = ROUTES.get(request.path)
    if route is None:
        return NOT_FOUND
    if request.method.upper() != "POST":
        return NOT_ALLOWED
    if not signature_valid(validator, public_base_url, request):
        log.warning(
            "webhook signature rejected on %s",
            request.path,
            extra={"labels": {"event": "signature_rejected"}},
        )
        return FORBIDDEN
    params = webhook_params(request)
    if params is None:
        return UNSUPPORTED_BODY
    payload = webhook_payload(request, params, now)
    if (
        write_receipt is not None
        and isinstance(payload, StatusCallback)
        and write_receipt(payload)
    ):
        return route.accepted
    try:
        publisher.publish(route.topic, payload)
    except Exception:
        # Twilio retries a 5xx; nothing was stored, so its retry is safe.
        log.exception(
            "webhook publish failed on %s",
            request.path,
            extra={"labels": {"event": "webhook_publish_failed"}},
        )
        return PUBLISH_FAILED
    return route.accepted
