"""The composition root: every function's dependencies, built once per process.

One pattern for all nine entry points: a function imports its providers from
here and calls them; each provider is an `@once` builder (or a settings
loader, itself built once), so clients, caches, pacers and rate guards live as
long as the instance. Nothing else builds a dependency.
"""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from shared.api.context import ApiContext
from shared.delivery.gateway import TwilioGateway
from shared.delivery.replies import send_reply
from shared.delivery.sender import SenderDeps
from shared.events.router import RouterDeps, build_router_deps
from shared.inbound.processor import Reply, ReplySender
from shared.platform.clock import utcnow
from shared.platform.config import (
    api_settings,
    core_settings,
    task_settings,
    twilio_api_key_settings,
    twilio_settings,
    twilio_signature_settings,
)
from shared.platform.firestore import firestore_client
from shared.platform.logging import configure_logging
from shared.platform.once import once
from shared.platform.pubsub import pubsub_publisher
from shared.platform.tasks import TaskQueue, build_task_queue
from shared.store.campaigns import campaign_cache
from shared.webhooks.signature import AnyTokenValidator

# Providers built elsewhere in the platform layer, handed out from here too so
# that an entry point has one place to get every dependency from.
__all__ = [
    "api_context",
    "core_settings",
    "firestore_client",
    "pubsub_publisher",
    "reply_sender",
    "request_validator",
    "router_deps",
    "sender_deps",
    "start_function",
    "task_queue",
    "twilio_gateway",
    "twilio_settings",
    "utcnow",
]


def start_function() -> None:
    """Fail fast on missing settings and set up structured logging."""
    core = core_settings()
    configure_logging(core.log_level, core.gcp_project, core.default_region)


@once
def task_queue() -> TaskQueue:
    settings = task_settings()
    return build_task_queue(
        backend=settings.backend,
        project=core_settings().gcp_project,
        location=settings.location,
        queue=settings.queue,
        target_url=settings.message_sender_url,
        service_account_email=settings.service_account_email,
        local_dispatcher_url=settings.local_dispatcher_url,
    )


@once
def twilio_gateway() -> TwilioGateway:
    return TwilioGateway(twilio_settings(), twilio_api_key_settings())


@once
def request_validator() -> RequestValidator:
    return AnyTokenValidator(twilio_signature_settings().auth_token)


@once
def sender_deps() -> SenderDeps:
    core = core_settings()
    db = firestore_client()
    return SenderDeps(
        db=db,
        gateway=twilio_gateway(),
        tasks=task_queue(),
        core=core,
        twilio=twilio_settings(),
        campaigns=campaign_cache(db, core.campaign_cache_seconds),
        clock=utcnow,
    )


@once
def router_deps() -> RouterDeps:
    # Its caches and pacer live as long as the instance does.
    return build_router_deps(firestore_client(), task_queue(), core_settings())


@once
def reply_sender() -> ReplySender:
    def send(reply: Reply) -> None:
        # The gateway is built at the first reply: most inbound messages get none.
        send_reply(
            twilio_gateway(), twilio_settings(), reply.to, reply.from_number, reply.body
        )

    return send


@once
def api_context() -> ApiContext:
    return ApiContext(
        db=firestore_client(),
        publisher=pubsub_publisher(),
        tasks=task_queue,
        core=core_settings(),
        api=api_settings(),
        clock=utcnow,
    )
