"""Inbound messages on the Firestore emulator: keywords, consent, replies, dedupe."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.inbound.keywords import Classification
from shared.inbound.processor import (
    InboundOutcome,
    Reply,
    inbound_record,
    process_inbound,
)
from shared.payloads import InboundWebhook
from shared.platform.config import CoreSettings
from shared.store.inbound import claim_inbound, mark_processed

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
PHONE = "+14155550100"
OUR_NUMBER = "+15005550006"
_sids = itertools.count()


class Replies:
    """Records the replies the processor asks to send."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Reply] = []
        self.fail = fail

    def __call__(self, reply: Reply) -> None:
        if self.fail:
            raise RuntimeError("twilio down")
        self.sent.append(reply)


def core(help_reply: bool = False, confirmations: bool = False) -> CoreSettings:
    return CoreSettings(
        GCP_PROJECT="p",
        SEND_HELP_REPLY=help_reply,
        SEND_OPT_CONFIRMATIONS=confirmations,
        HELP_REPLY="help text",
        STOP_REPLY="stop text",
        START_REPLY="start text",
    )


def inbound(
    body: str,
    sender: str = PHONE,
    sid: str | None = None,
    opt_out_type: str | None = None,
) -> InboundWebhook:
    params = {
        "MessageSid": sid or f"SM{next(_sids):032d}",
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
    }
    if opt_out_type:
        params["OptOutType"] = opt_out_type
    return InboundWebhook(params=params, received_at=NOW - timedelta(seconds=1))


def make_user(db: Any, state: str = "OPT_IN") -> None:
    db.collection("users").document(PHONE).set(
        {"phone": PHONE, "attributes": {}, "consent": {"state": state}}
    )


def user(db: Any, phone: str = PHONE) -> dict[str, Any] | None:
    snapshot = db.collection("users").document(phone).get()
    return snapshot.to_dict() if snapshot.exists else None


def consent_events(db: Any, phone: str = PHONE) -> list[dict[str, Any]]:
    events = db.collection("users").document(phone).collection("consent_events")
    return [e.to_dict() for e in events.stream()]


def stored(db: Any, message: InboundWebhook) -> dict[str, Any]:
    ref = db.collection("inbound").document(message.params["MessageSid"])
    return ref.get().to_dict()


def process(
    db: Any, message: InboundWebhook, settings: CoreSettings | None = None
) -> tuple[Any, Replies]:
    replies = Replies()
    result = process_inbound(db, message, settings or core(), replies, NOW)
    return result, replies


def test_stop_moves_consent_to_stop_with_the_sid_as_evidence(db: Any) -> None:
    make_user(db)
    message = inbound("  stop ")
    result, replies = process(db, message)
    assert result.classification is Classification.STOP
    assert user(db)["consent"]["state"] == "STOP"
    assert user(db)["last_inbound_at"] == message.received_at
    [event] = consent_events(db)
    assert (event["from"], event["to"], event["source"], event["evidence"]) == (
        "OPT_IN",
        "STOP",
        "keyword",
        message.params["MessageSid"],
    )
    raw = stored(db, message)
    assert raw["classification"] == "STOP"
    assert raw["params"] == message.params
    assert raw["expire_at"] == message.received_at + timedelta(days=30)
    assert raw["processed_at"] == NOW
    assert replies.sent == []  # confirmations are off by default


def test_start_opts_back_in(db: Any) -> None:
    make_user(db, "STOP")
    process(db, inbound("Start"))
    assert user(db)["consent"]["state"] == "OPT_IN"
    assert [(e["from"], e["to"]) for e in consent_events(db)] == [("STOP", "OPT_IN")]


def test_opt_out_type_wins_over_the_body(db: Any) -> None:
    make_user(db)
    result, _ = process(db, inbound("Arrêt", opt_out_type="STOP"))
    assert result.classification is Classification.STOP
    assert user(db)["consent"]["state"] == "STOP"


def test_a_plain_reply_is_stored_and_changes_nothing(db: Any) -> None:
    make_user(db)
    message = inbound("Stop please")
    result, replies = process(db, message, core(True, True))
    assert result.classification is Classification.REPLY
    assert stored(db, message)["classification"] == "REPLY"
    assert user(db)["consent"]["state"] == "OPT_IN"
    assert consent_events(db) == []
    assert replies.sent == []


def test_help_is_answered_only_when_configured(db: Any) -> None:
    make_user(db)
    _, quiet = process(db, inbound("help"))
    assert quiet.sent == []
    _, answered = process(db, inbound(" INFO "), core(help_reply=True))
    assert answered.sent == [Reply(PHONE, OUR_NUMBER, "help text")]


def test_confirmations_when_configured_and_only_on_a_change(db: Any) -> None:
    make_user(db)
    on = core(confirmations=True)
    _, first = process(db, inbound("STOP"), on)
    assert first.sent == [Reply(PHONE, OUR_NUMBER, "stop text")]
    _, again = process(db, inbound("STOP"), on)  # already STOP: no second one
    assert again.sent == []
    _, back = process(db, inbound("START"), on)
    assert back.sent == [Reply(PHONE, OUR_NUMBER, "start text")]


def test_nothing_but_the_stop_confirmation_reaches_an_opted_out_number(
    db: Any,
) -> None:
    make_user(db)
    everything = core(help_reply=True, confirmations=True)
    _, stop = process(db, inbound("STOP"), everything)
    assert [r.body for r in stop.sent] == ["stop text"]
    for body in ("HELP", "info", "hello", "stop", "UNSUBSCRIBE"):
        _, later = process(db, inbound(body), everything)
        assert later.sent == [], body


def test_a_reply_goes_back_on_the_channel_it_came_from(db: Any) -> None:
    _, replies = process(db, inbound("help", sender=f"whatsapp:{PHONE}"), core(True))
    assert replies.sent == [Reply(f"whatsapp:{PHONE}", OUR_NUMBER, "help text")]


def test_an_unknown_number_that_opts_out_is_created_as_stop(db: Any) -> None:
    message = inbound("UNSUBSCRIBE")
    process(db, message)
    created = user(db)
    assert created["consent"]["state"] == "STOP"
    assert created["consent"]["source"] == "keyword"
    assert created["last_inbound_at"] == message.received_at
    [event] = consent_events(db)
    assert (event["from"], event["to"], event["evidence"]) == (
        None,
        "STOP",
        message.params["MessageSid"],
    )


@pytest.mark.parametrize("body", ["hello", "START", "HELP"])
def test_an_unknown_number_is_not_created_for_anything_else(db: Any, body: str) -> None:
    message = inbound(body)
    result, _ = process(db, message)
    assert result.outcome is InboundOutcome.PROCESSED
    assert user(db) is None
    assert stored(db, message)["phone"] == PHONE


def test_an_invalid_sender_is_stored_and_nothing_else(db: Any) -> None:
    message = inbound("STOP", sender="ACME")
    result, replies = process(db, message, core(True, True))
    assert result.outcome is InboundOutcome.INVALID_SENDER
    assert stored(db, message)["phone"] is None
    assert list(db.collection("users").stream()) == []
    assert replies.sent == []


def test_a_redelivered_message_is_harmless(db: Any) -> None:
    make_user(db)
    on = core(help_reply=True, confirmations=True)
    message = inbound("STOP")
    first, replies = process(db, message, on)
    second, replies_again = process(db, message, on)
    assert first.outcome is InboundOutcome.PROCESSED
    assert second.outcome is InboundOutcome.DUPLICATE
    assert len(replies.sent) == 1 and replies_again.sent == []
    assert len(consent_events(db)) == 1
    assert len(list(db.collection("inbound").stream())) == 1


def test_a_delivery_that_crashed_before_the_mark_is_finished_by_the_next(
    db: Any,
) -> None:
    make_user(db)
    message = inbound("STOP")
    # The first delivery stored the raw message, then died.
    doc_id = message.params["MessageSid"]
    claim_inbound(
        db, doc_id, inbound_record(message, PHONE, Classification.STOP, core())
    )
    result, replies = process(db, message, core(confirmations=True))
    assert result.outcome is InboundOutcome.PROCESSED
    assert user(db)["consent"]["state"] == "STOP"
    assert [r.body for r in replies.sent] == ["stop text"]


def test_two_concurrent_deliveries_cannot_both_reply(db: Any) -> None:
    message = inbound("HELP")
    doc_id = message.params["MessageSid"]
    record = inbound_record(message, PHONE, Classification.HELP, core())
    first_claim = claim_inbound(db, doc_id, record)
    second_claim = claim_inbound(db, doc_id, record)
    assert first_claim is not None and second_claim is not None
    reply = Reply(PHONE, OUR_NUMBER, "help text")
    assert mark_processed(db, doc_id, first_claim, reply.body, NOW) is True
    assert mark_processed(db, doc_id, second_claim, reply.body, NOW) is False
    assert claim_inbound(db, doc_id, record) is None


def test_a_failed_reply_is_logged_not_retried(db: Any) -> None:
    message = inbound("HELP")
    failing = Replies(fail=True)
    result = process_inbound(db, message, core(help_reply=True), failing, NOW)
    assert result.outcome is InboundOutcome.PROCESSED
    assert stored(db, message)["reply"] == "help text"
    again = process_inbound(db, message, core(help_reply=True), Replies(), NOW)
    assert again.outcome is InboundOutcome.DUPLICATE
