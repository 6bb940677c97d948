"""Every consent rule: what a change may do, and how it is recorded.

- STOP is never overridden by an import or a POST; only an explicit consent
  change (a START keyword, PUT /consent) moves a number out of it.
- An erased (suppressed) number only ever becomes stricter that way.
- Every change appends an entry, with its source and evidence, to the user's
  append-only history; setting the state a user already has writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.platform.firestore import Database
from shared.store.users import (
    Consent,
    ConsentState,
    User,
    UserTransaction,
    consent_event,
    in_user_transaction,
)

# The source of a consent change the user texted (STOP, START).
KEYWORD_SOURCE = "keyword"
# Consent states that keep a suppression entry when the profile is erased.
SUPPRESSING_STATES = frozenset({ConsentState.OPT_OUT, ConsentState.STOP})


def may_receive(state: ConsentState) -> bool:
    """Whether a user in `state` may be sent campaign messages."""
    return state is ConsentState.OPT_IN


def allows_help_reply(user: User | None) -> bool:
    """After STOP the only message a number gets is that STOP's confirmation."""
    return user is None or user.consent.state is not ConsentState.STOP


@dataclass(frozen=True)
class ConsentChange:
    phone: str
    previous: ConsentState | None
    current: ConsentState
    changed: bool
    created: bool


def upserted_consent(
    current: User | None, requested: ConsentState | None
) -> ConsentState | None:
    """The consent an import or a POST sets; None leaves the stored one alone.

    A new user gets the requested state (OPT_IN by default). STOP is never
    changed this way, and an erased (suppressed) number only ever becomes
    stricter: opting back in takes an explicit consent change.
    """
    if current is None:
        return requested or ConsentState.OPT_IN
    held = current.consent.state
    if requested is None or requested == held or held == ConsentState.STOP:
        return None
    if current.suppressed and requested == ConsentState.OPT_IN:
        return None
    return requested


def set_consent(
    db: Database,
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

    def apply(user: UserTransaction) -> ConsentChange | None:
        current = user.read()
        if current is None and not create_missing:
            return None
        previous = current.consent.state if current is not None else None
        if previous == state:
            return ConsentChange(phone, previous, state, False, False)
        consent = Consent(state=state, updated_at=now, source=source)
        if current is not None:
            user.update_consent(consent, now)
        else:
            user.create_with_consent(consent, now)
        user.record_consent_change(
            consent_event(previous, state, source, now, evidence)
        )
        return ConsentChange(phone, previous, state, True, current is None)

    return in_user_transaction(db, phone, apply)


def carrier_source(code: object) -> str:
    """The consent source of a carrier-reported opt-out (Twilio error `code`)."""
    return f"carrier_{code}"


def set_consent_by_carrier(
    db: Database,
    phone: str,
    code: object,
    *,
    evidence: str | None,
    now: datetime,
    create_missing: bool = False,
) -> ConsentChange | None:
    """The carrier reports that the number replied STOP (Twilio error `code`)."""
    return set_consent(
        db,
        phone,
        ConsentState.STOP,
        source=carrier_source(code),
        now=now,
        evidence=evidence,
        create_missing=create_missing,
    )


def set_consent_by_keyword(
    db: Database,
    phone: str,
    state: ConsentState,
    *,
    evidence: str | None,
    now: datetime,
) -> ConsentChange | None:
    """A consent change the user texted; `evidence` names their message.

    An unknown number that opts out is created as STOP so suppression holds.
    """
    return set_consent(
        db,
        phone,
        state,
        source=KEYWORD_SOURCE,
        now=now,
        evidence=evidence,
        create_missing=state is ConsentState.STOP,
    )
