"""message_sender: HTTP target of the Cloud Tasks queue `message-sends` (OIDC).

Runs the compliance pipeline for one message and sends it through Twilio.
200 acknowledges the task; 503 makes Cloud Tasks retry it with backoff.
"""

import flask
import functions_framework
from pydantic import ValidationError

from shared.delivery.sender import send_message
from shared.payloads import SendTaskBody
from shared.platform.logging import get_logger, log_context
from shared.wiring import sender_deps, start_function

start_function()
log = get_logger("message_sender")


@functions_framework.http
def message_sender(request: flask.Request) -> tuple[str, int]:
    try:
        task = SendTaskBody.model_validate_json(request.get_data())
    except ValidationError:
        # A malformed task can never succeed: acknowledge it instead of retrying.
        log.error("malformed send task dropped")
        return "bad task", 200
    campaign_id = (task.message or {}).get("campaign_id")
    with log_context(campaign_id=campaign_id, message_id=task.message_id):
        result = send_message(sender_deps(), task)
    return result.outcome, result.http_status
