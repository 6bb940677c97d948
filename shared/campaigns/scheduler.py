"""The campaign and message sweeps the scheduler tick runs (shared.scheduler):
launch due campaigns, complete finished ones, resume held messages, sweep
stuck sends and stranded queued messages, finish cancellations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.campaigns.lifecycle import (
    IllegalTransition,
    publish_launch,
    start_campaign,
    transition,
)
from shared.campaigns.replan import (
    resume_held_messages,
    skip_queued_messages,
)
from shared.campaigns.transitions import CampaignAction
from shared.delivery.messages import message_expire_at, send_task
from shared.platform.config import CoreSettings
from shared.platform.firestore import Database
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import Publisher
from shared.platform.tasks import TaskQueue, TaskQueueError
from shared.store import campaigns as campaign_store
from shared.store import messages as message_store
from shared.store.campaigns import Campaign, CampaignStatus
from shared.store.messages import MessageStatus, audit_append, rank_of

log = get_logger(__name__)

LOST_LAUNCH_AFTER = timedelta(minutes=2)
SWEEP_LIMIT = 500
# Times the stranded sweep gives a message a new send task before it fails it.
MAX_STRANDED_REQUEUES = 2
SEND_ATTEMPTS_EXHAUSTED = "send_attempts_exhausted"


@dataclass(frozen=True)
class SweepDeps:
    db: Database
    publisher: Publisher
    tasks: TaskQueue
    core: CoreSettings
    now: datetime


def check_running_campaigns(
    deps: SweepDeps, relaunched: list[str], completed: list[str]
) -> None:
    """Relaunch lost launches, and complete the running campaigns that finished."""
    for campaign in campaign_store.with_status(deps.db, CampaignStatus.RUNNING):
        with log_context(campaign_id=campaign.id):
            _check_running(deps, campaign, relaunched, completed)


def resume_held_of_active(db: Database, tasks: TaskQueue, now: datetime) -> None:
    for campaign in campaign_store.with_status(db, CampaignStatus.ACTIVE):
        # Triggered campaigns never complete, but a message held just after
        # a resume must still go out.
        resume_held_messages(db, tasks, campaign, now)


def finish_cancellations(db: Database, now: datetime) -> None:
    """Skip what a cancel request could not reach within its time budget."""
    for campaign_id in campaign_store.ids_cancelled_unswept(db):
        outcome = skip_queued_messages(
            db, campaign_id, "campaign_cancelled", now, budget_s=20
        )
        if outcome.finished:
            campaign_store.mark_cancel_swept(db, campaign_id)


def launch_due(
    db: Database, publisher: Publisher, now: datetime, launched: list[str]
) -> None:
    for campaign_id in campaign_store.ids_scheduled_by(db, now):
        try:
            start_campaign(db, publisher, campaign_id, now)
        except IllegalTransition:
            continue  # another tick (or an operator) got there first
        launched.append(campaign_id)


def _check_running(
    ctx: SweepDeps, campaign: Campaign, relaunched: list[str], completed: list[str]
) -> None:
    db, tasks, now = ctx.db, ctx.tasks, ctx.now
    if campaign.batches_planned is None:
        launched = campaign.launched_at or now
        if campaign.launch_id and now - launched > LOST_LAUNCH_AFTER:
            publish_launch(ctx.publisher, campaign.id, campaign.launch_id)
            relaunched.append(campaign.id)
        return
    # A message held by a sender that still saw the pause after a resume.
    if resume_held_messages(db, tasks, campaign, now):
        return
    if is_finished(db, campaign, ctx.core, now):
        try:
            transition(
                db,
                campaign.id,
                CampaignAction.COMPLETE,
                now,
                {"completed_at": now, "final_counts": status_counts(db, campaign.id)},
            )
        except IllegalTransition:
            return
        completed.append(campaign.id)
        log.info("campaign completed")


def batches_done(db: Database, campaign: Campaign) -> int:
    return campaign_store.count_batches_done(db, campaign.id, campaign.launch_id or "-")


def is_finished(
    db: Database, campaign: Campaign, core: CoreSettings, now: datetime
) -> bool:
    """Every batch fanned out and every message final (SENT counts once settled)."""
    if batches_done(db, campaign) < (campaign.batches_planned or 0):
        return False
    if message_store.count_unsent(db, campaign.id) > 0:
        return False
    settled_before = now - timedelta(seconds=core.settle_seconds)
    return not message_store.any_sent_after(db, campaign.id, settled_before)


def status_counts(db: Database, campaign_id: str) -> dict[str, int]:
    return message_store.count_by_status(db, campaign_id)


def sweep_stuck_sends(db: Database, tasks: TaskQueue, now: datetime) -> int:
    """Re-enqueue SENDING messages whose lease expired, for reconciliation."""
    batch = []
    for message in message_store.stuck_sending(db, now, SWEEP_LIMIT):
        data = {**message.data, "send_at": now}
        # A new name per attempt: the original task name is already used.
        suffix = f"-r{data.get('attempts', 0)}"
        batch.append(
            send_task(message.id, data, None, reconcile=True, name_suffix=suffix)
        )
    if batch:
        tasks.enqueue(batch)
    return len(batch)


def stranded_change(data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """What the stranded sweep writes on one QUEUED message past its send time.

    While requeues remain: a new send task now, under the next generation's
    task name. The original name cannot serve: Cloud Tasks refuses a name for
    about an hour after its task is gone (and the local dispatcher forever),
    and the generation counter exists so that each deliberate re-send gets a
    fresh but deterministic name. Two live tasks for one message are harmless:
    the sender's claim is conditional, so only one ever sends.
    After that: FAILED(`send_attempts_exhausted`), so the campaign can finish.
    """
    requeues = int(data.get("requeues", 0))
    if requeues < MAX_STRANDED_REQUEUES:
        reason = f"queued past its send time: requeue {requeues + 1}"
        return {
            "send_at": now,
            "generation": int(data.get("generation", 0)) + 1,
            "requeues": requeues + 1,
            "audit": audit_append(
                [
                    {
                        "step": "stranded",
                        "outcome": "requeued",
                        "reason": reason,
                        "at": now,
                    }
                ]
            ),
        }
    return {
        "status_rank": rank_of(MessageStatus.FAILED),
        "error_code": SEND_ATTEMPTS_EXHAUSTED,
        "error_message": f"no send after {requeues} requeues past its send time",
        "failed_at": now,
        "expire_at": message_expire_at(now),
        "lease_until": None,
        "audit": audit_append(
            [
                {
                    "step": "stranded",
                    "outcome": "failed",
                    "reason": SEND_ATTEMPTS_EXHAUSTED,
                    "at": now,
                }
            ]
        ),
    }


def sweep_stranded_queued(
    db: Database,
    tasks: TaskQueue,
    core: CoreSettings,
    now: datetime,
) -> tuple[int, int]:
    """Give a new send task to QUEUED messages that no task will ever send.

    A send task that ran out of attempts, or a resume or fan-out whose enqueue
    was lost, leaves its message QUEUED with nothing to move it, and its
    campaign RUNNING forever. Such a message is found by its send time alone,
    once that is further past than the queue's whole retry budget, so the
    happy path pays no extra write. Held messages wait for a resume instead.
    Returns how many were requeued and how many failed.
    """
    cutoff = now - timedelta(seconds=core.stranded_queued_seconds)
    page = message_store.stranded_queued(db, cutoff, SWEEP_LIMIT)
    if not page:
        return 0, 0
    data = {m.id: m.data for m in page}
    changes = {m.id: stranded_change(data[m.id], now) for m in page}
    # Conditional on the read: a message a sender claimed meanwhile is left be.
    versions = message_store.write_if_unchanged(db, page, changes)
    requeued = [i for i in versions if "generation" in changes[i]]
    sends = [send_task(i, {**data[i], **changes[i]}, versions[i]) for i in requeued]
    log.warning(
        "stranded queued messages: %d requeued, %d failed",
        len(requeued),
        len(versions) - len(requeued),
        extra={"labels": {"event": "stranded_queued_swept"}},
    )
    try:
        tasks.enqueue(sends)
    except TaskQueueError:
        # Their send_at is now: the sweep finds them again after the cutoff.
        log.exception("enqueue of requeued stranded messages failed")
    return len(requeued), len(versions) - len(requeued)
