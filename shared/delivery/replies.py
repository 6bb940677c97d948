"""Reply policy: which sender an outgoing message is addressed from, and how a
HELP/STOP/START reply is sent.

One rule for every message we send: from the sender given for it (a
campaign's sender, or the number a user wrote to), else from the configured
one; the From number on the same channel as the To address (Twilio refuses an
SMS/WhatsApp mix, 21910); Twilio reports its status to our status webhook.
"""

from __future__ import annotations

from shared.delivery.gateway import (
    OutboundMessage,
    TwilioGateway,
    channel_address,
    status_callback_url,
)
from shared.platform.config import TwilioSettings

WHATSAPP = "whatsapp"


def channel_of(address: str) -> str:
    """ "whatsapp:+1415..." → "whatsapp"; a bare number is an SMS address."""
    return WHATSAPP if address.startswith(f"{WHATSAPP}:") else "sms"


def addressed(
    twilio: TwilioSettings,
    *,
    to: str,
    body: str,
    from_number: str | None = None,
    messaging_service_sid: str | None = None,
    status_query: str = "",
    content_sid: str | None = None,
    content_variables: dict[str, str] | None = None,
) -> OutboundMessage:
    """The message to `to`, from the given sender or else the configured one."""
    if not (messaging_service_sid or from_number):
        messaging_service_sid = twilio.messaging_service_sid or None
        from_number = twilio.from_number or None
    if from_number:
        from_number = channel_address(channel_of(to), from_number)
    return OutboundMessage(
        to=to,
        body=body,
        status_callback=status_callback_url(twilio.public_base_url, status_query),
        messaging_service_sid=messaging_service_sid or None,
        from_number=from_number,
        content_sid=content_sid,
        content_variables=content_variables,
    )


def send_reply(
    gateway: TwilioGateway, twilio: TwilioSettings, to: str, from_number: str, body: str
) -> None:
    """Answer `to` from the number they wrote to (`from_number`), if known."""
    gateway.send(addressed(twilio, to=to, body=body, from_number=from_number))
