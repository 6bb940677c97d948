"""twilio_webhooks: HTTP, public, signed by Twilio.

POST /twilio/status and /twilio/inbound: validate X-Twilio-Signature against
PUBLIC_BASE_URL; apply a status callback to its message (or publish it when
that write fails), publish an inbound message, and answer fast.
"""

import flask
import functions_framework
from werkzeug.exceptions import RequestEntityTooLarge

from shared.delivery.receipts import apply_at_intake
from shared.payloads import StatusCallback
from shared.webhooks.intake import (
    MAX_WEBHOOK_BODY_BYTES,
    TOO_LARGE,
    IntakeResult,
    WebhookRequest,
    accept_webhook,
    declared_too_large,
)
from shared.wiring import (
    firestore_client,
    pubsub_publisher,
    request_validator,
    start_function,
    twilio_settings,
    utcnow,
)

start_function()


def webhook_request(request: flask.Request) -> WebhookRequest:
    json_body = request.is_json
    return WebhookRequest(
        method=request.method,
        path=request.path,
        # Raw bytes, not re-encoded args: Twilio signed the query as it gave it.
        query_string=request.query_string.decode("latin-1"),
        # Read before the form: a JSON body must reach the hash check unparsed.
        raw_body=request.get_data(cache=True) if json_body else b"",
        form=request.form.to_dict(flat=False),
        signature=request.headers.get("X-Twilio-Signature"),
        idempotency_token=request.headers.get("I-Twilio-Idempotency-Token"),
        json_body=json_body,
    )


def write_receipt(callback: StatusCallback) -> bool:
    return apply_at_intake(firestore_client(), callback)


def intake(request: flask.Request) -> IntakeResult:
    if declared_too_large(request.content_length):
        return TOO_LARGE
    # A body without Content-Length (chunked) is cut off past the limit.
    request.max_content_length = MAX_WEBHOOK_BODY_BYTES
    try:
        webhook = webhook_request(request)
    except RequestEntityTooLarge:
        return TOO_LARGE
    return accept_webhook(
        request_validator(),
        twilio_settings().public_base_url,
        pubsub_publisher(),
        webhook,
        utcnow(),
        write_receipt,
    )


@functions_framework.http
def twilio_webhooks(request: flask.Request) -> flask.Response:
    result = intake(request)
    return flask.Response(
        result.body,
        status=result.status,
        content_type=result.content_type,
        headers=dict(result.headers),
    )
