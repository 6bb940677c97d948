"""Which reply an inbound message earns: pure, from the config and the change."""

from __future__ import annotations

import pytest

from shared.audience.consent import ConsentChange
from shared.inbound.keywords import Classification
from shared.inbound.processor import inbound_doc_id, reply_text, sender_phone
from shared.platform.config import CoreSettings
from shared.store.users import ConsentState

PHONE = "+14155550100"


def settings(help_reply: bool = True, confirmations: bool = True) -> CoreSettings:
    return CoreSettings(
        GCP_PROJECT="p",
        SEND_HELP_REPLY=help_reply,
        SEND_OPT_CONFIRMATIONS=confirmations,
        HELP_REPLY="help text",
        STOP_REPLY="stop text",
        START_REPLY="start text",
    )


def change(state: ConsentState, changed: bool = True) -> ConsentChange:
    return ConsentChange(PHONE, ConsentState.OPT_IN, state, changed, False)


def test_help_is_answered_only_when_configured() -> None:
    assert reply_text(Classification.HELP, None, settings()) == "help text"
    assert reply_text(Classification.HELP, None, settings(help_reply=False)) is None


def test_confirmations_only_when_configured_and_the_state_changed() -> None:
    stop, start = change(ConsentState.STOP), change(ConsentState.OPT_IN)
    assert reply_text(Classification.STOP, stop, settings()) == "stop text"
    assert reply_text(Classification.START, start, settings()) == "start text"
    off = settings(confirmations=False)
    assert reply_text(Classification.STOP, stop, off) is None
    assert reply_text(Classification.START, start, off) is None


def test_a_repeated_stop_gets_no_second_confirmation() -> None:
    unchanged = change(ConsentState.STOP, changed=False)
    assert reply_text(Classification.STOP, unchanged, settings()) is None
    assert reply_text(Classification.STOP, None, settings()) is None


def test_a_plain_reply_is_never_answered() -> None:
    assert reply_text(Classification.REPLY, None, settings()) is None


def test_inbound_doc_id_is_the_sid_or_a_stable_digest() -> None:
    assert inbound_doc_id({"MessageSid": "SM1", "From": PHONE}) == "SM1"
    assert inbound_doc_id({"SmsMessageSid": "SM2"}) == "SM2"
    assert inbound_doc_id({"MessageSid": "SM/../x"}) == "SM-..-x"
    no_sid = {"From": PHONE, "Body": "hi"}
    assert inbound_doc_id(no_sid) == inbound_doc_id(dict(reversed(no_sid.items())))
    assert inbound_doc_id(no_sid).startswith("nosid-")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (PHONE, PHONE),
        (f"whatsapp:{PHONE}", PHONE),
        ("(415) 555-0100", PHONE),
        ("ACME", None),
        ("", None),
    ],
)
def test_sender_phone_is_normalised_or_none(raw: str, expected: str | None) -> None:
    assert sender_phone({"From": raw}, "US") == expected
