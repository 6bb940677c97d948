"""Routing an ingested event to the triggered campaigns that answer its type.

For one event the router:
1. takes the ACTIVE and PAUSED triggered campaigns for the event's type (one
   query, cached per instance for a few seconds);
2. screens each on the event alone: PAUSED → ignored (recorded, never queued
   for later), `where` over the properties → where_mismatch;
3. reads the user only if a campaign is still in (an unknown phone is
   recorded as unknown_user; no user is created), and checks each campaign's
   segment against that one user in memory;
4. renders the message with the event in scope as `event` = {event_id, type,
   occurred_at, properties} (shared/campaigns/planning.py, as every path
   renders), creates `messages/{campaign}_{recipient_key}_{event_id}` and enqueues
   its send; a render that fails skips that message as `render_failed`;
5. records the outcome on `events/{event_id}` in one write.

Redelivery is harmless: message ids are deterministic and created with
`create()`; an existing message is re-enqueued only while still QUEUED, under
the task name it was first enqueued with, so the queue dedupes it. Consent,
frequency caps, quiet hours and content are checked at send time, as for any
message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from shared.audience.phones import InvalidPhone, normalize_phone
from shared.audience.segments import matches_properties, user_matches
from shared.campaigns.planning import PlannedMessage, render_for
from shared.delivery.messages import message_id_for, send_task
from shared.delivery.pacing import PacingLedger, steady_span
from shared.payloads import IngestedEvent
from shared.platform.config import CoreSettings
from shared.platform.firestore import Database
from shared.platform.tasks import SendTask, TaskQueue
from shared.platform.ttl_cache import TtlCache
from shared.store import campaigns as campaign_store
from shared.store import messages as message_store
from shared.store.campaigns import Campaign, CampaignStatus
from shared.store.events import EventStatus, event_ref, get_event_doc, record_routing
from shared.store.messages import MessageStatus, StoredMessage, status_of
from shared.store.segments import segment_definition
from shared.store.templates import Template, template_cache
from shared.store.users import User, get_user

TRIGGERED_STATUSES = [CampaignStatus.ACTIVE.value, CampaignStatus.PAUSED.value]
# Templates and segments change rarely; campaigns (pause!) use the core
# setting's shorter TTL so a pause takes effect within seconds.
SETTINGS_CACHE_SECONDS = 10.0
MAX_REPORTED_MESSAGES = 100


class NotMatched(StrEnum):
    IGNORED_PAUSED = "ignored_paused"
    WHERE_MISMATCH = "where_mismatch"
    UNKNOWN_USER = "unknown_user"
    SEGMENT_MISMATCH = "segment_mismatch"
    SEGMENT_NOT_FOUND = "segment_not_found"
    TEMPLATE_NOT_FOUND = "template_not_found"


class CampaignPacer:
    """Spaces this instance's sends of each campaign at the campaign's rate, in
    memory (why not on a cursor document: shared/delivery/pacing.py)."""

    def __init__(self) -> None:
        self._ledger: PacingLedger[datetime] = PacingLedger()

    def reserve(self, campaign: Campaign, segments: int, now: datetime) -> datetime:
        seconds = steady_span(segments, campaign.rate_limit_mps)
        return self._ledger.take(campaign.id, now, seconds)


@dataclass
class RouterDeps:
    db: Database
    tasks: TaskQueue
    core: CoreSettings
    triggered: TtlCache[list[Campaign]]
    templates: TtlCache[Template]
    segments: TtlCache[dict[str, Any]]
    pacer: CampaignPacer = field(default_factory=CampaignPacer)


def triggered_campaigns(db: Database, event_type: str) -> list[Campaign]:
    """The ACTIVE and PAUSED campaigns triggered by `event_type`."""
    return campaign_store.triggered_by(db, event_type, TRIGGERED_STATUSES)


def build_router_deps(db: Database, tasks: TaskQueue, core: CoreSettings) -> RouterDeps:
    return RouterDeps(
        db=db,
        tasks=tasks,
        core=core,
        triggered=TtlCache(
            core.campaign_cache_seconds, lambda t: triggered_campaigns(db, t)
        ),
        templates=template_cache(db, SETTINGS_CACHE_SECONDS),
        segments=TtlCache(SETTINGS_CACHE_SECONDS, lambda s: segment_definition(db, s)),
    )


# ---------------------------------------------------------------- decisions


def screen_on_event(
    campaign: Campaign, properties: dict[str, Any], now: datetime
) -> NotMatched | None:
    """Why the event alone keeps `campaign` from answering it, if it does."""
    if campaign.status is CampaignStatus.PAUSED:
        return NotMatched.IGNORED_PAUSED
    where = campaign.trigger.where if campaign.trigger else None
    if where is not None and not matches_properties(where, properties, now):
        return NotMatched.WHERE_MISMATCH
    return None


def screen_recipient(
    campaign: Campaign,
    user: User | None,
    segment: dict[str, Any] | None,
    now: datetime,
) -> NotMatched | None:
    """Why the recipient keeps `campaign` from answering, if it does."""
    if user is None:
        return NotMatched.UNKNOWN_USER
    if campaign.segment_id is None:
        return None
    if segment is None:
        return NotMatched.SEGMENT_NOT_FOUND
    if not user_matches(segment, user, now):
        return NotMatched.SEGMENT_MISMATCH
    return None


# ---------------------------------------------------------------- routing


@dataclass(frozen=True)
class Match:
    campaign_id: str
    message_id: str


@dataclass(frozen=True)
class Miss:
    campaign_id: str
    reason: str


@dataclass
class RouteOutcome:
    matched: list[Match] = field(default_factory=list)
    not_matched: list[Miss] = field(default_factory=list)
    enqueued: int = 0

    @property
    def status(self) -> EventStatus:
        return EventStatus.MATCHED if self.matched else EventStatus.UNMATCHED


def route_event(deps: RouterDeps, event: IngestedEvent, now: datetime) -> RouteOutcome:
    """Plan the messages `event` causes and record the outcome; safe to redeliver."""
    outcome = RouteOutcome()
    candidates: list[Campaign] = []
    for campaign in deps.triggered.get(event.type) or []:
        reason = screen_on_event(campaign, event.properties, now)
        if reason is None:
            candidates.append(campaign)
        else:
            outcome.not_matched.append(Miss(campaign.id, reason.value))
    # The user is read only when some campaign still wants the event.
    user = _recipient(deps, event.phone) if candidates else None
    planned: list[PlannedMessage] = []
    for campaign in candidates:
        plan = _plan_message(deps, campaign, user, event, now)
        if isinstance(plan, NotMatched):
            outcome.not_matched.append(Miss(campaign.id, plan.value))
        else:
            planned.append(plan)
            outcome.matched.append(Match(campaign.id, plan.message_id))
    outcome.enqueued = create_and_record(deps, event.event_id, outcome, planned, now)
    return outcome


def _recipient(deps: RouterDeps, phone: str) -> User | None:
    try:
        normalized = normalize_phone(phone, deps.core.default_region)
    except InvalidPhone:
        return None
    return get_user(deps.db, normalized)


def _plan_message(
    deps: RouterDeps,
    campaign: Campaign,
    user: User | None,
    event: IngestedEvent,
    now: datetime,
) -> PlannedMessage | NotMatched:
    if user is None:
        return NotMatched.UNKNOWN_USER
    segment = deps.segments.get(campaign.segment_id) if campaign.segment_id else None
    reason = screen_recipient(campaign, user, segment, now)
    if reason is not None:
        return reason
    template = deps.templates.get(campaign.template_id)
    if template is None:
        return NotMatched.TEMPLATE_NOT_FOUND
    doc = render_for(template, user, campaign, deps.core, now, event=event)
    doc["event_id"] = event.event_id
    message_id = message_id_for(campaign.id, user.phone, event.event_id)
    message = PlannedMessage(message_id, doc)
    # A redelivered event reserves a slot it will not use (its message
    # exists); that costs a later send 1/rate seconds, never a duplicate.
    doc["send_at"] = (
        deps.pacer.reserve(campaign, doc["segments"], now) if message.sendable else now
    )
    return message


def create_and_record(
    deps: RouterDeps,
    event_id: str,
    outcome: RouteOutcome,
    planned: list[PlannedMessage],
    now: datetime,
) -> int:
    """Create the messages, record the route, enqueue the sends.

    The common case is one atomic commit: the messages and the event's record
    together, one round trip. If a message exists already (a redelivery), the
    commit fails whole and each message is taken one by one instead.
    Returns the send tasks created.
    """
    versions = message_store.create_all_or_none(
        deps.db,
        [(message.message_id, message.doc) for message in planned],
        merge_also=(event_ref(deps.db, event_id), route_record(outcome, now)),
    )
    if versions is None:
        tasks = [task for p in planned if (task := _create_message(deps.db, p))]
        record_route(deps.db, event_id, outcome, now)
    else:
        tasks = [
            send_task(p.message_id, p.doc, version)
            for p, version in zip(planned, versions, strict=True)
            if p.sendable
        ]
    return deps.tasks.enqueue(tasks).created if tasks else 0


def _create_message(db: Database, message: PlannedMessage) -> SendTask | None:
    version = message_store.create(db, message.message_id, message.doc)
    if version is None:
        # A redelivery: re-enqueue only a message still waiting to be sent.
        # The task name repeats the original, so a send already enqueued is
        # deduped.
        found = message_store.tasks_of_still_queued(db, [message.message_id], send_task)
        return found[0] if found else None
    if not message.sendable:
        return None
    return send_task(message.message_id, message.doc, version)


def route_record(outcome: RouteOutcome, now: datetime) -> dict[str, Any]:
    return {
        "status": outcome.status.value,
        "routed_at": now,
        "matched": [asdict(m) for m in outcome.matched],
        "not_matched": [asdict(m) for m in outcome.not_matched],
    }


def record_route(
    db: Database, event_id: str, outcome: RouteOutcome, now: datetime
) -> None:
    """Merged, so an event published without its document still gets one."""
    record_routing(db, event_id, route_record(outcome, now))


# ---------------------------------------------------------------- reporting


class CausedMessage(BaseModel):
    id: str
    campaign_id: str
    status: MessageStatus
    skip_reason: str | None = None


class EventReport(BaseModel):
    """GET /v1/events/{event_id}: the event, its routing and its messages."""

    event_id: str
    type: str | None = None
    phone: str | None = None
    properties: dict[str, Any] = {}
    occurred_at: datetime | None = None
    received_at: datetime | None = None
    status: str = EventStatus.RECEIVED.value
    routed_at: datetime | None = None
    matched: list[dict[str, str]] = []
    not_matched: list[dict[str, str]] = []
    messages: list[CausedMessage] = []


def describe_event(db: Database, event_id: str) -> EventReport | None:
    stored = get_event_doc(db, event_id)
    if stored is None:
        return None
    # Messages are found by their event_id, not only by the ids recorded on
    # the event, so the report holds whatever any delivery of it created.
    messages = [
        _caused_message(message)
        for message in message_store.of_event(db, event_id, MAX_REPORTED_MESSAGES)
    ]
    return EventReport.model_validate(
        {**stored, "event_id": event_id, "messages": messages}
    )


def _caused_message(message: StoredMessage) -> CausedMessage:
    data = message.data
    return CausedMessage(
        id=message.id,
        campaign_id=data.get("campaign_id", ""),
        status=status_of(int(data["status_rank"])),
        skip_reason=data.get("skip_reason"),
    )
