"""receipt_updater: Pub/Sub `delivery-receipts`.

Applies one Twilio status callback to its message; a status never moves back.
"""

from datetime import timedelta

import functions_framework
from cloudevents.http import CloudEvent

from shared.delivery.receipts import apply_status_callback
from shared.payloads import StatusCallback
from shared.platform.pubsub import parse_pubsub_payload
from shared.wiring import core_settings, firestore_client, start_function, utcnow

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
