"""A campaign's report: what was targeted, sent, delivered, skipped and failed.

Every number comes from an aggregation query (count() or sum()) over the
campaign's messages, or from a bounded read; nothing is written per message.

Once a campaign is COMPLETED its summary is frozen. The first read after
completion computes it, with the status counts taken from the scheduler's
`final_counts` and opt-outs counted up to `completed_at`, and stores it in
`campaigns/{id}/reports/summary`; every later read returns that document, so
late receipts (a READ an hour later) no longer move it. Skips and failures per
code are read at that first read: a delivery report that lands between
completion and that read is the only thing that can still show there.
CANCELLED and FAILED campaigns are summarised live, since their last messages
may still settle.

A DRAFT campaign has no messages yet, so its summary is zeros, answered
from the campaign alone.

Until then a summary costs about twenty aggregation queries over the messages,
too much to answer every poll of a dashboard. So the last one computed is kept
as a snapshot in `campaigns/{id}/reports/live`, read in the same batched read
as the campaign: a snapshot younger than SNAPSHOT_MAX_AGE is the answer. An
older one is recomputed by the one caller that takes the snapshot's refresh
lease (a write preconditioned on the version it read, so of many API instances
polling at once exactly one recounts); the others answer the snapshot they read
while it is younger than SNAPSHOT_STALE_BOUND, and recount for themselves
beyond it. Both ages count from when the recount ended (`counted_at`), so a
recount slower than SNAPSHOT_MAX_AGE (20,000 messages under load) does not
make every later caller recount at once. A snapshot computed under another
campaign status is never served. Every answer says how old its counts are
(`age_seconds`, from `computed_at`, when the recount began).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic

from pydantic import BaseModel, Field

from shared.delivery.errors import ERROR_MEANINGS
from shared.delivery.messages import message_id_for
from shared.platform.firestore import Database
from shared.platform.logging import get_logger, log_context
from shared.store import campaigns as campaign_store
from shared.store import messages as message_store
from shared.store.campaigns import Campaign, CampaignStatus
from shared.store.messages import STATUS_RANK, MessageStatus
from shared.store.users import ConsentState, consent_changes_to

log = get_logger(__name__)

# Every reason a message is SKIPPED with (fan-out, compliance pipeline, cancel
# sweep). A reason that is not listed still shows, in the `other` bucket.
SKIP_REASONS = (
    "no_consent",
    "frequency_cap",
    "content_invalid",
    "whatsapp_window_closed",
    "missing_variable",
    "render_failed",
    "campaign_cancelled",
    "campaign_failed",
    "campaign_not_found",
)
OTHER = "other"
DELIVERED_STATUSES = (MessageStatus.DELIVERED, MessageStatus.READ)
FAILED_STATUSES = (MessageStatus.UNDELIVERED, MessageStatus.FAILED)
# Message documents per batched read when matching opt-outs to sends.
LOOKUP_BATCH = 300
# A running campaign's summary is answered from a snapshot this young...
SNAPSHOT_MAX_AGE = timedelta(seconds=5)
# ...or, while another caller refreshes it, from one up to this old.
SNAPSHOT_STALE_BOUND = timedelta(seconds=10)
# How long one caller holds the refresh before another may take it over.
REFRESH_LEASE = timedelta(seconds=10)


class FailureCount(BaseModel):
    code: str
    meaning: str | None = None
    count: int


class OptOuts(BaseModel):
    """Recipients who moved to STOP after this campaign's message was sent."""

    count: int = 0
    rate: float | None = Field(default=None, description="opt-outs per message sent")
    by_source: dict[str, int] = Field(default_factory=dict)


class CampaignSummary(BaseModel):
    campaign_id: str
    name: str
    status: CampaignStatus
    planned: int | None = Field(
        default=None, description="recipients the launch planned"
    )
    targeted: int = Field(description="messages created")
    counts: dict[str, int] = Field(description="messages per status")
    skips: dict[str, int] = Field(description="skipped messages per reason")
    sent: int = Field(description="messages Twilio accepted (with sent_at)")
    delivered: int = Field(description="DELIVERED and READ")
    delivery_rate: float | None = Field(
        default=None, description="delivered / (delivered + undelivered + failed)"
    )
    failures: list[FailureCount]
    opt_outs: OptOuts
    total_segments: int = Field(description="segments of the messages sent")
    first_sent_at: datetime | None = None
    last_sent_at: datetime | None = None
    throughput_per_minute: float | None = Field(
        default=None, description="messages sent per minute between first and last send"
    )
    computed_at: datetime
    frozen: bool = False
    age_seconds: float | None = Field(
        default=None,
        description=(
            "seconds between computed_at and this answer, while the campaign"
            " runs (a snapshot at most seconds old); null once frozen"
        ),
    )


def with_other(counts: Mapping[str, int], total: int) -> dict[str, int]:
    """The non-zero counts, and what `total` holds beyond them as `other`."""
    shown = {key: count for key, count in counts.items() if count}
    rest = total - sum(shown.values())
    if rest > 0:
        shown[OTHER] = rest
    return shown


def failure_list(by_code: Mapping[str, int], total: int) -> list[FailureCount]:
    counted = with_other(by_code, total)
    return sorted(
        (
            FailureCount(code=code, meaning=ERROR_MEANINGS.get(code), count=count)
            for code, count in counted.items()
        ),
        key=lambda failure: (-failure.count, failure.code),
    )


@dataclass(frozen=True)
class SendWindow:
    sent: int
    segments: int
    first: datetime | None
    last: datetime | None

    @property
    def throughput_per_minute(self) -> float | None:
        if self.first is None or self.last is None or self.sent < 2:
            return None
        minutes = (self.last - self.first).total_seconds() / 60
        return round(self.sent / minutes, 2) if minutes > 0 else None


def send_window(db: Database, campaign_id: str) -> SendWindow:
    """Messages sent and their segments (one aggregation), first and last send."""
    totals = message_store.sent_totals(db, campaign_id)
    return SendWindow(totals.sent, totals.segments, totals.first, totals.last)


# ---------------------------------------------------------------- opt-outs


def latest_stops(
    db: Database, since: datetime, until: datetime
) -> dict[str, tuple[datetime, str]]:
    """The latest STOP in [since, until] per phone, with its source.

    A collection-group query over consent histories: it reads the STOP events of
    the campaign's window (a small share of any audience), never all users.
    """
    latest: dict[str, tuple[datetime, str]] = {}
    for phone, at, source in consent_changes_to(db, ConsentState.STOP, since, until):
        if phone not in latest or at > latest[phone][0]:
            latest[phone] = (at, str(source or "unknown"))
    return latest


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def broadcast_send_times(
    db: Database, campaign_id: str, phones: Iterable[str]
) -> dict[str, datetime]:
    """The send time of each phone's message, read by its deterministic id."""
    phone_by_id = {message_id_for(campaign_id, phone): phone for phone in phones}
    sent: dict[str, datetime] = {}
    for ids in _chunks(list(phone_by_id), LOOKUP_BATCH):
        for message_id, sent_at in message_store.sent_at_of(db, ids).items():
            sent[phone_by_id[message_id]] = sent_at
    return sent


def _sent_to_before(db: Database, campaign_id: str, phone: str, at: datetime) -> bool:
    """A triggered campaign may message a phone many times: any send counts."""
    return message_store.sent_to_by(db, campaign_id, phone, at)


def opted_out_after_send(
    db: Database,
    campaign: Campaign,
    stops: Mapping[str, tuple[datetime, str]],
) -> dict[str, str]:
    """Phone → source of each recipient whose STOP came after their send."""
    if campaign.is_triggered:
        return {
            phone: source
            for phone, (at, source) in stops.items()
            if _sent_to_before(db, campaign.id, phone, at)
        }
    sent = broadcast_send_times(db, campaign.id, stops)
    return {
        phone: source
        for phone, (at, source) in stops.items()
        if phone in sent and at >= sent[phone]
    }


def opt_outs(db: Database, campaign: Campaign, until: datetime, sent: int) -> OptOuts:
    if campaign.launched_at is None or sent == 0:
        return OptOuts()
    opted_out = opted_out_after_send(
        db, campaign, latest_stops(db, campaign.launched_at, until)
    )
    by_source: dict[str, int] = {}
    for source in opted_out.values():
        by_source[source] = by_source.get(source, 0) + 1
    return OptOuts(
        count=len(opted_out),
        rate=round(len(opted_out) / sent, 4),
        by_source=by_source,
    )


# ---------------------------------------------------------------- summary


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _status_counts(
    db: Database, campaign_id: str, final_counts: Mapping[str, int] | None
) -> dict[str, int]:
    counts = final_counts or message_store.count_by_status(db, campaign_id)
    return {status.value: int(counts.get(status.value, 0)) for status in STATUS_RANK}


def compute_summary(
    db: Database,
    campaign: Campaign,
    now: datetime,
    final_counts: Mapping[str, int] | None = None,
) -> CampaignSummary:
    counts = _status_counts(db, campaign.id, final_counts)
    by_reason = message_store.count_by_skip_reason(db, campaign.id, SKIP_REASONS)
    by_code = message_store.count_by_error_code(
        db, campaign.id, FAILED_STATUSES, ERROR_MEANINGS
    )
    window = send_window(db, campaign.id)
    delivered = sum(counts[status.value] for status in DELIVERED_STATUSES)
    failed = sum(counts[status.value] for status in FAILED_STATUSES)
    completed = campaign.status is CampaignStatus.COMPLETED
    until = campaign.completed_at if completed and campaign.completed_at else now
    return CampaignSummary(
        campaign_id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        planned=campaign.recipients_planned,
        targeted=sum(counts.values()),
        counts=counts,
        skips=with_other(by_reason, counts[MessageStatus.SKIPPED.value]),
        sent=window.sent,
        delivered=delivered,
        delivery_rate=_rate(delivered, delivered + failed),
        failures=failure_list(by_code, failed),
        opt_outs=opt_outs(db, campaign, until, window.sent),
        total_segments=window.segments,
        first_sent_at=window.first,
        last_sent_at=window.last,
        throughput_per_minute=window.throughput_per_minute,
        computed_at=now,
    )


def _freeze(db: Database, summary: CampaignSummary) -> CampaignSummary:
    existing = campaign_store.freeze_summary(
        db, summary.campaign_id, summary.model_dump(mode="python")
    )
    if existing is not None:
        # A concurrent first read froze it a moment ago: that one stands.
        return CampaignSummary.model_validate(existing)
    log.info("campaign summary frozen", extra={"labels": {"event": "summary_frozen"}})
    return summary


def _frozen_summary(
    db: Database, found: campaign_store.SummaryDocuments, now: datetime
) -> CampaignSummary:
    if found.frozen is not None:
        return CampaignSummary.model_validate(found.frozen)
    final_counts = found.fields.get("final_counts") or None
    with log_context(campaign_id=found.campaign.id):
        summary = compute_summary(db, found.campaign, now, final_counts)
        return _freeze(db, summary.model_copy(update={"frozen": True}))


def _snapshot_of(
    live: campaign_store.LiveSummary | None, campaign: Campaign
) -> CampaignSummary | None:
    """The stored snapshot, if it was computed under the campaign's status."""
    if live is None or live.summary is None:
        return None
    snapshot = CampaignSummary.model_validate(live.summary)
    return snapshot if snapshot.status is campaign.status else None


def _served(
    snapshot: CampaignSummary, campaign: Campaign, age: timedelta
) -> CampaignSummary:
    return snapshot.model_copy(
        update={
            "name": campaign.name,
            "planned": campaign.recipients_planned,
            "age_seconds": round(max(age.total_seconds(), 0.0), 3),
        }
    )


def _since_counted(
    live: campaign_store.LiveSummary | None,
    snapshot: CampaignSummary | None,
    now: datetime,
) -> timedelta | None:
    """How long ago the snapshot's recount ended (its start, for a snapshot
    stored without its end): a recount that outlives the snapshot's age must
    not make every caller after it recount again."""
    if live is None or snapshot is None:
        return None
    return now - (live.counted_at or snapshot.computed_at)


def _refreshing(live: campaign_store.LiveSummary | None, now: datetime) -> bool:
    return bool(live and live.refresh_until and live.refresh_until > now)


def _live_summary(
    db: Database,
    campaign: Campaign,
    live: campaign_store.LiveSummary | None,
    now: datetime,
) -> CampaignSummary:
    snapshot = _snapshot_of(live, campaign)
    since = _since_counted(live, snapshot, now)
    if snapshot is not None and since is not None and since <= SNAPSHOT_MAX_AGE:
        return _served(snapshot, campaign, now - snapshot.computed_at)
    lease = None
    if not _refreshing(live, now):
        lease = campaign_store.lease_summary_refresh(
            db, campaign.id, live, now + REFRESH_LEASE
        )
    if lease is None and snapshot is not None and since is not None:
        if since <= SNAPSHOT_STALE_BOUND:
            # Another caller is recounting: the snapshot read is the answer.
            return _served(snapshot, campaign, now - snapshot.computed_at)
    started = monotonic()
    summary = compute_summary(db, campaign, now).model_copy(update={"age_seconds": 0.0})
    if lease is not None:
        counted_at = now + timedelta(seconds=monotonic() - started)
        campaign_store.store_live_summary(
            db, campaign.id, summary.model_dump(mode="python"), lease, counted_at
        )
    return summary


def _draft_summary(campaign: Campaign, now: datetime) -> CampaignSummary:
    """A DRAFT has no messages (fan-out and the router start at launch or
    activation), so its summary is all zeros, answered without a count."""
    return CampaignSummary(
        campaign_id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        planned=campaign.recipients_planned,
        targeted=0,
        counts={status.value: 0 for status in STATUS_RANK},
        skips={},
        sent=0,
        delivered=0,
        failures=[],
        opt_outs=OptOuts(),
        total_segments=0,
        computed_at=now,
        age_seconds=0.0,
    )


def campaign_summary(
    db: Database, campaign_id: str, now: datetime
) -> CampaignSummary | None:
    """The campaign's summary (None if there is no such campaign): frozen once
    COMPLETED, before that a snapshot at most seconds old."""
    found = campaign_store.summary_documents(db, campaign_id)
    if found is None:
        return None
    if found.campaign.status is CampaignStatus.COMPLETED:
        return _frozen_summary(db, found, now)
    if found.campaign.status is CampaignStatus.DRAFT:
        return _draft_summary(found.campaign, now)
    return _live_summary(db, found.campaign, found.live, now)


def freeze_if_completed(db: Database, campaign_id: str, now: datetime) -> bool:
    """Freeze the summary of a COMPLETED campaign unless it is already; whether
    the campaign's summary is frozen. A running campaign is left alone."""
    found = campaign_store.summary_documents(db, campaign_id)
    if found is None or found.campaign.status is not CampaignStatus.COMPLETED:
        return False
    return _frozen_summary(db, found, now).frozen
