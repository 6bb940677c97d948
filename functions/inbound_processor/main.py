"""inbound_processor: Pub/Sub `inbound-messages`.

Classifies an inbound message (STOP/START/HELP/REPLY), applies consent changes,
stores it, and sends a HELP reply or confirmation when configured.
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.inbound.processor import process_inbound
from shared.payloads import InboundWebhook
from shared.platform.pubsub import parse_pubsub_payload
from shared.wiring import (
    core_settings,
    firestore_client,
    reply_sender,
    start_function,
    utcnow,
)

start_function()


@functions_framework.cloud_event
def inbound_processor(cloud_event: CloudEvent) -> None:
    inbound = parse_pubsub_payload(cloud_event.data, InboundWebhook)
    process_inbound(
        firestore_client(), inbound, core_settings(), reply_sender(), utcnow()
    )
