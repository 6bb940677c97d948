"""receipt_updater: Pub/Sub `delivery-receipts`.

Applies one Twilio status callback to its message; a status never moves back.
"""

from datetime import timedelta

import functions_framework
from cloudevents.http import CloudEvent

from shared.delivery.receipts import apply_status_callback
from shared.payloads import StatusCallback
from shared.platform.clock import utcnow
from shared.platform.config import core_settings
from shared.platform.firestore import firestore_client
from shared.platform.pubsub import parse_pubsub_payload
from shared.platform.runtime import start_function

start_function()


@functions_framework.cloud_event
def receipt_updater(cloud_event: CloudEvent) -> None:
    callback = parse_pubsub_payload(cloud_event.data, StatusCallback)
    # Returns normally for callbacks that match nothing: a retry cannot help them.
    apply_status_callback(
        firestore_client(),
        callback,
        utcnow(),
        retention=timedelta(days=core_settings().raw_retention_days),
    )
