"""Users and their consent: the model and the Firestore repository."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, Field

USERS = "users"
CONSENT_EVENTS = "consent_events"


class ConsentState(StrEnum):
    OPT_IN = "OPT_IN"
    OPT_OUT = "OPT_OUT"
    STOP = "STOP"


class Consent(BaseModel):
    state: ConsentState = ConsentState.OPT_IN
    updated_at: datetime | None = None
    source: str = "api"


class User(BaseModel):
    phone: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None
    consent: Consent = Field(default_factory=Consent)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_inbound_at: datetime | None = None

    @classmethod
    def from_doc(cls, data: dict[str, Any]) -> User:
        return cls.model_validate(data)


def user_ref(db: firestore.Client, phone: str) -> firestore.DocumentReference:
    return db.collection(USERS).document(phone)


def get_user(db: firestore.Client, phone: str) -> User | None:
    snapshot = user_ref(db, phone).get()
    return User.from_doc(snapshot.to_dict() or {}) if snapshot.exists else None


def consent_event(
    previous: ConsentState | None,
    new: ConsentState,
    source: str,
    at: datetime,
    evidence: str | None = None,
) -> dict[str, Any]:
    return {
        "from": previous.value if previous else None,
        "to": new.value,
        "source": source,
        "at": at,
        "evidence": evidence,
    }


def record_consent_change(
    writer: firestore.WriteBatch | firestore.Transaction,
    db: firestore.Client,
    phone: str,
    event: dict[str, Any],
) -> None:
    """Append to the user's consent history inside the caller's batch."""
    ref = user_ref(db, phone).collection(CONSENT_EVENTS).document()
    writer.set(ref, event)
