"""Consent changes, each recorded in the user's append-only history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from google.cloud import firestore

from shared.audience.users import (
    ConsentState,
    User,
    consent_event,
    record_consent_change,
    user_ref,
)


@dataclass(frozen=True)
class ConsentChange:
    phone: str
    previous: ConsentState | None
    current: ConsentState
    changed: bool
    created: bool


def set_consent(
    db: firestore.Client,
    phone: str,
    state: ConsentState,
    *,
    source: str,
    now: datetime,
    evidence: str | None = None,
    create_missing: bool = False,
) -> ConsentChange | None:
    """Move a user to `state` in one transaction; None if the user is unknown.

    Setting the state a user already has writes nothing, so a redelivered STOP
    adds no second history entry.
    """

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> ConsentChange | None:
        ref = user_ref(db, phone)
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists and not create_missing:
            return None
        previous = (
            User.from_doc(snapshot.to_dict() or {}).consent.state
            if snapshot.exists
            else None
        )
        if previous == state:
            return ConsentChange(phone, previous, state, False, False)
        consent = {"state": state.value, "updated_at": now, "source": source}
        if snapshot.exists:
            transaction.update(ref, {"consent": consent, "updated_at": now})
        else:
            transaction.create(
                ref,
                {
                    "phone": phone,
                    "attributes": {},
                    "timezone": None,
                    "consent": consent,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        event = consent_event(previous, state, source, now, evidence)
        record_consent_change(transaction, db, phone, event)
        return ConsentChange(phone, previous, state, True, not snapshot.exists)

    return apply(db.transaction())
