"""The message document and its repository boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, Field

from shared.audience.phones import phone_digits
from shared.delivery.status import MessageStatus, status_of

MESSAGES = "messages"


def message_id_for(campaign_id: str, phone: str, event_id: str | None = None) -> str:
    """Deterministic, so a retried fan-out finds the message it already made."""
    base = f"{campaign_id}_{phone_digits(phone)}"
    return f"{base}_{event_id}" if event_id else base


class AuditEntry(BaseModel):
    step: str
    outcome: str
    reason: str | None = None
    at: datetime


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
