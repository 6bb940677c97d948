"""The `campaigns` collection: the campaign document, its settings, and every
read and write of the collection (with its `pacing` and `reports` subcollections)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel, Field, field_validator, model_validator

from shared.platform.documents import document_cache
from shared.platform.firestore import count_of, operations
from shared.platform.paging import Listing
from shared.platform.ttl_cache import TtlCache

CAMPAIGNS = "campaigns"

_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class CampaignStatus(StrEnum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    ACTIVE = "ACTIVE"


FINAL_CAMPAIGN_STATUSES = frozenset(
    {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED}
)


class QuietHours(BaseModel):
    """The local period in which nothing is sent; it may wrap past midnight."""

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be HH:MM (24-hour)")
        return value


class FrequencyCap(BaseModel):
    max_messages: int = Field(ge=1)
    per_hours: int = Field(ge=1, le=24 * 31)


class Sender(BaseModel):
    messaging_service_sid: str | None = None
    from_: str | None = Field(None, alias="from")

    model_config = {"populate_by_name": True}

    @model_validator(mode="after")
    def _one_of(self) -> Sender:
        if bool(self.messaging_service_sid) == bool(self.from_):
            raise ValueError("give exactly one of messaging_service_sid or from")
        return self


class Trigger(BaseModel):
    event: str = Field(min_length=1, max_length=64)
    where: dict[str, Any] | None = None


class CampaignSettings(BaseModel):
    """What an operator sets; shared by the API schema and the document."""

    model_config = {"extra": "forbid", "populate_by_name": True}

    name: str = Field(min_length=1, max_length=200)
    template_id: str = Field(min_length=1)
    segment_id: str | None = None
    rate_limit_mps: float = Field(10.0, gt=0, le=1000)
    # "default" takes the configured default window; None means no quiet hours.
    quiet_hours: QuietHours | Literal["default"] | None = "default"
    default_timezone: str | None = None
    frequency_cap: FrequencyCap | None = None
    sender: Sender | None = None
    trigger: Trigger | None = None
    schedule_at: datetime | None = None


class Campaign(CampaignSettings):
    model_config = {"extra": "ignore", "populate_by_name": True}

    id: str
    status: CampaignStatus = CampaignStatus.DRAFT
    launch_id: str | None = None
    launched_at: datetime | None = None
    completed_at: datetime | None = None
    failure_reason: str | None = None
    paused_from: CampaignStatus | None = None
    batches_planned: int | None = None
    batches_published: int | None = None
    # Message counts per status, frozen when the campaign completes.
    final_counts: dict[str, int] | None = None
    cancel_swept: bool | None = None
    recipients_planned: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_triggered(self) -> bool:
        return self.trigger is not None

    @classmethod
    def from_snapshot(cls, snapshot: firestore.DocumentSnapshot) -> Campaign:
        return cls.model_validate({**(snapshot.to_dict() or {}), "id": snapshot.id})


def campaign_ref(db: firestore.Client, campaign_id: str) -> firestore.DocumentReference:
    return db.collection(CAMPAIGNS).document(campaign_id)


def unfinished_campaigns_using(
    db: firestore.Client,
    transaction: firestore.Transaction,
    field: Literal["template_id", "segment_id"],
    value: str,
) -> list[tuple[str, str | None]]:
    """(id, status) of the campaigns not yet final whose `field` is `value`,
    read in `transaction`: a delete in the same transaction then cannot race
    a campaign that starts using what it deletes."""
    query = (
        db.collection(CAMPAIGNS)
        .where(filter=firestore.FieldFilter(field, "==", value))
        .select(["status"])
    )
    using = []
    for snapshot in transaction.get(query):
        status = (snapshot.to_dict() or {}).get("status")
        if status not in FINAL_CAMPAIGN_STATUSES:
            using.append((snapshot.id, status))
    return using


def campaign_cache(db: firestore.Client, ttl: float) -> TtlCache[Campaign]:
    """Campaign documents cached per instance for `ttl` seconds: a pause or
    cancel still takes effect within seconds while the send path reads each
    campaign about once per instance per TTL instead of once per message."""
    return document_cache(
        ttl, lambda campaign_id: campaign_ref(db, campaign_id), Campaign.from_snapshot
    )


# ---------------------------------------------------------------- documents


def _where(field_path: str, op: str, value: object) -> firestore.FieldFilter:
    return firestore.FieldFilter(field_path, op, value)


def get_campaign(db: firestore.Client, campaign_id: str) -> Campaign | None:
    snapshot = campaign_ref(db, campaign_id).get()
    return Campaign.from_snapshot(snapshot) if snapshot.exists else None


def create_campaign(db: firestore.Client, campaign: Campaign) -> None:
    campaign_ref(db, campaign.id).create(
        campaign.model_dump(mode="python", by_alias=True, exclude={"id"})
    )


def update_campaign(
    db: firestore.Client, campaign_id: str, fields: dict[str, Any]
) -> None:
    campaign_ref(db, campaign_id).update(fields)


def update_in_transaction(
    db: firestore.Client,
    campaign_id: str,
    change: Callable[[Campaign, dict[str, Any]], dict[str, Any]],
    missing: Callable[[], Exception],
) -> Campaign:
    """Read the campaign, let `change(campaign, stored fields)` decide the
    update (or raise), and write it, atomically; the campaign as updated.
    Raises `missing()` if there is no such campaign."""
    ref = campaign_ref(db, campaign_id)

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> Campaign:
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists:
            raise missing()
        data = {**(snapshot.to_dict() or {}), "id": snapshot.id}
        update = change(Campaign.model_validate(data), data)
        transaction.update(ref, update)
        return Campaign.model_validate({**data, **update})

    updated: Campaign = apply(db.transaction())
    return updated


# ---------------------------------------------------------------- queries


def with_status(db: firestore.Client, status: CampaignStatus) -> list[Campaign]:
    query = db.collection(CAMPAIGNS).where(filter=_where("status", "==", status.value))
    return [Campaign.from_snapshot(s) for s in query.stream()]


def ids_scheduled_by(db: firestore.Client, now: datetime) -> list[str]:
    """SCHEDULED campaigns whose `schedule_at` is `now` or earlier."""
    due = (
        db.collection(CAMPAIGNS)
        .where(filter=_where("status", "==", CampaignStatus.SCHEDULED.value))
        .where(filter=_where("schedule_at", "<=", now))
    )
    return [snapshot.id for snapshot in due.stream()]


def ids_cancelled_unswept(db: firestore.Client) -> list[str]:
    """CANCELLED campaigns whose queued messages are not all skipped yet."""
    unfinished = (
        db.collection(CAMPAIGNS)
        .where(filter=_where("status", "==", CampaignStatus.CANCELLED.value))
        .where(filter=_where("cancel_swept", "==", False))
    )
    return [snapshot.id for snapshot in unfinished.stream()]


def mark_cancel_swept(db: firestore.Client, campaign_id: str) -> None:
    campaign_ref(db, campaign_id).update({"cancel_swept": True})


def triggered_by(
    db: firestore.Client, event_type: str, statuses: list[str]
) -> list[Campaign]:
    """The campaigns in `statuses` triggered by `event_type`."""
    query = (
        db.collection(CAMPAIGNS)
        .where(filter=_where("trigger.event", "==", event_type))
        .where(filter=_where("status", "in", statuses))
    )
    campaigns = [Campaign.from_snapshot(s) for s in query.stream()]
    # A query is billed at least one read even when it finds nothing.
    operations.add("reads", max(1, len(campaigns)))
    return campaigns


def every_campaign(
    db: firestore.Client, status: CampaignStatus | None = None
) -> Listing[Campaign]:
    """The campaigns (of one status, if given), by id."""
    collection = db.collection(CAMPAIGNS)
    query: firestore.Query = firestore.Query(collection)
    if status is not None:
        query = query.where(filter=_where("status", "==", status.value))
    return Listing(query, collection, Campaign.from_snapshot)


def by_status_queries(db: firestore.Client) -> dict[str, firestore.Query]:
    """Per status, the campaigns in it (dashboard panel)."""
    campaigns = db.collection(CAMPAIGNS)
    return {
        status.value: campaigns.where(filter=_where("status", "==", status.value))
        for status in CampaignStatus
    }


# ---------------------------------------------------------------- pacing
# campaigns/{id}/pacing/{launch_id}: the launch's cursor (`next_at`), and under
# it batches/{batch_no}: each batch's reserved interval and its `done` flag.

PACING = "pacing"
BATCHES = "batches"


def _cursor_ref(
    db: firestore.Client, campaign_id: str, launch_id: str
) -> firestore.DocumentReference:
    return campaign_ref(db, campaign_id).collection(PACING).document(launch_id)


def _reservation_ref(
    db: firestore.Client, campaign_id: str, launch_id: str, batch_no: int
) -> firestore.DocumentReference:
    return (
        _cursor_ref(db, campaign_id, launch_id)
        .collection(BATCHES)
        .document(str(batch_no))
    )


def reserve_interval(
    db: firestore.Client,
    campaign_id: str,
    launch_id: str,
    batch_no: int | None,
    take: Callable[[datetime | None], tuple[datetime, datetime]],
    segments: int,
) -> datetime:
    """Take an interval from the launch's pacing cursor, in one transaction;
    its begin. `take` answers (begin, end) from the cursor's next free instant
    (None before the first reservation); `end` becomes the cursor. With a
    `batch_no`, the reservation is recorded, and a batch that reserved before
    gets its first reservation back."""
    cursor = _cursor_ref(db, campaign_id, launch_id)
    reservation = (
        _reservation_ref(db, campaign_id, launch_id, batch_no)
        if batch_no is not None
        else None
    )

    @firestore.transactional
    def reserve(transaction: firestore.Transaction) -> datetime:
        if reservation is not None:
            held = reservation.get(transaction=transaction)
            if held.exists:
                return (held.to_dict() or {})["begin"]
        state = cursor.get(transaction=transaction)
        next_at = (state.to_dict() or {}).get("next_at") if state.exists else None
        begin, end = take(next_at)
        transaction.set(cursor, {"next_at": end})
        if reservation is not None:
            transaction.set(reservation, {"begin": begin, "segments": segments})
        return begin

    operations.add("writes", 2)
    # Parallel batches contend for the one cursor; retry more than the default.
    begin: datetime = reserve(db.transaction(max_attempts=20))
    return begin


def mark_batch_done(
    db: firestore.Client, campaign_id: str, launch_id: str, batch_no: int
) -> None:
    """Launch progress: the scheduler counts done batches against the plan."""
    operations.add("writes")
    _reservation_ref(db, campaign_id, launch_id, batch_no).update({"done": True})


def count_batches_done(db: firestore.Client, campaign_id: str, launch_id: str) -> int:
    return count_of(
        _cursor_ref(db, campaign_id, launch_id)
        .collection(BATCHES)
        .where(filter=_where("done", "==", True))
    )


# ---------------------------------------------------------------- reports
# campaigns/{id}/reports/summary: the summary frozen at completion.
# campaigns/{id}/reports/live: the last summary computed before completion, with
# the lease of the one caller refreshing it (`refresh_until`).

REPORTS = "reports"
FROZEN_SUMMARY = "summary"
LIVE_SUMMARY = "live"


def _frozen_summary_ref(
    db: firestore.Client, campaign_id: str
) -> firestore.DocumentReference:
    return campaign_ref(db, campaign_id).collection(REPORTS).document(FROZEN_SUMMARY)


def freeze_summary(
    db: firestore.Client, campaign_id: str, summary: dict[str, Any]
) -> dict[str, Any] | None:
    """Store the frozen summary unless one exists; the existing one if so
    (a concurrent first read froze it a moment ago: that one stands)."""
    ref = _frozen_summary_ref(db, campaign_id)
    try:
        ref.create(summary)
    except gexc.AlreadyExists:
        return ref.get().to_dict() or {}
    operations.add("writes")
    return None


def _live_summary_ref(
    db: firestore.Client, campaign_id: str
) -> firestore.DocumentReference:
    return campaign_ref(db, campaign_id).collection(REPORTS).document(LIVE_SUMMARY)


@dataclass(frozen=True)
class LiveSummary:
    """The live snapshot as read: the summary (None until one is stored), when
    its recount ended, when a refresh lease runs out, and the version a lease
    is taken against."""

    summary: dict[str, Any] | None
    refresh_until: datetime | None
    update_time: Any
    counted_at: datetime | None = None


@dataclass(frozen=True)
class SummaryDocuments:
    campaign: Campaign
    fields: dict[str, Any]
    frozen: dict[str, Any] | None
    live: LiveSummary | None


def summary_documents(
    db: firestore.Client, campaign_id: str
) -> SummaryDocuments | None:
    """The campaign, its frozen summary and its live snapshot, in one batched
    read (None if there is no such campaign)."""
    refs = [
        campaign_ref(db, campaign_id),
        _frozen_summary_ref(db, campaign_id),
        _live_summary_ref(db, campaign_id),
    ]
    by_path = {snapshot.reference.path: snapshot for snapshot in db.get_all(refs)}
    operations.add("reads", sum(1 for found in by_path.values() if found.exists))
    campaign, frozen, live = (by_path.get(ref.path) for ref in refs)
    if campaign is None or not campaign.exists:
        return None
    return SummaryDocuments(
        campaign=Campaign.from_snapshot(campaign),
        fields=campaign.to_dict() or {},
        frozen=(frozen.to_dict() or {}) if frozen and frozen.exists else None,
        live=_live(live) if live and live.exists else None,
    )


def _live(snapshot: firestore.DocumentSnapshot) -> LiveSummary:
    data = snapshot.to_dict() or {}
    return LiveSummary(
        summary=data.get("summary"),
        refresh_until=data.get("refresh_until"),
        update_time=snapshot.update_time,
        counted_at=data.get("counted_at"),
    )


def lease_summary_refresh(
    db: firestore.Client, campaign_id: str, read: LiveSummary | None, until: datetime
) -> Any | None:
    """Take the refresh lease of the live snapshot, provided the snapshot is
    still the version `read` (absent if None): of callers that read the same
    version, exactly one wins. The lease's version if won, None if not."""
    ref = _live_summary_ref(db, campaign_id)
    try:
        if read is None:
            result = ref.create({"summary": None, "refresh_until": until})
        else:
            result = ref.update(
                {"refresh_until": until},
                option=db.write_option(last_update_time=read.update_time),
            )
    except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound):
        return None
    operations.add("writes")
    return result.update_time


def store_live_summary(
    db: firestore.Client,
    campaign_id: str,
    summary: dict[str, Any],
    lease: Any,
    counted_at: datetime,
) -> bool:
    """Store the snapshot, counted until `counted_at`, and end the lease, unless
    the lease was lost (it ran out and another caller took it): a newer refresh
    must not be overwritten."""
    ref = _live_summary_ref(db, campaign_id)
    try:
        ref.update(
            {"summary": summary, "counted_at": counted_at, "refresh_until": None},
            option=db.write_option(last_update_time=lease),
        )
    except (gexc.FailedPrecondition, gexc.NotFound):
        return False
    operations.add("writes")
    return True
