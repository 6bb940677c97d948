"""The `campaigns` collection: the campaign document, its settings, and every
read and write of the collection (with its `pacing` and `reports` subcollections)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from google.cloud import firestore
from pydantic import BaseModel, Field, field_validator, model_validator

from shared.platform.firestore import operations
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

    def load(campaign_id: str) -> Campaign | None:
        operations.add("reads")
        snapshot = campaign_ref(db, campaign_id).get()
        return Campaign.from_snapshot(snapshot) if snapshot.exists else None

    return TtlCache(ttl, load)
