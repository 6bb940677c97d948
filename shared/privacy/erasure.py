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

from shared.audience.consent import SUPPRESSING_STATES
from shared.campaigns.summary import freeze_if_completed
from shared.platform.firestore import Database
from shared.platform.logging import get_logger, mask_phones_in_log
from shared.store import events as event_store
from shared.store import inbound as inbound_store
from shared.store import messages as message_store
from shared.store import receipts as receipt_store
from shared.store import users as user_store
from shared.store.messages import QUEUED_RANK, MessageStatus, rank_of

log = get_logger(__name__)

# Writes per batch: far below Firestore's 500, so one batch stays small.
ERASURE_BATCH = 200
ERASED_SKIP_REASON = "erased"


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


def _freeze_completed_summaries(db: Database, phone: str, now: datetime) -> int:
    """Freeze the reports of completed campaigns this number was part of."""
    campaign_ids = message_store.campaign_ids_messaging(db, phone)
    frozen = 0
    for campaign_id in sorted(campaign_ids):
        frozen += freeze_if_completed(db, campaign_id, now)
    return frozen


def _keep_suppression(db: Database, phone: str, now: datetime) -> bool:
    user = user_store.get_user(db, phone)
    if user is None or user.consent.state not in SUPPRESSING_STATES:
        return False
    user_store.keep_suppression(db, phone, user.consent, now)
    return True


def erase_phone(
    db: Database, phone: str, now: datetime, retention: timedelta
) -> dict[str, Any]:
    """Erase `phone` everywhere; what was erased, per collection."""
    suppressed = _keep_suppression(db, phone, now)
    frozen = _freeze_completed_summaries(db, phone, now)
    erased: Counter[str] = Counter()
    erased["messages"] = message_store.update_each_to_phone(
        db, phone, _redact_message(now, retention), ERASURE_BATCH
    )
    erased["inbound"] = inbound_store.delete_from_phone(db, phone, ERASURE_BATCH)
    erased["events"] = event_store.delete_of_phone(db, phone, ERASURE_BATCH)
    erased["unmatched_receipts"] = receipt_store.delete_to_phone(
        db, phone, ERASURE_BATCH
    )
    erased["consent_events"] = user_store.delete_consent_history(
        db, phone, ERASURE_BATCH
    )
    erased["users"] = user_store.delete_user(db, phone)
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
        "suppressed": suppressed or bool(user_store.suppression_states(db, [phone])),
        "summaries_frozen": frozen,
    }
