"""The minute tick: an ordered list of named sweeps (launch due campaigns,
complete finished ones, sweep stuck sends and stranded queued messages, finish
cancellations, republish events never routed), each reported by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore

from shared.campaigns.lifecycle import (
    IllegalTransition,
    publish_launch,
    start_campaign,
    transition,
)
from shared.campaigns.models import (
    CAMPAIGNS,
    Campaign,
    CampaignAction,
    CampaignStatus,
    campaign_ref,
)
from shared.campaigns.replan import (
    resume_held_messages,
    skip_queued_messages,
    write_if_unchanged,
)
from shared.delivery.messages import MESSAGES, message_expire_at, send_task
from shared.delivery.status import STATUS_RANK, MessageStatus, rank_of
from shared.events.ingest import REPUBLISH_AFTER, publish_events
from shared.platform.config import CoreSettings
from shared.platform.firestore import count_of, operations
from shared.platform.logging import get_logger, log_context
from shared.platform.pubsub import Publisher
from shared.platform.tasks import TaskQueue, TaskQueueError
from shared.store.events import EVENTS, EventStatus, stored_event

log = get_logger(__name__)

LOST_LAUNCH_AFTER = timedelta(minutes=2)
SWEEP_LIMIT = 500
# Times the stranded sweep gives a message a new send task before it fails it.
MAX_STRANDED_REQUEUES = 2
SEND_ATTEMPTS_EXHAUSTED = "send_attempts_exhausted"


@dataclass
class TickReport:
    launched: list[str] = field(default_factory=list)
    relaunched: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    swept: int = 0
    stranded_requeued: int = 0
    stranded_failed: int = 0
    republished_events: int = 0
    # Sweep name -> "ok" or "failed", in the order the sweeps ran.
    sweeps: dict[str, str] = field(default_factory=dict)

    @property
    def failed_sweeps(self) -> list[str]:
        return [name for name, outcome in self.sweeps.items() if outcome != "ok"]


@dataclass(frozen=True)
class TickContext:
    db: firestore.Client
    publisher: Publisher
    tasks: TaskQueue
    core: CoreSettings
    now: datetime
    report: TickReport


@dataclass(frozen=True)
class Sweep:
    name: str
    run: Callable[[TickContext], None]


def _where(field_path: str, op: str, value: object) -> firestore.FieldFilter:
    return firestore.FieldFilter(field_path, op, value)


def run_sweeps(ctx: TickContext, sweeps: Sequence[Sweep]) -> TickReport:
    """Run every sweep in order; one that raises is logged and reported as
    failed, and the next still runs: the sweeps are independent, and one
    broken query must not stall launches or the stranded-message rescue.
    """
    for sweep in sweeps:
        try:
            sweep.run(ctx)
        except Exception:
            log.exception(
                "sweep %s failed",
                sweep.name,
                extra={"labels": {"event": "sweep_failed", "sweep": sweep.name}},
            )
            ctx.report.sweeps[sweep.name] = "failed"
        else:
            ctx.report.sweeps[sweep.name] = "ok"
    return ctx.report


def _launch_due(ctx: TickContext) -> None:
    launch_due(ctx.db, ctx.publisher, ctx.now, ctx.report)


def _check_running_campaigns(ctx: TickContext) -> None:
    for campaign in _with_status(ctx.db, CampaignStatus.RUNNING):
        with log_context(campaign_id=campaign.id):
            _check_running(ctx, campaign)


def _resume_held_of_active(ctx: TickContext) -> None:
    for campaign in _with_status(ctx.db, CampaignStatus.ACTIVE):
        # Triggered campaigns never complete, but a message held just after
        # a resume must still go out.
        resume_held_messages(ctx.db, ctx.tasks, campaign, ctx.now)


def _sweep_stuck_sends(ctx: TickContext) -> None:
    ctx.report.swept = sweep_stuck_sends(ctx.db, ctx.tasks, ctx.now)


def _sweep_stranded_queued(ctx: TickContext) -> None:
    sweep_stranded_queued(ctx.db, ctx.tasks, ctx.core, ctx.now, ctx.report)


def _finish_cancellations(ctx: TickContext) -> None:
    finish_cancellations(ctx.db, ctx.now)


def _republish_stranded_events(ctx: TickContext) -> None:
    ctx.report.republished_events = republish_stranded_events(
        ctx.db, ctx.publisher, ctx.now
    )


TICK_SWEEPS: tuple[Sweep, ...] = (
    Sweep("launch_due", _launch_due),
    Sweep("check_running", _check_running_campaigns),
    Sweep("resume_held_active", _resume_held_of_active),
    Sweep("stuck_sends", _sweep_stuck_sends),
    Sweep("stranded_queued", _sweep_stranded_queued),
    Sweep("finish_cancellations", _finish_cancellations),
    Sweep("republish_events", _republish_stranded_events),
)


def run_tick(
    db: firestore.Client,
    publisher: Publisher,
    tasks: TaskQueue,
    core: CoreSettings,
    now: datetime,
    sweeps: Sequence[Sweep] = TICK_SWEEPS,
) -> TickReport:
    ctx = TickContext(db, publisher, tasks, core, now, TickReport())
    return run_sweeps(ctx, sweeps)


def republish_stranded_events(
    db: firestore.Client, publisher: Publisher, now: datetime
) -> int:
    """Publish again events stored but never routed (their publish was lost
    and the caller did not retry); the router is idempotent per event.

    Each is due again only REPUBLISH_AFTER later, so an event that is merely
    queued behind a router backlog gets one more copy per interval rather
    than one per tick: copies per tick grew the backlog they sat in.
    """
    due = (
        db.collection(EVENTS)
        .where(filter=_where("status", "==", EventStatus.RECEIVED.value))
        .where(filter=_where("republish_at", "<=", now))
        .limit(SWEEP_LIMIT)
    )
    snapshots = list(due.stream())
    if not snapshots:
        return 0
    publish_events(publisher, [stored_event(snapshot) for snapshot in snapshots])
    # After the publish: if this write fails, the next tick publishes again,
    # which the router absorbs; the other order could lose the republish.
    batch = db.batch()
    for snapshot in snapshots:
        batch.update(snapshot.reference, {"republish_at": now + REPUBLISH_AFTER})
    batch.commit()
    operations.add("writes", len(snapshots))
    return len(snapshots)


def finish_cancellations(db: firestore.Client, now: datetime) -> None:
    """Skip what a cancel request could not reach within its time budget."""
    unfinished = (
        db.collection(CAMPAIGNS)
        .where(filter=_where("status", "==", CampaignStatus.CANCELLED.value))
        .where(filter=_where("cancel_swept", "==", False))
    )
    for snapshot in unfinished.stream():
        outcome = skip_queued_messages(
            db, snapshot.id, "campaign_cancelled", now, budget_s=20
        )
        if outcome.finished:
            campaign_ref(db, snapshot.id).update({"cancel_swept": True})


def launch_due(
    db: firestore.Client, publisher: Publisher, now: datetime, report: TickReport
) -> None:
    due = (
        db.collection(CAMPAIGNS)
        .where(filter=_where("status", "==", CampaignStatus.SCHEDULED.value))
        .where(filter=_where("schedule_at", "<=", now))
    )
    for snapshot in due.stream():
        try:
            start_campaign(db, publisher, snapshot.id, now)
        except IllegalTransition:
            continue  # another tick (or an operator) got there first
        report.launched.append(snapshot.id)


def _with_status(db: firestore.Client, status: CampaignStatus) -> list[Campaign]:
    query = db.collection(CAMPAIGNS).where(filter=_where("status", "==", status.value))
    return [Campaign.from_snapshot(s) for s in query.stream()]


def _check_running(ctx: TickContext, campaign: Campaign) -> None:
    db, tasks, now, report = ctx.db, ctx.tasks, ctx.now, ctx.report
    if campaign.batches_planned is None:
        launched = campaign.launched_at or now
        if campaign.launch_id and now - launched > LOST_LAUNCH_AFTER:
            publish_launch(ctx.publisher, campaign.id, campaign.launch_id)
            report.relaunched.append(campaign.id)
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
        report.completed.append(campaign.id)
        log.info("campaign completed")


def _messages_of(db: firestore.Client, campaign_id: str) -> firestore.Query:
    return db.collection(MESSAGES).where(
        filter=_where("campaign_id", "==", campaign_id)
    )


def batches_done(db: firestore.Client, campaign: Campaign) -> int:
    reservations = (
        campaign_ref(db, campaign.id)
        .collection("pacing")
        .document(campaign.launch_id or "-")
        .collection("batches")
        .where(filter=_where("done", "==", True))
    )
    return count_of(reservations)


def is_finished(
    db: firestore.Client, campaign: Campaign, core: CoreSettings, now: datetime
) -> bool:
    """Every batch fanned out and every message final (SENT counts once settled)."""
    if batches_done(db, campaign) < (campaign.batches_planned or 0):
        return False
    unsent = _messages_of(db, campaign.id).where(
        filter=_where(
            "status_rank",
            "in",
            [rank_of(MessageStatus.QUEUED), rank_of(MessageStatus.SENDING)],
        )
    )
    if count_of(unsent) > 0:
        return False
    unsettled = (
        _messages_of(db, campaign.id)
        .where(filter=_where("status_rank", "==", rank_of(MessageStatus.SENT)))
        .where(
            filter=_where("sent_at", ">", now - timedelta(seconds=core.settle_seconds))
        )
    )
    return count_of(unsettled) == 0


def status_counts(db: firestore.Client, campaign_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status, rank in STATUS_RANK.items():
        query = _messages_of(db, campaign_id).where(
            filter=_where("status_rank", "==", rank)
        )
        counts[status.value] = count_of(query)
    return counts


def sweep_stuck_sends(db: firestore.Client, tasks: TaskQueue, now: datetime) -> int:
    """Re-enqueue SENDING messages whose lease expired, for reconciliation."""
    stuck = (
        db.collection(MESSAGES)
        .where(filter=_where("status_rank", "==", rank_of(MessageStatus.SENDING)))
        .where(filter=_where("lease_until", "<", now))
        .limit(SWEEP_LIMIT)
    )
    batch = []
    for snapshot in stuck.stream():
        data = {**(snapshot.to_dict() or {}), "send_at": now}
        # A new name per attempt: the original task name is already used.
        suffix = f"-r{data.get('attempts', 0)}"
        batch.append(
            send_task(snapshot.id, data, None, reconcile=True, name_suffix=suffix)
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
            "audit": firestore.ArrayUnion(
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
        "audit": firestore.ArrayUnion(
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
    db: firestore.Client,
    tasks: TaskQueue,
    core: CoreSettings,
    now: datetime,
    report: TickReport,
) -> None:
    """Give a new send task to QUEUED messages that no task will ever send.

    A send task that ran out of attempts, or a resume or fan-out whose enqueue
    was lost, leaves its message QUEUED with nothing to move it, and its
    campaign RUNNING forever. Such a message is found by its send time alone,
    once that is further past than the queue's whole retry budget, so the
    happy path pays no extra write. Held messages wait for a resume instead.
    """
    cutoff = now - timedelta(seconds=core.stranded_queued_seconds)
    stranded = (
        db.collection(MESSAGES)
        .where(filter=_where("held", "==", False))
        .where(filter=_where("status_rank", "==", rank_of(MessageStatus.QUEUED)))
        .where(filter=_where("send_at", "<", cutoff))
        .limit(SWEEP_LIMIT)
    )
    page = list(stranded.stream())
    operations.add("reads", max(1, len(page)))
    if not page:
        return
    data = {s.id: s.to_dict() or {} for s in page}
    changes = {s.id: stranded_change(data[s.id], now) for s in page}
    # Conditional on the read: a message a sender claimed meanwhile is left be.
    versions = write_if_unchanged(db, page, changes)
    requeued = [i for i in versions if "generation" in changes[i]]
    report.stranded_requeued += len(requeued)
    report.stranded_failed += len(versions) - len(requeued)
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
