"""event_router: Pub/Sub `events`.

Matches an ingested event to the ACTIVE triggered campaigns for its type and
plans that user's message; records the outcome on the event. Redelivery is
harmless.
"""

from functools import lru_cache

import functions_framework
from cloudevents.http import CloudEvent

from shared.events.router import RouterDeps, build_router_deps, route_event
from shared.payloads import IngestedEvent
from shared.platform.clock import utcnow
from shared.platform.config import core_settings
from shared.platform.firestore import firestore_client
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import parse_pubsub_payload
from shared.platform.runtime import start_function, task_queue

start_function()
log = get_logger("event_router")


@lru_cache(maxsize=1)
def router_deps() -> RouterDeps:
    # Built once per instance: its caches and pacer live as long as it does.
    return build_router_deps(firestore_client(), task_queue(), core_settings())


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
