"""event_router: Pub/Sub `events`.

Matches an ingested event to the ACTIVE triggered campaigns for its type and
plans that user's message; records the outcome on the event. Redelivery is
harmless.
"""

import functions_framework
from cloudevents.http import CloudEvent

from shared.events.router import route_event
from shared.payloads import IngestedEvent
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import parse_pubsub_payload
from shared.wiring import router_deps, start_function, utcnow

start_function()
log = get_logger("event_router")


@functions_framework.cloud_event
def event_router(cloud_event: CloudEvent) -> None:
    event = parse_pubsub_payload(cloud_event.data, IngestedEvent)
    with log_context(event_id=event.event_id):
        outcome = route_event(router_deps(), event, utcnow())
        log.info(
            "event %s %s: %s matched, %s not matched, %s sends enqueued",
            event.type,
            outcome.status.value,
            len(outcome.matched),
            len(outcome.not_matched),
            outcome.enqueued,
        )
