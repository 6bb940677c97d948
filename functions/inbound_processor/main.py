"""inbound_processor: Pub/Sub `inbound-messages`.

Classifies an inbound message (STOP/START/HELP/REPLY), applies consent changes,
stores it, and sends a HELP reply or confirmation when configured.
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.delivery.gateway import OutboundMessage
from shared.inbound.processor import process_inbound
from shared.payloads import InboundWebhook
from shared.platform.clock import utcnow
from shared.platform.config import core_settings, twilio_settings
from shared.platform.firestore import firestore_client
from shared.platform.pubsub import parse_pubsub_payload
from shared.platform.runtime import start_function, twilio_gateway

start_function()


def send_reply(phone: str, body: str) -> None:
    settings = twilio_settings()
    twilio_gateway().send(
        OutboundMessage(
            to=phone,
            body=body,
            status_callback=f"{settings.public_base_url}/twilio/status",
            messaging_service_sid=settings.messaging_service_sid or None,
            from_number=settings.from_number or None,
        )
    )


@functions_framework.cloud_event
def inbound_processor(cloud_event: CloudEvent) -> None:
    inbound = parse_pubsub_payload(cloud_event.data, InboundWebhook)
    process_inbound(firestore_client(), inbound, core_settings(), send_reply, utcnow())
