"""Launch evaluation and fan-out: from a segment to planned, enqueued messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.bulk_writer import (
    BulkWriteFailure,
    BulkWriter,
    BulkWriterOptions,
)

from shared.audience.segments import iter_segment_users
from shared.audience.users import USERS, User
from shared.campaigns.models import Campaign, CampaignStatus, campaign_ref
from shared.campaigns.pacing import batch_duration, plan_send_times
from shared.content.encoding import count_segments
from shared.content.store import Template, get_template
from shared.content.templates import render_message
from shared.content.validation import with_opt_out_footer
from shared.delivery.messages import MESSAGES, message_id_for
from shared.delivery.status import MessageStatus, rank_of
from shared.payloads import CampaignLaunch, RecipientBatch
from shared.platform.config import CoreSettings
from shared.platform.firestore import operations
from shared.platform.logging import get_logger
from shared.platform.pubsub import Publisher, Topic
from shared.platform.tasks import SendTask, TaskQueue, task_name_for

log = get_logger(__name__)

BATCH_SIZE = 500
PACING = "pacing"
ALREADY_EXISTS = 6  # gRPC status code
# BulkWriter throttles to 500 ops/s by default; fan-out writes to many distinct
# documents, which Firestore spreads well, so it may go faster.
_WRITER_OPTIONS = BulkWriterOptions(
    initial_ops_per_second=5000, max_ops_per_second=20000
)


def _batched(users: Iterator[User], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for user in users:
        batch.append(user.phone)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class EvaluationResult:
    evaluated: bool
    batches: int = 0
    recipients: int = 0
    reason: str | None = None


def evaluate_launch(
    db: firestore.Client, publisher: Publisher, launch: CampaignLaunch, now: datetime
) -> EvaluationResult:
    """Stream the campaign's segment into recipient batches of ≤ 500."""
    snapshot = campaign_ref(db, launch.campaign_id).get()
    if not snapshot.exists:
        return EvaluationResult(False, reason="campaign_not_found")
    campaign = Campaign.from_snapshot(snapshot)
    if campaign.launch_id != launch.launch_id:
        return EvaluationResult(False, reason="stale_launch")
    if campaign.status not in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
        return EvaluationResult(False, reason=f"campaign_{campaign.status.lower()}")
    if campaign.batches_planned is not None:
        return EvaluationResult(False, reason="already_evaluated")
    segment = db.collection("segments").document(campaign.segment_id or "-").get()
    definition = (segment.to_dict() or {}).get("definition") if segment.exists else None
    if definition is None:
        return EvaluationResult(False, reason="segment_not_found")
    batches = recipients = 0
    pending: list[RecipientBatch] = []
    for phones in _batched(iter_segment_users(db, definition, now), BATCH_SIZE):
        pending.append(
            RecipientBatch(
                campaign_id=campaign.id,
                launch_id=launch.launch_id,
                batch_no=batches,
                phones=phones,
            )
        )
        batches += 1
        recipients += len(phones)
        if len(pending) >= 20:
            publisher.publish_many(Topic.RECIPIENT_BATCHES, pending)
            pending = []
    publisher.publish_many(Topic.RECIPIENT_BATCHES, pending)
    campaign_ref(db, campaign.id).update(
        {"batches_planned": batches, "recipients_planned": recipients}
    )
    return EvaluationResult(True, batches, recipients)


@dataclass(frozen=True)
class PlannedMessage:
    message_id: str
    doc: dict[str, Any]
    send: bool


@dataclass(frozen=True)
class FanoutResult:
    created: int
    existing: int
    enqueued: int
    skipped: int
    reason: str | None = None


def render_for(
    template: Template,
    user: User,
    campaign: Campaign,
    core: CoreSettings,
    now: datetime,
) -> dict[str, Any]:
    """The message document for one recipient (send_at filled in later)."""
    rendered = render_message(template.body, user.attributes, user.phone)
    body = rendered.body
    if core.add_opt_out_footer and template.channel == "sms":
        body = with_opt_out_footer(body, core.opt_out_footer)
    info = count_segments(body)
    doc: dict[str, Any] = {
        "campaign_id": campaign.id,
        "phone": user.phone,
        "body": body,
        "encoding": info.encoding.value,
        "segments": info.segments,
        "channel": template.channel,
        "status_rank": rank_of(MessageStatus.QUEUED),
        "generation": 0,
        "attempts": 0,
        "created_at": now,
        "audit": [],
    }
    if rendered.missing_variables:
        reason = "missing_variable"
        doc["status_rank"] = rank_of(MessageStatus.SKIPPED)
        doc["skip_reason"] = reason
        doc["audit"] = [
            {
                "step": "render",
                "outcome": "skip",
                "reason": f"{reason}: {', '.join(rendered.missing_variables)}",
                "at": now,
            }
        ]
    return doc


def fan_out_batch(
    db: firestore.Client,
    tasks: TaskQueue,
    batch: RecipientBatch,
    core: CoreSettings,
    now: datetime,
) -> FanoutResult:
    """Create the batch's messages and enqueue their sends; safe to redeliver."""
    snapshot = campaign_ref(db, batch.campaign_id).get()
    campaign = Campaign.from_snapshot(snapshot) if snapshot.exists else None
    if campaign is None or campaign.launch_id != batch.launch_id:
        return FanoutResult(0, 0, 0, 0, reason="stale_or_unknown_campaign")
    if campaign.status is CampaignStatus.CANCELLED:
        return FanoutResult(0, 0, 0, 0, reason="campaign_cancelled")
    template = get_template(db, campaign.template_id)
    if template is None:
        return FanoutResult(0, 0, 0, 0, reason="template_not_found")
    users = _load_users(db, batch.phones)
    planned = [
        PlannedMessage(
            message_id_for(campaign.id, u.phone),
            doc,
            doc["status_rank"] == rank_of(MessageStatus.QUEUED),
        )
        for u in users
        for doc in [render_for(template, u, campaign, core, now)]
    ]
    segments = [p.doc["segments"] if p.send else 0 for p in planned]
    begin = reserve_send_window(db, campaign, batch, sum(segments), now)
    for message, send_at in zip(
        planned, plan_send_times(begin, segments, campaign.rate_limit_mps), strict=True
    ):
        message.doc["send_at"] = send_at
    existing_ids = _create_messages(db, planned)
    to_enqueue = [p for p in planned if p.send and p.message_id not in existing_ids]
    tasks_list = [
        SendTask(
            task_name_for(p.message_id, 0),
            {"message_id": p.message_id},
            p.doc["send_at"],
        )
        for p in to_enqueue
    ]
    tasks_list += _tasks_for_existing(db, existing_ids)
    result = tasks.enqueue(tasks_list)
    _mark_batch_done(db, campaign.id, batch)
    return FanoutResult(
        created=len(planned) - len(existing_ids),
        existing=len(existing_ids),
        enqueued=result.created,
        skipped=sum(1 for p in planned if not p.send),
    )


def _load_users(db: firestore.Client, phones: Sequence[str]) -> list[User]:
    refs = [db.collection(USERS).document(p) for p in phones]
    operations.add("reads", len(refs))
    users = [User.from_doc(s.to_dict() or {}) for s in db.get_all(refs) if s.exists]
    # get_all answers in any order; plan in the batch's order for stable slots.
    order = {p: i for i, p in enumerate(phones)}
    return sorted(users, key=lambda u: order[u.phone])


def reserve_send_window(
    db: firestore.Client,
    campaign: Campaign,
    batch: RecipientBatch,
    total_segments: int,
    now: datetime,
) -> datetime:
    """Reserve this batch's sending interval on the launch's pacing cursor."""
    cursor = campaign_ref(db, campaign.id).collection(PACING).document(batch.launch_id)
    reservation = _reservation_ref(db, campaign.id, batch)

    @firestore.transactional
    def reserve(transaction: firestore.Transaction) -> datetime:
        held = reservation.get(transaction=transaction)
        if held.exists:
            return (held.to_dict() or {})["begin"]
        state = cursor.get(transaction=transaction)
        next_at = (state.to_dict() or {}).get("next_at") if state.exists else None
        begin = max(next_at or now, now)
        end = begin + batch_duration(total_segments, campaign.rate_limit_mps)
        transaction.set(cursor, {"next_at": end})
        transaction.set(reservation, {"begin": begin, "segments": total_segments})
        return begin

    return reserve(db.transaction())


def _reservation_ref(
    db: firestore.Client, campaign_id: str, batch: RecipientBatch
) -> firestore.DocumentReference:
    return (
        campaign_ref(db, campaign_id)
        .collection(PACING)
        .document(batch.launch_id)
        .collection("batches")
        .document(str(batch.batch_no))
    )


def _mark_batch_done(
    db: firestore.Client, campaign_id: str, batch: RecipientBatch
) -> None:
    """Launch progress: the scheduler counts done batches against the plan."""
    operations.add("writes")
    _reservation_ref(db, campaign_id, batch).update({"done": True})


def _operation_id(failure: BulkWriteFailure) -> str:
    return str(getattr(failure.operation, "reference").id)  # noqa: B009


def _create_messages(
    db: firestore.Client, planned: Sequence[PlannedMessage]
) -> set[str]:
    """Create every message that does not exist yet; return the ids that did."""
    existing: set[str] = set()
    failed: list[str] = []

    def on_error(failure: BulkWriteFailure, _: BulkWriter) -> bool:
        if failure.code == ALREADY_EXISTS:
            existing.add(_operation_id(failure))
            return False
        if failure.attempts < 5:
            return True
        failed.append(f"{_operation_id(failure)}: {failure.message}")
        return False

    writer = db.bulk_writer(options=_WRITER_OPTIONS)
    writer.on_write_error(on_error)
    collection = db.collection(MESSAGES)
    for message in planned:
        writer.create(collection.document(message.message_id), message.doc)
    writer.close()
    operations.add("writes", len(planned))
    if failed:
        # Raising makes Pub/Sub redeliver the batch; created messages are kept.
        raise RuntimeError(f"{len(failed)} message writes failed: {failed[:3]}")
    return existing


def _tasks_for_existing(db: firestore.Client, ids: set[str]) -> list[SendTask]:
    """Re-enqueue still-queued messages a crashed fan-out may not have enqueued.

    The task name repeats the original, so a send already enqueued is deduped.
    """
    if not ids:
        return []
    refs = [db.collection(MESSAGES).document(i) for i in sorted(ids)]
    operations.add("reads", len(refs))
    tasks: list[SendTask] = []
    for snap in db.get_all(refs):
        data = snap.to_dict() or {}
        if data.get("status_rank") == rank_of(MessageStatus.QUEUED) and not data.get(
            "held"
        ):
            tasks.append(
                SendTask(
                    task_name_for(snap.id, int(data.get("generation", 0))),
                    {"message_id": snap.id},
                    data["send_at"],
                )
            )
    return tasks
