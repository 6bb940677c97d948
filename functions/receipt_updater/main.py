"""receipt_updater: Pub/Sub `delivery-receipts`.

Applies one Twilio status callback to its message; a status never moves back.
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.delivery.receipts import apply_status_callback
from shared.payloads import StatusCallback
from shared.platform.clock import utcnow
from shared.platform.firestore import firestore_client
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import parse_pubsub_payload
from shared.platform.runtime import start_function

start_function()
log = get_logger("receipt_updater")


@functions_framework.cloud_event
def receipt_updater(cloud_event: CloudEvent) -> None:
    callback = parse_pubsub_payload(cloud_event.data, StatusCallback)
    message_id = callback.query.get("message_id")
    with log_context(message_id=message_id):
        result = apply_status_callback(firestore_client(), callback, utcnow())
        log.info("status callback %s", result.outcome)
