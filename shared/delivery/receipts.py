"""Status callbacks applied to messages, never moving a status backwards.

Each callback is one blind write: `status_rank` rises through a Maximum
transform, the raw parameters are appended with ArrayUnion (an exact duplicate
delivery adds nothing), and `error_code` is only ever set, never cleared. No
read and no transaction are needed, so out-of-order and duplicate callbacks are
safe by construction.

Why `receipts` stays small without a read: an entry is the callback's signed
parameters and nothing else (no arrival time, no delivery token), so a
redelivered callback is the same element and ArrayUnion adds nothing. Only
Twilio can sign new parameters, and it sends one callback per status change,
so the list holds at most one entry per distinct status (about nine). Firestore
has no transform that trims an array, and trimming by read would cost the read
and the transaction this design avoids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from google.api_core import exceptions as gexc

from shared.audience.consent import carrier_source, set_consent_by_carrier
from shared.audience.phones import InvalidPhone, normalize_phone
from shared.delivery.errors import OPT_OUT_CODES, error_meaning
from shared.delivery.messages import message_expire_at
from shared.delivery.status import TWILIO_STATUS
from shared.payloads import StatusCallback, error_code, message_sid, message_status
from shared.platform.documents import safe_document_id
from shared.platform.firestore import Database
from shared.platform.logging import get_logger, log_context
from shared.store import messages as message_store
from shared.store import receipts as receipt_store
from shared.store.messages import MessageStatus, rank_raised_to, receipts_append
from shared.store.receipts import UNMATCHED_RECEIPTS

log = get_logger(__name__)

UNMATCHED_RETENTION = timedelta(days=30)
MESSAGE_ID_PARAM = "message_id"

# The time each status was reported. SENT's is `sent_reported_at`, not
# `sent_at`: that is the sender's send time, which the frequency cap reads, and a
# late `queued` or `sent` callback must not move it. A message that reaches SENT
# only through a callback (its send was ambiguous) has no `sent_at`; the settle
# check reads `sent_reported_at` so that it waits for it as well.
STATUS_TIME_FIELD: dict[MessageStatus, str] = {
    MessageStatus.SENT: "sent_reported_at",
    MessageStatus.DELIVERED: "delivered_at",
    MessageStatus.READ: "read_at",
    MessageStatus.UNDELIVERED: "undelivered_at",
    MessageStatus.FAILED: "failed_at",
}


class ReceiptOutcome(StrEnum):
    APPLIED = "applied"
    UNMATCHED = "unmatched"
    UNKNOWN_STATUS = "unknown_status"


@dataclass(frozen=True)
class ReceiptResult:
    outcome: ReceiptOutcome
    message_id: str | None = None
    status: MessageStatus | None = None


def campaign_id_of(message_id: str) -> str:
    """Message ids start with their campaign id.

    (`{campaign}_{recipient_key}[_{event}]`)
    """
    return message_id.split("_", 1)[0]


# Parameters a stored receipt leaves out: the recipient's number is the
# message's own `phone` already, and a callback arriving after an erasure must
# not write it back into the redacted message.
_NOT_STORED = frozenset({"To"})


def receipt_entry(callback: StatusCallback) -> dict[str, Any]:
    # Only the signed parameters (less the number): a redelivery must be the
    # very same element.
    return {
        "params": {k: v for k, v in callback.params.items() if k not in _NOT_STORED}
    }


def status_update(callback: StatusCallback, status: MessageStatus) -> dict[str, Any]:
    """The blind update for one callback: every field either rises or is set."""
    update: dict[str, Any] = {
        "status_rank": rank_raised_to(status),
        "receipts": receipts_append([receipt_entry(callback)]),
        # Every callback reports SENT or later: the clock of retention restarts
        # at the latest one, in the same blind write.
        "expire_at": message_expire_at(callback.received_at),
    }
    time_field = STATUS_TIME_FIELD.get(status)
    if time_field:
        update[time_field] = callback.received_at
    sid = message_sid(callback.params)
    if sid:
        # Repairs a message whose sender crashed before recording the SID.
        update["provider_sid"] = sid
    code = error_code(callback.params)
    if code:
        update["error_code"] = code
        meaning = callback.params.get("ErrorMessage") or error_meaning(code)
        if meaning:
            update["error_message"] = meaning
    return update


def _url_message_id(callback: StatusCallback) -> str | None:
    """The id our sender put in the StatusCallback URL, if it is a legal id."""
    message_id = callback.query.get(MESSAGE_ID_PARAM, "")
    if not message_id or safe_document_id(message_id) != message_id:
        return None
    return message_id


def find_message_id(db: Database, callback: StatusCallback) -> str | None:
    """By the id in the callback URL, else by the indexed `provider_sid`."""
    from_url = _url_message_id(callback)
    if from_url:
        return from_url
    sid = message_sid(callback.params)
    if not sid:
        return None
    return message_store.id_by_provider_sid(db, sid)


def apply_status_callback(
    db: Database,
    callback: StatusCallback,
    now: datetime,
    retention: timedelta = UNMATCHED_RETENTION,
) -> ReceiptResult:
    """Apply one callback; returns normally whatever it finds, so it never loops."""
    expire_at = now + retention
    status = TWILIO_STATUS.get(message_status(callback.params))
    if status is None:
        store_unmatched(db, callback, expire_at, ReceiptOutcome.UNKNOWN_STATUS)
        result = ReceiptResult(ReceiptOutcome.UNKNOWN_STATUS)
    else:
        result = _apply_to_message(db, callback, status, expire_at)
    if _is_carrier_opt_out(callback):
        _carrier_opt_out(db, callback, now)
    return result


def _apply_to_message(
    db: Database,
    callback: StatusCallback,
    status: MessageStatus,
    expire_at: datetime,
) -> ReceiptResult:
    message_id = find_message_id(db, callback)
    if message_id is None:
        store_unmatched(db, callback, expire_at, ReceiptOutcome.UNMATCHED)
        return ReceiptResult(ReceiptOutcome.UNMATCHED)
    try:
        return _write_status(db, message_id, callback, status)
    except gexc.NotFound:
        store_unmatched(db, callback, expire_at, ReceiptOutcome.UNMATCHED)
        return ReceiptResult(ReceiptOutcome.UNMATCHED, message_id)


def _write_status(
    db: Database,
    message_id: str,
    callback: StatusCallback,
    status: MessageStatus,
    deadline: float | None = None,
) -> ReceiptResult:
    """The one blind write of a callback to its message, then its log line."""
    with log_context(campaign_id=campaign_id_of(message_id), message_id=message_id):
        message_store.update(
            db, message_id, status_update(callback, status), deadline=deadline
        )
        log.info(
            "status callback applied: %s",
            status.value,
            extra={"labels": {"event": "status_callback", "status": status.value}},
        )
    return ReceiptResult(ReceiptOutcome.APPLIED, message_id, status)


# Intake's budget for the write: with the publish after it (10 s) it stays
# under Twilio's 15 s webhook timeout, so a failed write can still fall back.
INTAKE_WRITE_DEADLINE_SECONDS = 3.0


def apply_at_intake(
    db: Database,
    callback: StatusCallback,
    deadline: float = INTAKE_WRITE_DEADLINE_SECONDS,
) -> bool:
    """The common callback applied by the webhook itself; False: queue it.

    Only a callback that names its message in the URL (all of ours), with a
    known status and no carrier opt-out, is the one blind write that needs no
    read: the same write `apply_status_callback` makes, so a later redelivery
    through the queue changes nothing. Everything else (a lookup by SID, an
    unmatched or unknown receipt, a consent change, a failed or timed-out
    write) returns False for the caller to publish to `delivery-receipts`.
    """
    status = TWILIO_STATUS.get(message_status(callback.params))
    message_id = _url_message_id(callback)
    if status is None or message_id is None or _is_carrier_opt_out(callback):
        return False
    try:
        _write_status(db, message_id, callback, status, deadline)
    except Exception as exc:
        # Unavailable, Aborted, a deadline, NotFound: the queue's handler
        # retries it or keeps it as unmatched. The write is idempotent, so one
        # that landed after all is harmless to apply again.
        log.warning(
            "status callback queued after its write failed: %s",
            type(exc).__name__,
            extra={"labels": {"event": "receipt_write_deferred"}},
        )
        return False
    return True


def _is_carrier_opt_out(callback: StatusCallback) -> bool:
    code = error_code(callback.params) or ""
    return code.isdigit() and int(code) in OPT_OUT_CODES


def _carrier_opt_out(db: Database, callback: StatusCallback, now: datetime) -> None:
    """The carrier says the recipient replied STOP: suppress the number."""
    code = error_code(callback.params)
    try:
        phone = normalize_phone(callback.params.get("To", ""))
    except InvalidPhone:
        log.warning("carrier opt-out %s for an unreadable number ignored", code)
        return
    # Created when unknown, like an inbound STOP, so that suppression holds.
    change = set_consent_by_carrier(
        db,
        phone,
        code,
        evidence=message_sid(callback.params),
        now=now,
        create_missing=True,
    )
    if change is not None and change.changed:
        log.info(
            "consent STOP from carrier %s for %s",
            code,
            phone,
            extra={"labels": {"event": "opt_out", "source": carrier_source(code)}},
        )


def store_unmatched(
    db: Database,
    callback: StatusCallback,
    expire_at: datetime,
    outcome: ReceiptOutcome,
) -> None:
    """Keep a callback that matched no message, for reconciliation (TTL)."""
    sid = message_sid(callback.params) or "unknown"
    status = message_status(callback.params) or "unknown"
    receipt_store.keep_unmatched(
        db,
        sid,
        status,
        {
            "params": dict(callback.params),
            "query": dict(callback.query),
            "idempotency_token": callback.idempotency_token,
            "reason": outcome.value,
            "received_at": callback.received_at,
            "expire_at": expire_at,
        },
    )
    log.warning(
        "status callback %s kept in %s/ (%s)",
        status,
        UNMATCHED_RECEIPTS,
        outcome.value,
        extra={"labels": {"event": "status_callback_unmatched", "sid": sid}},
    )
