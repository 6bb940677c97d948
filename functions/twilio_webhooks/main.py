"""twilio_webhooks: HTTP, public, signed by Twilio.

POST /twilio/status and /twilio/inbound: validate X-Twilio-Signature against
PUBLIC_BASE_URL, publish the raw parameters, and answer fast.
"""

import flask
import functions_framework

from shared.platform.clock import utcnow
from shared.platform.config import twilio_settings
from shared.platform.logging import get_logger
from shared.platform.pubsub import pubsub_publisher
from shared.platform.runtime import request_validator, start_function
from shared.webhooks.intake import WebhookRequest, accept_webhook

start_function()
log = get_logger("twilio_webhooks")


@functions_framework.http
def twilio_webhooks(request: flask.Request) -> flask.Response:
    webhook = WebhookRequest(
        path=request.path,
        query_string=request.query_string.decode("latin-1"),
        form=request.form.to_dict(),
        raw_body=request.get_data(cache=True),
        signature=request.headers.get("X-Twilio-Signature"),
        idempotency_token=request.headers.get("I-Twilio-Idempotency-Token"),
        json_body=request.is_json,
    )
    try:
        result = accept_webhook(
            request_validator(),
            twilio_settings().public_base_url,
            pubsub_publisher(),
            webhook,
            utcnow(),
        )
    except Exception:
        # Twilio retries a 5xx; nothing was stored, so the retry is safe.
        log.exception("webhook publish failed")
        return flask.Response("publish failed", status=503)
    if result.status == 403:
        log.warning(
            "webhook signature rejected",
            extra={"labels": {"event": "signature_rejected"}},
        )
    return flask.Response(
        result.body, status=result.status, content_type=result.content_type
    )
