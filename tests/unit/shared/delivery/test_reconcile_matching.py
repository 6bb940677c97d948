"""Which sends at Twilio an expired attempt could have made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.delivery.gateway import OutboundMessage, SendAccepted
from shared.delivery.reconcile import (
    CLOCK_SKEW,
    Window,
    attempt_window,
    candidates,
    lookup_truncated,
)
from shared.store.messages import Message

T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
PHONE = "+12125550100"
SERVICE = "MG" + "a" * 32
WINDOW = Window(T0, T0 + timedelta(minutes=2))


def outbound(**fields: object) -> OutboundMessage:
    values: dict[str, object] = {
        "to": PHONE,
        "body": "Hi Ann",
        "status_callback": "https://e.example/twilio/status",
        "messaging_service_sid": SERVICE,
        **fields,
    }
    return OutboundMessage(**values)  # type: ignore[arg-type]


def at_twilio(sid: str, seconds: float, **fields: object) -> SendAccepted:
    values: dict[str, object] = {
        "sid": sid,
        "status": "queued",
        "body": "Hi Ann",
        "to": PHONE,
        "messaging_service_sid": SERVICE,
        "date_created": T0 + timedelta(seconds=seconds),
        **fields,
    }
    return SendAccepted(**values)  # type: ignore[arg-type]


def test_only_same_number_sender_body_and_window_match_oldest_first() -> None:
    found = [
        at_twilio("SMlater", 30),
        at_twilio("SMfirst", 1),
        at_twilio("SMtoo_early", -1),
        at_twilio("SMtoo_late", 121),
        at_twilio("SMother_text", 5, body="Other"),
        at_twilio("SMother_number", 5, to="+12125550199"),
        at_twilio("SMother_service", 5, messaging_service_sid="MG" + "b" * 32),
        at_twilio("SMno_date", 5, date_created=None),
    ]

    matched = candidates(outbound(), found, WINDOW)

    assert [send.sid for send in matched] == ["SMfirst", "SMlater"]


def test_a_content_send_matches_whatever_body_twilio_shows() -> None:
    found = [at_twilio("SMrendered", 3, body="Your order O1 shipped")]

    matched = candidates(outbound(content_sid="HX" + "c" * 32), found, WINDOW)

    assert [send.sid for send in matched] == ["SMrendered"]


def test_a_direct_number_send_matches_on_from() -> None:
    ours = outbound(messaging_service_sid=None, from_number="+15005550006")
    found = [
        at_twilio("SMours", 3, messaging_service_sid=None, from_number="+15005550006"),
        at_twilio(
            "SMtheirs", 3, messaging_service_sid=None, from_number="+15005550007"
        ),
    ]

    assert [send.sid for send in candidates(ours, found, WINDOW)] == ["SMours"]


def test_the_window_runs_from_the_claim_to_the_lease_end_with_skew() -> None:
    message = Message(
        id="m",
        campaign_id="c",
        phone=PHONE,
        body="Hi Ann",
        encoding="GSM7",
        segments=1,
        status_rank=20,
        send_at=T0,
        claimed_at=T0,
        lease_until=T0 + timedelta(seconds=120),
    )

    window = attempt_window(message, 120, T0 + timedelta(minutes=5))

    assert window == Window(T0 - CLOCK_SKEW, T0 + timedelta(seconds=120) + CLOCK_SKEW)


def test_a_full_page_still_inside_the_window_may_have_missed_the_send() -> None:
    inside = [at_twilio(f"SM{i}", i) for i in range(3)]
    reaching_back = [*inside[:2], at_twilio("SMold", -600)]

    assert lookup_truncated(inside, 3, WINDOW)
    assert not lookup_truncated(reaching_back, 3, WINDOW)
    assert not lookup_truncated(inside[:2], 3, WINDOW)
