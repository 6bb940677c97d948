"""WhatsApp for real: channel addresses, the 24-hour window, content templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shared.delivery.gateway import (
    CONNECTION_OVERRIDES,
    channel_address,
    status_callback_url,
)
from shared.delivery.pipeline import (
    RECIPIENT_STEPS,
    Outcome,
    SendContext,
    check_whatsapp_window,
    run_steps,
    skip_reason,
)
from shared.delivery.sender import _outbound
from shared.store.campaigns import Campaign, CampaignStatus
from shared.store.messages import Message, MessageStatus, rank_of
from shared.store.users import Consent, ConsentState, User

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
PHONE = "+14155550177"
CONTENT_SID = "HX" + "a" * 32
PUBLIC = "https://hooks.example.com"


def message(**fields: Any) -> Message:
    return Message.model_validate(
        {
            "id": "c1_14155550177",
            "campaign_id": "c1",
            "phone": PHONE,
            "body": "Your order shipped",
            "encoding": "GSM-7",
            "segments": 1,
            "status_rank": rank_of(MessageStatus.QUEUED),
            "send_at": NOW,
            "channel": "whatsapp",
            **fields,
        }
    )


def user(last_inbound_at: datetime | None) -> User:
    return User(
        phone=PHONE,
        timezone="UTC",
        consent=Consent(state=ConsentState.OPT_IN),
        last_inbound_at=last_inbound_at,
    )


def campaign(**fields: Any) -> Campaign:
    return Campaign.model_validate(
        {
            "id": "c1",
            "name": "Shipping",
            "template_id": "t1",
            "segment_id": "s1",
            "status": CampaignStatus.RUNNING,
            "quiet_hours": None,
            **fields,
        }
    )


def context(msg: Message, last_inbound_at: datetime | None) -> SendContext:
    return SendContext(
        message=msg, campaign=campaign(), now=NOW, user=user(last_inbound_at)
    )


# --- the 24-hour customer-service window ------------------------------------------


@pytest.mark.parametrize(
    "ago", [timedelta(0), timedelta(hours=1), timedelta(hours=23, minutes=59)]
)
def test_free_form_whatsapp_passes_inside_the_window(ago: timedelta) -> None:
    decision = check_whatsapp_window(context(message(), NOW - ago))
    assert decision.outcome is Outcome.PASS


@pytest.mark.parametrize("last_inbound", [None, NOW - timedelta(hours=24)])
def test_free_form_whatsapp_outside_the_window_is_skipped(
    last_inbound: datetime | None,
) -> None:
    decision = check_whatsapp_window(context(message(), last_inbound))
    assert decision.outcome is Outcome.SKIP
    assert skip_reason(decision) == "whatsapp_window_closed"


def test_a_content_template_goes_at_any_time() -> None:
    msg = message(content_sid=CONTENT_SID, content_variables={"1": "Ann"})
    assert check_whatsapp_window(context(msg, None)).outcome is Outcome.PASS


def test_sms_has_no_window() -> None:
    assert check_whatsapp_window(context(message(channel="sms"), None)).outcome is (
        Outcome.PASS
    )


def test_the_window_step_runs_with_the_recipient_steps_and_is_audited() -> None:
    decisions = run_steps(context(message(), None), RECIPIENT_STEPS)
    final = decisions[-1]
    assert (final.step, final.outcome) == ("whatsapp_window", Outcome.SKIP)
    assert final.audit(NOW) == {
        "step": "whatsapp_window",
        "outcome": "skip",
        "reason": "whatsapp_window_closed",
        "at": NOW,
    }


# --- addresses and callbacks -------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "number", "address"),
    [
        ("whatsapp", "+14155550177", "whatsapp:+14155550177"),
        ("whatsapp", "whatsapp:+14155238886", "whatsapp:+14155238886"),
        ("sms", "+14155550177", "+14155550177"),
        ("sms", "whatsapp:+14155238886", "+14155238886"),
    ],
)
def test_channel_address(channel: str, number: str, address: str) -> None:
    assert channel_address(channel, number) == address


def deps(from_number: str = "", service: str = "") -> Any:
    twilio = SimpleNamespace(
        public_base_url=PUBLIC, from_number=from_number, messaging_service_sid=service
    )
    return SimpleNamespace(twilio=twilio)


def test_whatsapp_goes_with_the_prefix_on_both_to_and_from() -> None:
    sender = {"from": "whatsapp:+14155238886"}
    outbound = _outbound(deps(), message(), campaign(sender=sender))
    assert (outbound.to, outbound.from_number) == (
        "whatsapp:+14155550177",
        "whatsapp:+14155238886",
    )


def test_whatsapp_from_the_configured_number_gets_the_prefix_too() -> None:
    outbound = _outbound(deps(from_number="+15005550006"), message(), None)
    assert (outbound.to, outbound.from_number) == (
        "whatsapp:+14155550177",
        "whatsapp:+15005550006",
    )


def test_whatsapp_through_a_messaging_service_prefixes_to() -> None:
    outbound = _outbound(deps(service="MG" + "0" * 32), message(), None)
    assert (outbound.to, outbound.from_number) == ("whatsapp:+14155550177", None)


def test_sms_goes_without_a_prefix() -> None:
    outbound = _outbound(deps(from_number="+15005550006"), message(channel="sms"), None)
    assert (outbound.to, outbound.from_number) == ("+14155550177", "+15005550006")


def test_a_content_template_goes_with_its_sid_and_variables() -> None:
    msg = message(content_sid=CONTENT_SID, content_variables={"1": "Ann"})
    outbound = _outbound(deps(from_number="+15005550006"), msg, None)
    assert (outbound.content_sid, outbound.content_variables) == (
        CONTENT_SID,
        {"1": "Ann"},
    )


def test_every_status_callback_carries_connection_overrides() -> None:
    outbound = _outbound(deps(from_number="+15005550006"), message(), None)
    url, _, fragment = outbound.status_callback.partition("#")
    assert url == f"{PUBLIC}/twilio/status?message_id=c1_14155550177"
    assert fragment == CONNECTION_OVERRIDES
    overrides = dict(pair.split("=") for pair in fragment.split("&"))
    # Retried on a 5xx and on timeouts, not only on a refused connection.
    assert int(overrides["rc"]) >= 1
    assert {"5xx", "ct", "rt"} <= set(overrides["rp"].split(","))


def test_status_callback_url_without_a_query() -> None:
    assert status_callback_url(PUBLIC + "/") == (
        f"{PUBLIC}/twilio/status#{CONNECTION_OVERRIDES}"
    )
