"""Twilio's status vocabulary mapped to ours."""

from __future__ import annotations

from shared.store.messages import MessageStatus

TWILIO_STATUS: dict[str, MessageStatus] = {
    "accepted": MessageStatus.SENT,
    "scheduled": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}
