"""Bulk changes to a campaign's unsent messages: resume held ones, cancel queued ones.

Each message is written with its read's update time as a precondition, so a
message that a sender claimed in the meantime is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_document import BaseDocumentReference
from google.cloud.firestore_v1.bulk_writer import BulkWriteFailure, BulkWriter
from google.cloud.firestore_v1.types.write import WriteResult

from shared.campaigns.fanout import PACING, reserve_interval
from shared.campaigns.pacing import plan_send_times
from shared.delivery.messages import message_expire_at, send_task
from shared.platform.firestore import operations
from shared.platform.tasks import TaskQueue
from shared.store.campaigns import Campaign, campaign_ref
from shared.store.messages import MESSAGES, QUEUED_RANK, MessageStatus, rank_of

PAGE = 500


@dataclass(frozen=True)
class BulkOutcome:
    changed: int
    finished: bool


def _pages(query: firestore.Query) -> Iterator[list[firestore.DocumentSnapshot]]:
    # Each page changes the documents that matched, so the next page is the
    # same query again, until it comes back short.
    while True:
        page = list(query.limit(PAGE).stream())
        operations.add("reads", len(page))
        if page:
            yield page
        if len(page) < PAGE:
            return


def write_if_unchanged(
    db: firestore.Client,
    page: list[firestore.DocumentSnapshot],
    changes: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """Update each snapshot unless it changed since read; return new versions."""
    versions: dict[str, Any] = {}

    def on_result(
        ref: BaseDocumentReference, result: WriteResult, _: BulkWriter
    ) -> None:
        versions[ref.id] = result.update_time

    def on_error(failure: BulkWriteFailure, _: BulkWriter) -> bool:
        # FAILED_PRECONDITION: a sender got there first; leave that message.
        return failure.code != 9 and failure.attempts < 5

    writer = db.bulk_writer()
    writer.on_write_result(on_result)
    writer.on_write_error(on_error)
    for snapshot in page:
        option = db.write_option(last_update_time=snapshot.update_time)
        writer.update(snapshot.reference, changes[snapshot.id], option=option)
    writer.close()
    operations.add("writes", len(page))
    return versions


def _campaign_messages(db: firestore.Client, campaign_id: str) -> firestore.Query:
    return db.collection(MESSAGES).where(
        filter=firestore.FieldFilter("campaign_id", "==", campaign_id)
    )


def resume_held_messages(
    db: firestore.Client, tasks: TaskQueue, campaign: Campaign, now: datetime
) -> int:
    """Re-plan the messages a pause held, from now at the campaign's rate."""
    held = (
        _campaign_messages(db, campaign.id)
        .where(filter=firestore.FieldFilter("held", "==", True))
        .where(filter=firestore.FieldFilter("status_rank", "==", QUEUED_RANK))
    )
    cursor = (
        campaign_ref(db, campaign.id)
        .collection(PACING)
        .document(campaign.launch_id or "triggered")
    )
    resumed = 0
    for page in _pages(held):
        segments = [int((s.to_dict() or {}).get("segments", 1)) for s in page]
        begin = reserve_interval(db, cursor, None, sum(segments), campaign, now)
        times = plan_send_times(begin, segments, campaign.rate_limit_mps)
        changes = {
            s.id: {
                "held": False,
                "send_at": send_at,
                "generation": int((s.to_dict() or {}).get("generation", 0)) + 1,
            }
            for s, send_at in zip(page, times, strict=True)
        }
        versions = write_if_unchanged(db, page, changes)
        sends = [
            send_task(s.id, {**(s.to_dict() or {}), **changes[s.id]}, versions[s.id])
            for s in page
            if s.id in versions
        ]
        tasks.enqueue(sends)
        resumed += len(sends)
    return resumed


def skip_queued_messages(
    db: firestore.Client, campaign_id: str, reason: str, now: datetime, budget_s: float
) -> BulkOutcome:
    """SKIPPED(reason) for every still-queued message, within a time budget."""
    queued = _campaign_messages(db, campaign_id).where(
        filter=firestore.FieldFilter("status_rank", "==", QUEUED_RANK)
    )
    entry = {"step": "campaign_state", "outcome": "skip", "reason": reason, "at": now}
    fields = {
        "status_rank": rank_of(MessageStatus.SKIPPED),
        "skip_reason": reason,
        "skipped_at": now,
        "expire_at": message_expire_at(now),
        "held": False,
        "audit": firestore.ArrayUnion([entry]),
    }
    deadline = time.monotonic() + budget_s
    changed = 0
    for page in _pages(queued):
        changed += len(write_if_unchanged(db, page, {s.id: fields for s in page}))
        if time.monotonic() > deadline:
            return BulkOutcome(changed, finished=False)
    return BulkOutcome(changed, finished=True)
