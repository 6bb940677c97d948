"""Fan-out: a recipient batch becomes rendered, paced, enqueued messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_document import BaseDocumentReference
from google.cloud.firestore_v1.bulk_writer import (
    BulkWriteFailure,
    BulkWriter,
    BulkWriterOptions,
)
from google.cloud.firestore_v1.types.write import WriteResult

from shared.campaigns.models import Campaign, CampaignStatus, campaign_ref
from shared.campaigns.pacing import batch_duration, plan_send_times
from shared.campaigns.planning import PlannedMessage, render_for
from shared.delivery.messages import MESSAGES, message_id_for, send_task
from shared.delivery.status import QUEUED_RANK
from shared.payloads import RecipientBatch
from shared.platform.config import CoreSettings
from shared.platform.firestore import operations
from shared.platform.logging import get_logger
from shared.platform.tasks import SendTask, TaskQueue
from shared.store.templates import get_template
from shared.store.users import USERS, User

log = get_logger(__name__)

PACING = "pacing"
ALREADY_EXISTS = 6  # gRPC status code
# BulkWriter throttles to 500 ops/s by default; fan-out writes to many distinct
# documents, which Firestore spreads well, so it may go faster.
_WRITER_OPTIONS = BulkWriterOptions(
    initial_ops_per_second=5000, max_ops_per_second=20000
)
# Time for a batch to be written and enqueued before its first send is due.
FANOUT_LEAD = timedelta(seconds=3)


@dataclass(frozen=True)
class FanoutResult:
    created: int
    existing: int
    enqueued: int
    skipped: int
    reason: str | None = None


def _recipients(db: firestore.Client, batch: RecipientBatch) -> list[User]:
    if batch.recipients is not None:
        return [User(phone=r.phone, attributes=r.attributes) for r in batch.recipients]
    return _load_users(db, batch.phones)


def _batch_problem(campaign: Campaign | None, batch: RecipientBatch) -> str | None:
    if campaign is None or campaign.launch_id != batch.launch_id:
        return "stale_or_unknown_campaign"
    if campaign.status is CampaignStatus.CANCELLED:
        return "campaign_cancelled"
    return None


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
    begin = reserve_send_window(db, campaign, batch, sum(segments), now)
    send_times = plan_send_times(begin, segments, campaign.rate_limit_mps)
    for message, send_at in zip(planned, send_times, strict=True):
        message.doc["send_at"] = send_at
    versions, existing = _create_messages(db, planned)
    sends = [
        send_task(p.message_id, p.doc, versions[p.message_id])
        for p in planned
        if p.sendable and p.message_id in versions
    ]
    result = tasks.enqueue(sends + _tasks_for_existing(db, existing))
    _mark_batch_done(db, campaign.id, batch)
    return FanoutResult(
        created=len(versions),
        existing=len(existing),
        enqueued=result.created,
        skipped=sum(1 for p in planned if not p.sendable),
    )


def _load_users(db: firestore.Client, phones: Sequence[str]) -> list[User]:
    refs = [db.collection(USERS).document(p) for p in phones]
    operations.add("reads", len(refs))
    users = [User.from_doc(s.to_dict() or {}) for s in db.get_all(refs) if s.exists]
    # get_all answers in any order; plan in the batch's order for stable slots.
    order = {p: i for i, p in enumerate(phones)}
    return sorted(users, key=lambda u: order[u.phone])


def _reservation_ref(
    db: firestore.Client, campaign_id: str, launch_id: str, batch_no: int
) -> firestore.DocumentReference:
    return (
        campaign_ref(db, campaign_id)
        .collection(PACING)
        .document(launch_id)
        .collection("batches")
        .document(str(batch_no))
    )


def reserve_send_window(
    db: firestore.Client,
    campaign: Campaign,
    batch: RecipientBatch,
    total_segments: int,
    now: datetime,
) -> datetime:
    """Reserve this batch's sending interval on the launch's pacing cursor.

    See shared/campaigns/pacing.py for how slots are assigned.
    """
    cursor = campaign_ref(db, campaign.id).collection(PACING).document(batch.launch_id)
    reservation = _reservation_ref(db, campaign.id, batch.launch_id, batch.batch_no)
    return reserve_interval(db, cursor, reservation, total_segments, campaign, now)


def reserve_interval(
    db: firestore.Client,
    cursor: firestore.DocumentReference,
    reservation: firestore.DocumentReference | None,
    total_segments: int,
    campaign: Campaign,
    now: datetime,
) -> datetime:
    # Sends planned before the batch's tasks exist would all be overdue at
    # once and go out in a burst, so the earliest slot leaves time to finish.
    earliest = now + FANOUT_LEAD

    @firestore.transactional
    def reserve(transaction: firestore.Transaction) -> datetime:
        if reservation is not None:
            held = reservation.get(transaction=transaction)
            if held.exists:
                return (held.to_dict() or {})["begin"]
        state = cursor.get(transaction=transaction)
        next_at = (state.to_dict() or {}).get("next_at") if state.exists else None
        begin = max(next_at or earliest, earliest)
        end = begin + batch_duration(total_segments, campaign.rate_limit_mps)
        transaction.set(cursor, {"next_at": end})
        if reservation is not None:
            transaction.set(reservation, {"begin": begin, "segments": total_segments})
        return begin

    operations.add("writes", 2)
    # Parallel batches contend for the one cursor; retry more than the default.
    return reserve(db.transaction(max_attempts=20))


def _mark_batch_done(
    db: firestore.Client, campaign_id: str, batch: RecipientBatch
) -> None:
    """Launch progress: the scheduler counts done batches against the plan."""
    operations.add("writes")
    _reservation_ref(db, campaign_id, batch.launch_id, batch.batch_no).update(
        {"done": True}
    )


def _operation_id(failure: BulkWriteFailure) -> str:
    return str(getattr(failure.operation, "reference").id)  # noqa: B009


def _create_messages(
    db: firestore.Client, planned: Sequence[PlannedMessage]
) -> tuple[dict[str, Any], set[str]]:
    """Create the messages that do not exist yet.

    Returns each created message's update time (the version its send task
    carries) and the ids that already existed.
    """
    versions: dict[str, Any] = {}
    existing: set[str] = set()
    failed: list[str] = []

    def on_result(
        ref: BaseDocumentReference, result: WriteResult, _: BulkWriter
    ) -> None:
        versions[ref.id] = result.update_time

    def on_error(failure: BulkWriteFailure, _: BulkWriter) -> bool:
        if failure.code == ALREADY_EXISTS:
            existing.add(_operation_id(failure))
            return False
        if failure.attempts < 5:
            return True
        failed.append(f"{_operation_id(failure)}: {failure.message}")
        return False

    writer = db.bulk_writer(options=_WRITER_OPTIONS)
    writer.on_write_result(on_result)
    writer.on_write_error(on_error)
    collection = db.collection(MESSAGES)
    for message in planned:
        writer.create(collection.document(message.message_id), message.doc)
    writer.close()
    operations.add("writes", len(planned))
    if failed:
        # Raising makes Pub/Sub redeliver the batch; created messages are kept.
        raise RuntimeError(f"{len(failed)} message writes failed: {failed[:3]}")
    return versions, existing


def _tasks_for_existing(db: firestore.Client, ids: set[str]) -> list[SendTask]:
    """Re-enqueue still-queued messages a crashed fan-out may not have enqueued.

    The task name repeats the original, so a send already enqueued is deduped.
    """
    if not ids:
        return []
    refs = [db.collection(MESSAGES).document(i) for i in sorted(ids)]
    operations.add("reads", len(refs))
    return [
        send_task(snap.id, snap.to_dict() or {}, snap.update_time)
        for snap in db.get_all(refs)
        if (snap.to_dict() or {}).get("status_rank") == QUEUED_RANK
        and not (snap.to_dict() or {}).get("held")
    ]
