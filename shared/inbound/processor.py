"""Inbound messages: consent changes, stored replies, HELP and confirmations.

Pub/Sub delivers at least once, possibly twice at the same time. The raw
message in `inbound/{MessageSid}` is the guard: it is created first, and it is
marked processed by a write conditional on its last update, before any reply
is sent. So a redelivery finds it processed and does nothing, two concurrent
deliveries cannot both win the mark, and a reply goes out at most once. A
delivery that crashed before the mark is finished by the next one; consent
changes are idempotent, so redoing them is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.audience.consent import (
    KEYWORD_SOURCE,
    ConsentChange,
    allows_help_reply,
    set_consent_by_keyword,
)
from shared.audience.phones import InvalidPhone, normalize_phone
from shared.inbound.keywords import Classification, classify_inbound
from shared.payloads import InboundWebhook, inbound_sid, params_digest
from shared.platform.config import CoreSettings
from shared.platform.documents import safe_document_id
from shared.platform.firestore import Database
from shared.platform.logging import get_logger
from shared.store.inbound import claim_inbound, mark_processed, new_inbound_doc
from shared.store.users import ConsentState, get_user, set_last_inbound

log = get_logger(__name__)


CONSENT_FOR: dict[Classification, ConsentState] = {
    Classification.STOP: ConsentState.STOP,
    Classification.START: ConsentState.OPT_IN,
}


# The `event` label of the log line a change writes (log-based metrics count them).
CONSENT_EVENT: dict[ConsentState, str] = {
    ConsentState.STOP: "opt_out",
    ConsentState.OPT_IN: "opt_in",
}


class InboundOutcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    INVALID_SENDER = "invalid_sender"


@dataclass(frozen=True)
class Reply:
    to: str  # the sender's address as Twilio gave it, channel prefix included
    from_number: str  # the number they wrote to, so the answer comes from it
    body: str


@dataclass(frozen=True)
class InboundResult:
    outcome: InboundOutcome
    classification: Classification
    reply: Reply | None = None


ReplySender = Callable[[Reply], None]


def inbound_doc_id(params: dict[str, str]) -> str:
    sid = inbound_sid(params)
    return safe_document_id(sid) if sid else f"nosid-{params_digest(params)}"


def sender_phone(params: dict[str, str], default_region: str) -> str | None:
    try:
        return normalize_phone(params.get("From", ""), default_region)
    except InvalidPhone:
        return None


def process_inbound(
    db: Database,
    inbound: InboundWebhook,
    core: CoreSettings,
    send_reply: ReplySender,
    now: datetime,
) -> InboundResult:
    params = inbound.params
    classification = classify_inbound(params.get("Body"), params.get("OptOutType"))
    phone = sender_phone(params, core.default_region)
    doc_id = inbound_doc_id(params)
    record = inbound_record(inbound, phone, classification, core)
    claim = claim_inbound(db, doc_id, record)
    if claim is None:
        log.info("inbound redelivery ignored")
        return InboundResult(InboundOutcome.DUPLICATE, classification)
    if phone is None:
        log.warning("inbound from an invalid number kept without action")
        mark_processed(db, doc_id, claim, None, now)
        return InboundResult(InboundOutcome.INVALID_SENDER, classification)
    change = apply_consent(db, phone, inbound_sid(params), classification, now)
    touch_user(db, phone, inbound.received_at)
    reply = reply_for(db, params, phone, classification, change, core)
    if not mark_processed(db, doc_id, claim, reply.body if reply else None, now):
        log.info("inbound processed concurrently elsewhere")
        return InboundResult(InboundOutcome.DUPLICATE, classification)
    if reply:
        deliver_reply(send_reply, reply)
    log.info(
        "inbound classified %s",
        classification.value,
        extra={"labels": {"event": "inbound", "classification": classification.value}},
    )
    return InboundResult(InboundOutcome.PROCESSED, classification, reply)


def inbound_record(
    inbound: InboundWebhook,
    phone: str | None,
    classification: Classification,
    core: CoreSettings,
) -> dict[str, Any]:
    return new_inbound_doc(
        inbound.params,
        phone,
        classification.value,
        inbound.received_at,
        inbound.received_at + timedelta(days=core.raw_retention_days),
    )


def apply_consent(
    db: Database,
    phone: str,
    sid: str | None,
    classification: Classification,
    now: datetime,
) -> ConsentChange | None:
    state = CONSENT_FOR.get(classification)
    if state is None:
        return None
    change = set_consent_by_keyword(db, phone, state, evidence=sid, now=now)
    if change is not None and change.changed:
        log.info(
            "consent %s by keyword for %s",
            state.value,
            phone,
            extra={"labels": {"event": CONSENT_EVENT[state], "source": KEYWORD_SOURCE}},
        )
    return change


def touch_user(db: Database, phone: str, received_at: datetime) -> None:
    # The time Twilio's webhook arrived, so a redelivery writes the same value.
    set_last_inbound(db, phone, received_at)


def reply_for(
    db: Database,
    params: dict[str, str],
    phone: str,
    classification: Classification,
    change: ConsentChange | None,
    core: CoreSettings,
) -> Reply | None:
    body = reply_text(classification, change, core)
    if body is None:
        return None
    if classification is Classification.HELP and not allows_help_reply(
        get_user(db, phone)
    ):
        return None
    return Reply(params.get("From", phone), params.get("To", ""), body)


def reply_text(
    classification: Classification,
    change: ConsentChange | None,
    core: CoreSettings,
) -> str | None:
    """What to answer, if anything: pure, from the config and the change made."""
    if classification is Classification.HELP:
        return core.help_reply if core.send_help_reply else None
    if change is None or not change.changed or not core.send_opt_confirmations:
        return None
    return {
        Classification.STOP: core.stop_reply,
        Classification.START: core.start_reply,
    }.get(classification)


def deliver_reply(send_reply: ReplySender, reply: Reply) -> None:
    try:
        send_reply(reply)
    except Exception:
        # The message is already marked processed, so a retry would skip the
        # reply anyway: a reply goes at most once, and a lost one is logged.
        log.exception(
            "inbound reply not sent", extra={"labels": {"event": "reply_failed"}}
        )
