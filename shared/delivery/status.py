"""Message statuses, their ranks, and Twilio's vocabulary mapped to ours.

A message stores only `status_rank`; its status is read off the rank. Ranks are
unique per status and only grow (a Firestore `Maximum` transform), so status
callbacks apply as blind writes: no read, no transaction, and a callback that
arrives late can never move a message backwards.
"""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    UNDELIVERED = "UNDELIVERED"
    FAILED = "FAILED"
    DELIVERED = "DELIVERED"
    READ = "READ"
    SKIPPED = "SKIPPED"


# A positive delivery report outranks an earlier failure report: carriers send
# late DLRs, and a delivered receipt is the stronger evidence.
STATUS_RANK: dict[MessageStatus, int] = {
    MessageStatus.QUEUED: 10,
    MessageStatus.SENDING: 20,
    MessageStatus.SENT: 30,
    MessageStatus.UNDELIVERED: 40,
    MessageStatus.FAILED: 50,
    MessageStatus.DELIVERED: 60,
    MessageStatus.READ: 70,
    MessageStatus.SKIPPED: 90,
}
_STATUS_BY_RANK = {rank: status for status, rank in STATUS_RANK.items()}
# The rank every message starts at, and the one sweeps and re-plans look for.
QUEUED_RANK = STATUS_RANK[MessageStatus.QUEUED]

FINAL_STATUSES = frozenset(
    {
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
        MessageStatus.SKIPPED,
    }
)
# Statuses that mean Twilio accepted the message: it must never be sent again.
ACCEPTED_STATUSES = frozenset(
    {
        MessageStatus.SENT,
        MessageStatus.UNDELIVERED,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
    }
)

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


def rank_of(status: MessageStatus) -> int:
    return STATUS_RANK[status]


def status_of(rank: int) -> MessageStatus:
    return _STATUS_BY_RANK[rank]


def is_final(status: MessageStatus) -> bool:
    return status in FINAL_STATUSES
