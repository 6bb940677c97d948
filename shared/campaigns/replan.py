"""Bulk changes to a campaign's unsent messages: resume held ones, cancel queued ones.

Each message is written with its read's update time as a precondition, so a
message that a sender claimed in the meantime is left alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.campaigns.fanout import reserve_interval
from shared.delivery.messages import message_expire_at, send_task
from shared.delivery.pacing import plan_offsets
from shared.platform.firestore import Database
from shared.platform.tasks import TaskQueue
from shared.store import messages as message_store
from shared.store.campaigns import Campaign
from shared.store.messages import MessageStatus, audit_append, rank_of


@dataclass(frozen=True)
class BulkOutcome:
    changed: int
    finished: bool


def resume_held_messages(
    db: Database, tasks: TaskQueue, campaign: Campaign, now: datetime
) -> int:
    """Re-plan the messages a pause held, from now at the campaign's rate."""
    launch_id = campaign.launch_id or "triggered"
    resumed = 0
    for page in message_store.pages_held(db, campaign.id):
        segments = [int(m.data.get("segments", 1)) for m in page]
        offsets, span = plan_offsets(segments, campaign.rate_limit_mps)
        total = sum(segments)
        begin = reserve_interval(db, campaign, launch_id, None, total, now, span)
        times = [begin + timedelta(seconds=offset) for offset in offsets]
        changes = {
            m.id: {
                "held": False,
                "send_at": send_at,
                "generation": int(m.data.get("generation", 0)) + 1,
            }
            for m, send_at in zip(page, times, strict=True)
        }
        versions = message_store.write_if_unchanged(db, page, changes)
        sends = [
            send_task(m.id, {**m.data, **changes[m.id]}, versions[m.id])
            for m in page
            if m.id in versions
        ]
        tasks.enqueue(sends)
        resumed += len(sends)
    return resumed


def skip_queued_messages(
    db: Database, campaign_id: str, reason: str, now: datetime, budget_s: float
) -> BulkOutcome:
    """SKIPPED(reason) for every still-queued message, within a time budget."""
    entry = {"step": "campaign_state", "outcome": "skip", "reason": reason, "at": now}
    fields = {
        "status_rank": rank_of(MessageStatus.SKIPPED),
        "skip_reason": reason,
        "skipped_at": now,
        "expire_at": message_expire_at(now),
        "held": False,
        "audit": audit_append([entry]),
    }
    deadline = time.monotonic() + budget_s
    changed = 0
    for page in message_store.pages_queued(db, campaign_id):
        changes = {m.id: fields for m in page}
        changed += len(message_store.write_if_unchanged(db, page, changes))
        if time.monotonic() > deadline:
            return BulkOutcome(changed, finished=False)
    return BulkOutcome(changed, finished=True)
