"""message_sender: HTTP target of the Cloud Tasks queue `message-sends` (OIDC).

Runs the compliance pipeline for one message and sends it through Twilio.
200 acknowledges the task; 503 makes Cloud Tasks retry it with backoff.
"""

import flask
import functions_framework

from shared.delivery.sender import send_message
from shared.platform.logging import get_logger, log_context
from shared.platform.runtime import sender_deps, start_function

start_function()
log = get_logger("message_sender")


@functions_framework.http
def message_sender(request: flask.Request) -> tuple[str, int]:
    body = request.get_json(silent=True)
    message_id = body.get("message_id") if isinstance(body, dict) else None
    if not isinstance(message_id, str) or not message_id:
        # A malformed task can never succeed: acknowledge it instead of retrying.
        log.error("send task without a message_id dropped")
        return "bad task", 200
    campaign_id = message_id.rsplit("_", 1)[0]
    with log_context(campaign_id=campaign_id, message_id=message_id):
        result = send_message(sender_deps(), message_id)
    return result.outcome, result.http_status
