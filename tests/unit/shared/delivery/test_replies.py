"""The reply policy: how a HELP/STOP/START reply is addressed and sent."""

from __future__ import annotations

from typing import Any, cast

from shared.delivery.gateway import (
    CONNECTION_OVERRIDES,
    OutboundMessage,
    TwilioGateway,
)
from shared.delivery.replies import addressed, send_reply
from shared.platform.config import TwilioSettings

PUBLIC = "https://hooks.example.com"
SERVICE_SID = "MG" + "0" * 32
USER = "+14155550177"
OUR_NUMBER = "+15005550006"


def twilio(**settings: str) -> TwilioSettings:
    return TwilioSettings(
        PUBLIC_BASE_URL=PUBLIC, TWILIO_ACCOUNT_SID="AC" + "0" * 32, **settings
    )


class RecordingGateway:
    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> Any:
        self.sent.append(message)


def sent_reply(settings: TwilioSettings, to: str, from_number: str) -> OutboundMessage:
    gateway = RecordingGateway()
    send_reply(cast(TwilioGateway, gateway), settings, to, from_number, "help text")
    [message] = gateway.sent
    return message


def test_a_reply_comes_from_the_number_the_user_wrote_to() -> None:
    message = sent_reply(
        twilio(TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID), USER, OUR_NUMBER
    )
    assert (message.to, message.body) == (USER, "help text")
    assert message.from_number == OUR_NUMBER
    assert message.messaging_service_sid is None
    assert message.status_callback == f"{PUBLIC}/twilio/status#{CONNECTION_OVERRIDES}"


def test_a_reply_without_that_number_goes_from_the_configured_sender() -> None:
    message = sent_reply(twilio(TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID), USER, "")
    assert message.messaging_service_sid == SERVICE_SID
    assert message.from_number is None


def test_a_whatsapp_reply_is_sent_from_a_whatsapp_address() -> None:
    message = sent_reply(twilio(TWILIO_FROM=OUR_NUMBER), f"whatsapp:{USER}", "")
    assert message.to == f"whatsapp:{USER}"
    assert message.from_number == f"whatsapp:{OUR_NUMBER}"


def test_a_given_sender_wins_over_the_configured_one() -> None:
    settings = twilio(TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID, TWILIO_FROM=OUR_NUMBER)
    message = addressed(
        settings, to=USER, body="hi", messaging_service_sid="MG" + "1" * 32
    )
    assert message.messaging_service_sid == "MG" + "1" * 32
    assert message.from_number is None


def test_a_status_query_reaches_the_callback_before_its_overrides() -> None:
    message = addressed(twilio(), to=USER, body="hi", status_query="message_id=m1")
    assert message.status_callback == (
        f"{PUBLIC}/twilio/status?message_id=m1#{CONNECTION_OVERRIDES}"
    )
