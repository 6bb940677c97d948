"""Status callbacks applied to messages, never moving a status backwards.

Each callback is one blind write: `status_rank` rises through a Maximum
transform, the raw parameters are appended with ArrayUnion (an exact duplicate
delivery adds nothing), and `error_code` is only ever set, never cleared. No
read and no transaction are needed, so out-of-order and duplicate callbacks are
safe by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.audience.consent import set_consent
from shared.audience.users import ConsentState
from shared.delivery.errors import OPT_OUT_CODES
from shared.delivery.messages import MESSAGES, message_ref
from shared.delivery.status import TWILIO_STATUS, MessageStatus, rank_of
from shared.payloads import StatusCallback
from shared.platform.firestore import operations
from shared.platform.logging import get_logger

log = get_logger(__name__)

UNMATCHED_RECEIPTS = "receipts"


@dataclass(frozen=True)
class ReceiptResult:
    outcome: str
    message_id: str | None = None
    status: MessageStatus | None = None


def _receipt_entry(callback: StatusCallback) -> dict[str, Any]:
    # No arrival time inside: a duplicate delivery must be the same element.
    entry: dict[str, Any] = {"params": callback.params}
    if callback.idempotency_token:
        entry["token"] = callback.idempotency_token
    return entry


def _find_message_id(db: firestore.Client, callback: StatusCallback) -> str | None:
    if callback.query.get("message_id"):
        return callback.query["message_id"]
    sid = callback.params.get("MessageSid") or callback.params.get("SmsSid")
    if not sid:
        return None
    operations.add("reads")
    query = (
        db.collection(MESSAGES)
        .where(filter=firestore.FieldFilter("provider_sid", "==", sid))
        .limit(1)
    )
    found = list(query.stream())
    return found[0].id if found else None


def status_update(callback: StatusCallback, status: MessageStatus) -> dict[str, Any]:
    params = callback.params
    update: dict[str, Any] = {
        "status_rank": firestore.Maximum(rank_of(status)),
        "receipts": firestore.ArrayUnion([_receipt_entry(callback)]),
        f"{status.value.lower()}_at": callback.received_at,
    }
    sid = params.get("MessageSid") or params.get("SmsSid")
    if sid:
        # Repairs a message whose sender crashed before recording the SID.
        update["provider_sid"] = sid
    if params.get("ErrorCode"):
        update["error_code"] = params["ErrorCode"]
        if params.get("ErrorMessage"):
            update["error_message"] = params["ErrorMessage"]
    return update


def apply_status_callback(
    db: firestore.Client, callback: StatusCallback, now: datetime
) -> ReceiptResult:
    raw_status = (
        callback.params.get("MessageStatus") or callback.params.get("SmsStatus") or ""
    ).lower()
    status = TWILIO_STATUS.get(raw_status)
    message_id = _find_message_id(db, callback)
    if status is None or message_id is None:
        _store_unmatched(db, callback, now)
        return ReceiptResult("unmatched", message_id)
    operations.add("writes")
    try:
        message_ref(db, message_id).update(status_update(callback, status))
    except gexc.NotFound:
        _store_unmatched(db, callback, now)
        return ReceiptResult("unmatched", message_id)
    if (
        callback.params.get("ErrorCode", "").isdigit()
        and int(callback.params["ErrorCode"]) in OPT_OUT_CODES
    ):
        _carrier_opt_out(db, callback, message_id, now)
    return ReceiptResult("applied", message_id, status)


def _carrier_opt_out(
    db: firestore.Client, callback: StatusCallback, message_id: str, now: datetime
) -> None:
    phone = callback.params.get("To", "")
    if phone:
        set_consent(
            db,
            phone,
            ConsentState.STOP,
            source=f"carrier_{callback.params['ErrorCode']}",
            now=now,
            evidence=callback.params.get("MessageSid") or message_id,
        )


def _store_unmatched(
    db: firestore.Client, callback: StatusCallback, now: datetime
) -> None:
    """Keep a callback that matched no message, for reconciliation (TTL)."""
    sid = callback.params.get("MessageSid", "unknown")
    status = callback.params.get("MessageStatus", "unknown")
    operations.add("writes")
    db.collection(UNMATCHED_RECEIPTS).document(f"{sid}_{status}"[:1400]).set(
        {
            "params": callback.params,
            "query": callback.query,
            "received_at": callback.received_at,
            "expire_at": now + timedelta(days=30),
        }
    )
    log.warning("status callback matched no message")
