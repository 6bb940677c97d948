"""inbound_processor: Pub/Sub `inbound-messages`.

Classifies an inbound message (STOP/START/HELP/REPLY), applies consent changes,
stores it, and sends a HELP reply or confirmation when configured.
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.delivery.gateway import OutboundMessage, status_callback_url
from shared.inbound.processor import Reply, process_inbound
from shared.payloads import InboundWebhook
from shared.platform.clock import utcnow
from shared.platform.config import core_settings, twilio_settings
from shared.platform.firestore import firestore_client
from shared.platform.pubsub import parse_pubsub_payload
from shared.platform.runtime import start_function, twilio_gateway

start_function()


def send_reply(reply: Reply) -> None:
    settings = twilio_settings()
    # From the number the sender wrote to; the configured sender otherwise.
    from_number = reply.from_number or settings.from_number or None
    service_sid = None if from_number else settings.messaging_service_sid or None
    twilio_gateway().send(
        OutboundMessage(
            to=reply.to,
            body=reply.body,
            status_callback=status_callback_url(settings.public_base_url),
            messaging_service_sid=service_sid,
            from_number=from_number,
        )
    )


@functions_framework.cloud_event
def inbound_processor(cloud_event: CloudEvent) -> None:
    inbound = parse_pubsub_payload(cloud_event.data, InboundWebhook)
    process_inbound(firestore_client(), inbound, core_settings(), send_reply, utcnow())
