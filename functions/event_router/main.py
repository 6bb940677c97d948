"""event_router: Pub/Sub `events`.

Matches an ingested event to the ACTIVE triggered campaigns for its type.
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.payloads import IngestedEvent
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import parse_pubsub_payload
from shared.platform.runtime import start_function

start_function()
log = get_logger("event_router")


@functions_framework.cloud_event
def event_router(cloud_event: CloudEvent) -> None:
    event = parse_pubsub_payload(cloud_event.data, IngestedEvent)
    with log_context(event_id=event.event_id):
        # Triggered campaigns arrive with the event-triggered issue.
        log.info("event %s received; no triggered campaigns yet", event.type)
