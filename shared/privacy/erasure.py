"""Erasure of one phone number everywhere it is stored (docs/architecture.md §3).

`erase_phone` removes or redacts the number's data in every collection, in
bounded batches. Each step selects what still holds the number (a query on
its phone field), so a retry after a crash halfway picks up where the last
attempt stopped and an erasure run twice erases nothing twice. The order
matters for that:

1. an opted-out number gets its suppression entry first, keyed by a keyed
   hash of the number (never the number), so no later import or API call
   can opt it back in silently;
2. the summaries of the COMPLETED campaigns that messaged it are frozen
   before anything they count is touched, so reports keep their numbers;
3. messages are redacted (phone, body, receipts, error text; the status and
   counts stay), a QUEUED one becomes SKIPPED(`erased`) so it is never sent;
4. inbound messages, events and unmatched receipts are deleted;
5. the consent history, then the profile, go last: the profile is what
   tells a retry that the number was opted out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.audience.consent import SUPPRESSING_STATES
from shared.audience.suppressions import suppressed_state
from shared.campaigns.summary import campaign_summary
from shared.platform.bulk import write_in_batches
from shared.platform.logging import get_logger, mask_phones_in_log
from shared.store import messages as message_store
from shared.store.messages import QUEUED_RANK, MessageStatus, rank_of
from shared.store.users import (
    CONSENT_EVENTS,
    User,
    suppression_ref,
    user_ref,
)

log = get_logger(__name__)

INBOUND = "inbound"
EVENTS = "events"
UNMATCHED_RECEIPTS = "receipts"
# Writes per batch: far below Firestore's 500, so one batch stays small.
ERASURE_BATCH = 200
ERASED_SKIP_REASON = "erased"


def _where(field: str, op: str, value: Any) -> FieldFilter:
    return FieldFilter(field, op, value)


def _in_batches(
    db: firestore.Client,
    query: firestore.Query,
    write: Callable[[firestore.WriteBatch, firestore.DocumentSnapshot], None],
) -> int:
    """Apply `write` to every document `query` selects, a batch at a time."""
    return write_in_batches(db, query, write, ERASURE_BATCH)


def _delete(batch: firestore.WriteBatch, snapshot: firestore.DocumentSnapshot) -> None:
    batch.delete(snapshot.reference)


def _masked_entry(entry: Any) -> Any:
    if not isinstance(entry, dict) or not entry.get("reason"):
        return entry
    return {**entry, "reason": mask_phones_in_log(str(entry["reason"]))}


def _redact_message(
    now: datetime, retention: timedelta
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def redacted(data: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {
            "phone": "",
            "body": "",
            "receipts": [],
            "content_variables": None,
            "error_message": None,
            # Twilio's error texts (kept in the audit) may quote the number.
            "audit": [_masked_entry(entry) for entry in data.get("audit") or []],
            "erased_at": now,
            "expire_at": data.get("expire_at") or now + retention,
        }
        if int(data.get("status_rank", 0)) <= QUEUED_RANK:
            # Never sent now: the sender acknowledges a final message and stops.
            changes["status_rank"] = rank_of(MessageStatus.SKIPPED)
            changes["skip_reason"] = ERASED_SKIP_REASON
        return changes

    return redacted


def _freeze_completed_summaries(db: firestore.Client, phone: str, now: datetime) -> int:
    """Freeze the reports of completed campaigns this number was part of."""
    campaign_ids = message_store.campaign_ids_messaging(db, phone)
    frozen = 0
    for campaign_id in sorted(campaign_ids):
        summary = campaign_summary(db, campaign_id, now)
        frozen += bool(summary is not None and summary.frozen)
    return frozen


def _keep_suppression(db: firestore.Client, phone: str, now: datetime) -> bool:
    snapshot = user_ref(db, phone).get()
    if not snapshot.exists:
        return False
    user = User.from_doc(snapshot.to_dict() or {})
    if user.consent.state not in SUPPRESSING_STATES:
        return False
    suppression_ref(db, phone).set(
        {
            "state": user.consent.state.value,
            "source": user.consent.source,
            "opted_out_at": user.consent.updated_at,
            "erased_at": now,
        }
    )
    return True


def erase_phone(
    db: firestore.Client, phone: str, now: datetime, retention: timedelta
) -> dict[str, Any]:
    """Erase `phone` everywhere; what was erased, per collection."""
    suppressed = _keep_suppression(db, phone, now)
    frozen = _freeze_completed_summaries(db, phone, now)
    erased: Counter[str] = Counter()
    erased["messages"] = message_store.update_each_to_phone(
        db, phone, _redact_message(now, retention), ERASURE_BATCH
    )
    inbound = db.collection(INBOUND).where(filter=_where("phone", "==", phone))
    erased["inbound"] = _in_batches(db, inbound, _delete)
    events = db.collection(EVENTS).where(filter=_where("phone", "==", phone))
    erased["events"] = _in_batches(db, events, _delete)
    receipts = db.collection(UNMATCHED_RECEIPTS).where(
        filter=_where("params.To", "in", [phone, f"whatsapp:{phone}"])
    )
    erased["unmatched_receipts"] = _in_batches(db, receipts, _delete)
    history = user_ref(db, phone).collection(CONSENT_EVENTS)
    erased["consent_events"] = _in_batches(db, history, _delete)
    profile = user_ref(db, phone)
    erased["users"] = int(profile.get().exists)
    profile.delete()
    log.info(
        "phone erased",
        extra={
            "labels": {
                "event": "phone_erased",
                **{k: str(v) for k, v in erased.items()},
            }
        },
    )
    return {
        "erased": dict(erased),
        "suppressed": suppressed or suppressed_state(db, phone) is not None,
        "summaries_frozen": frozen,
    }
