"""The `messages` collection: the message document, its status ranks, and
every read and write of the collection.

A message stores only `status_rank`; its status is read off the rank. Ranks are
unique per status and only grow (a Firestore `Maximum` transform), so status
callbacks apply as blind writes: no read, no transaction, and a callback that
arrives late can never move a message backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, Field

MESSAGES = "messages"


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


def rank_of(status: MessageStatus) -> int:
    return STATUS_RANK[status]


def status_of(rank: int) -> MessageStatus:
    return _STATUS_BY_RANK[rank]


def is_final(status: MessageStatus) -> bool:
    return status in FINAL_STATUSES


class Message(BaseModel):
    id: str
    campaign_id: str
    phone: str
    body: str
    encoding: str
    segments: int
    status_rank: int
    send_at: datetime
    generation: int = 0
    channel: str = "sms"
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None
    event_id: str | None = None
    first_in_campaign: bool = True
    provider_sid: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    attempt_id: str | None = None
    claimed_at: datetime | None = None
    lease_until: datetime | None = None
    held: bool = False
    skip_reason: str | None = None
    audit: list[dict[str, Any]] = Field(default_factory=list)
    receipts: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def status(self) -> MessageStatus:
        return status_of(self.status_rank)

    @classmethod
    def from_snapshot(cls, snapshot: firestore.DocumentSnapshot) -> Message:
        return cls.model_validate({**(snapshot.to_dict() or {}), "id": snapshot.id})

    def to_api(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["status"] = self.status.value
        return data


def message_ref(db: firestore.Client, message_id: str) -> firestore.DocumentReference:
    return db.collection(MESSAGES).document(message_id)


def _to_phone(db: firestore.Client, phone: str) -> firestore.Query:
    return db.collection(MESSAGES).where(
        filter=firestore.FieldFilter("phone", "==", phone)
    )


def campaign_ids_messaging(db: firestore.Client, phone: str) -> set[str]:
    """The campaigns with a message to `phone`."""
    return {
        str((snapshot.to_dict() or {}).get("campaign_id"))
        for snapshot in _to_phone(db, phone).select(["campaign_id"]).stream()
    }


def update_each_to_phone(
    db: firestore.Client,
    phone: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    batch_size: int,
) -> int:
    """Apply `change(document)` to every message to `phone`, a batch at a time.

    The change must take the message out of the query (clear its phone), so
    the loop ends; a retry after a crash halfway picks up where it stopped.
    """
    query = _to_phone(db, phone)
    done = 0
    while True:
        snapshots = list(query.limit(batch_size).stream())
        if not snapshots:
            return done
        batch = db.batch()
        for snapshot in snapshots:
            batch.update(snapshot.reference, change(snapshot.to_dict() or {}))
        batch.commit()
        done += len(snapshots)
