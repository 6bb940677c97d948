"""Inbound messages: consent changes, stored replies, HELP and confirmations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.audience.consent import ConsentChange, set_consent
from shared.audience.phones import InvalidPhone, normalize_phone
from shared.audience.users import ConsentState, user_ref
from shared.inbound.keywords import Classification, classify_inbound
from shared.payloads import InboundWebhook
from shared.platform.config import CoreSettings
from shared.platform.logging import get_logger

log = get_logger(__name__)

INBOUND = "inbound"

CONSENT_FOR: dict[Classification, ConsentState] = {
    Classification.STOP: ConsentState.STOP,
    Classification.START: ConsentState.OPT_IN,
}


@dataclass(frozen=True)
class InboundResult:
    outcome: str
    classification: Classification | None = None
    reply: str | None = None


ReplySender = Callable[[str, str], None]


def process_inbound(
    db: firestore.Client,
    inbound: InboundWebhook,
    core: CoreSettings,
    send_reply: ReplySender,
    now: datetime,
) -> InboundResult:
    params = inbound.params
    sid = params.get("MessageSid") or params.get("SmsMessageSid") or ""
    try:
        phone = normalize_phone(params.get("From", ""), core.default_region)
    except InvalidPhone:
        log.warning("inbound from an invalid number ignored")
        return InboundResult("invalid_sender")
    classification = classify_inbound(params.get("Body"), params.get("OptOutType"))
    if not _store_raw(db, sid, phone, inbound, classification, core, now):
        return InboundResult("duplicate", classification)
    change = _apply_consent(db, phone, sid, classification, now)
    _touch_user(db, phone, now)
    reply = _reply_text(classification, change, core)
    if reply:
        send_reply(phone, reply)
    log.info("inbound classified %s", classification.value)
    return InboundResult("processed", classification, reply)


def _store_raw(
    db: firestore.Client,
    sid: str,
    phone: str,
    inbound: InboundWebhook,
    classification: Classification,
    core: CoreSettings,
    now: datetime,
) -> bool:
    """Create inbound/{MessageSid}; False when it exists (a redelivery)."""
    ref = db.collection(INBOUND).document(sid or f"nosid-{now.timestamp()}")
    try:
        ref.create(
            {
                "params": inbound.params,
                "phone": phone,
                "body": inbound.params.get("Body", ""),
                "classification": classification.value,
                "received_at": inbound.received_at,
                "expire_at": now + timedelta(days=core.raw_retention_days),
            }
        )
    except gexc.AlreadyExists:
        return False
    return True


def _apply_consent(
    db: firestore.Client,
    phone: str,
    sid: str,
    classification: Classification,
    now: datetime,
) -> ConsentChange | None:
    state = CONSENT_FOR.get(classification)
    if state is None:
        return None
    # An unknown number that opts out is created as STOP so suppression holds.
    return set_consent(
        db,
        phone,
        state,
        source="keyword",
        now=now,
        evidence=sid,
        create_missing=state is ConsentState.STOP,
    )


def _touch_user(db: firestore.Client, phone: str, now: datetime) -> None:
    try:
        user_ref(db, phone).update({"last_inbound_at": now})
    except gexc.NotFound:
        pass


def _reply_text(
    classification: Classification,
    change: ConsentChange | None,
    core: CoreSettings,
) -> str | None:
    if classification is Classification.HELP:
        return core.help_reply if core.send_help_reply else None
    if change is None or not change.changed or not core.send_opt_confirmations:
        return None
    if classification is Classification.STOP:
        return core.stop_reply
    if classification is Classification.START:
        return core.start_reply
    return None
