"""Fan-out: a recipient batch becomes rendered, paced, enqueued messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.campaigns.planning import PlannedMessage, render_for
from shared.delivery.messages import message_id_for, send_task
from shared.delivery.pacing import (
    next_interval,
    plan_offsets,
    planned_rate,
    span_seconds,
)
from shared.payloads import RecipientBatch
from shared.platform.config import CoreSettings
from shared.platform.firestore import Database
from shared.platform.logging import get_logger
from shared.platform.tasks import SendTask, TaskQueue
from shared.store import campaigns as campaign_store
from shared.store import messages as message_store
from shared.store.campaigns import Campaign, CampaignStatus
from shared.store.templates import get_template
from shared.store.users import User, get_users

log = get_logger(__name__)

# Time for a batch to be written and enqueued before its first send is due.
FANOUT_LEAD = timedelta(seconds=3)


@dataclass(frozen=True)
class FanoutResult:
    created: int
    existing: int
    enqueued: int
    skipped: int
    reason: str | None = None


def _recipients(db: Database, batch: RecipientBatch) -> list[User]:
    if batch.recipients is not None:
        return [User(phone=r.phone, attributes=r.attributes) for r in batch.recipients]
    return get_users(db, batch.phones)


def _batch_problem(campaign: Campaign | None, batch: RecipientBatch) -> str | None:
    if campaign is None or campaign.launch_id != batch.launch_id:
        return "stale_or_unknown_campaign"
    if campaign.status is CampaignStatus.CANCELLED:
        return "campaign_cancelled"
    return None


def fan_out_batch(
    db: Database,
    tasks: TaskQueue,
    batch: RecipientBatch,
    core: CoreSettings,
    now: datetime,
) -> FanoutResult:
    """Create the batch's messages and enqueue their sends; safe to redeliver."""
    campaign = campaign_store.get_campaign(db, batch.campaign_id)
    problem = _batch_problem(campaign, batch)
    template = get_template(db, campaign.template_id) if campaign else None
    if problem or campaign is None or template is None:
        return FanoutResult(0, 0, 0, 0, reason=problem or "template_not_found")
    planned = [
        PlannedMessage(
            message_id_for(campaign.id, user.phone),
            render_for(template, user, campaign, core, now),
        )
        for user in _recipients(db, batch)
    ]
    segments = [p.doc["segments"] if p.sendable else 0 for p in planned]
    offsets, span = plan_offsets(segments, campaign.rate_limit_mps)
    begin = reserve_send_window(db, campaign, batch, sum(segments), now, span)
    for message, offset in zip(planned, offsets, strict=True):
        message.doc["send_at"] = begin + timedelta(seconds=offset)
    versions, existing = _create_messages(db, planned)
    sends = [
        send_task(p.message_id, p.doc, versions[p.message_id])
        for p in planned
        if p.sendable and p.message_id in versions
    ]
    result = tasks.enqueue(sends + _tasks_for_existing(db, existing))
    campaign_store.mark_batch_done(db, campaign.id, batch.launch_id, batch.batch_no)
    return FanoutResult(
        created=len(versions),
        existing=len(existing),
        enqueued=result.created,
        skipped=sum(1 for p in planned if not p.sendable),
    )


def reserve_send_window(
    db: Database,
    campaign: Campaign,
    batch: RecipientBatch,
    total_segments: int,
    now: datetime,
    seconds: float | None = None,
) -> datetime:
    """Reserve this batch's sending interval on the launch's pacing cursor.

    See shared/delivery/pacing.py for how slots are assigned.
    """
    return reserve_interval(
        db, campaign, batch.launch_id, batch.batch_no, total_segments, now, seconds
    )


def reserve_interval(
    db: Database,
    campaign: Campaign,
    launch_id: str,
    batch_no: int | None,
    total_segments: int,
    now: datetime,
    seconds: float | None = None,
) -> datetime:
    """Reserve `seconds` (by default, what `total_segments` take at the
    planned rate) on the launch's pacing cursor; its begin."""
    # Sends planned before the batch's tasks exist would all be overdue at
    # once and go out in a burst, so the earliest slot leaves time to finish.
    earliest = now + FANOUT_LEAD
    span = (
        span_seconds(total_segments, planned_rate(campaign.rate_limit_mps))
        if seconds is None
        else seconds
    )
    return campaign_store.reserve_interval(
        db,
        campaign.id,
        launch_id,
        batch_no,
        take=lambda next_free: next_interval(next_free, earliest, span),
        segments=total_segments,
    )


def _create_messages(
    db: Database, planned: Sequence[PlannedMessage]
) -> tuple[dict[str, Any], set[str]]:
    """Create the messages that do not exist yet.

    Returns each created message's update time (the version its send task
    carries) and the ids that already existed.
    """
    result = message_store.create_if_absent(
        db, [(message.message_id, message.doc) for message in planned]
    )
    if result.failed:
        # Raising makes Pub/Sub redeliver the batch; created messages are kept.
        raise RuntimeError(
            f"{len(result.failed)} message writes failed: {result.failed[:3]}"
        )
    return result.created, result.existing


def _tasks_for_existing(db: Database, ids: set[str]) -> list[SendTask]:
    """Re-enqueue still-queued messages a crashed fan-out may not have enqueued.

    The task name repeats the original, so a send already enqueued is deduped.
    """
    return message_store.tasks_of_still_queued(db, sorted(ids), send_task)
