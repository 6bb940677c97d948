"""Users and their consent: the model and the Firestore repository."""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from pydantic import BaseModel, Field

from shared.audience.privacy import suppression_key

USERS = "users"
CONSENT_EVENTS = "consent_events"
SUPPRESSIONS = "suppressions"
# Firestore allows 20 levels of nested maps; attributes stay well inside that.
MAX_ATTRIBUTE_DEPTH = 10
MAX_ATTRIBUTE_NAME = 200
_INT64 = 2**63
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


class ConsentState(StrEnum):
    OPT_IN = "OPT_IN"
    OPT_OUT = "OPT_OUT"
    STOP = "STOP"


class Consent(BaseModel):
    state: ConsentState = ConsentState.OPT_IN
    updated_at: datetime | None = None
    source: str = "api"


# Consent states that keep a suppression entry when the profile is erased.
SUPPRESSING_STATES = frozenset({ConsentState.OPT_OUT, ConsentState.STOP})


class User(BaseModel):
    phone: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None
    consent: Consent = Field(default_factory=Consent)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_inbound_at: datetime | None = None
    # An erased profile of an opted-out number: only phone and consent remain,
    # so that no later import or POST can opt the number back in silently.
    suppressed: bool = False
    erased_at: datetime | None = None

    @classmethod
    def from_doc(cls, data: dict[str, Any]) -> User:
        return cls.model_validate(data)


def new_user(
    phone: str,
    attributes: dict[str, Any],
    timezone: str | None,
    state: ConsentState,
    source: str,
    now: datetime,
) -> User:
    return User(
        phone=phone,
        attributes=attributes,
        timezone=timezone,
        consent=Consent(state=state, updated_at=now, source=source),
        created_at=now,
        updated_at=now,
    )


def user_doc(user: User) -> dict[str, Any]:
    """The Firestore document of a live user (no suppression fields)."""
    return user.model_dump(exclude={"suppressed", "erased_at"})


def attribute_field(*names: str) -> str:
    """The escaped Firestore field path of `attributes.<names…>`."""
    return str(FieldPath("attributes", *names).to_api_repr())


class InvalidAttributes(ValueError):
    """Attributes that Firestore or the segment DSL could not hold."""


def check_attribute_name(name: object) -> None:
    # A dot would make a DSL path such as `address.city` ambiguous.
    if not isinstance(name, str) or not name.strip():
        raise InvalidAttributes("attribute names must be non-empty strings")
    if len(name) > MAX_ATTRIBUTE_NAME:
        raise InvalidAttributes(f"attribute name longer than {MAX_ATTRIBUTE_NAME}")
    if "." in name:
        raise InvalidAttributes(
            f"attribute name {name!r} contains '.'; nest an object instead"
        )
    if name.startswith("__") and name.endswith("__"):
        raise InvalidAttributes(f"attribute name {name!r} is reserved")


def check_attribute_value(value: object, depth: int = 1) -> None:
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise InvalidAttributes(f"attributes nest deeper than {MAX_ATTRIBUTE_DEPTH}")
    if isinstance(value, Mapping):
        check_attributes(value, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_attribute_value(item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidAttributes("attribute numbers must be finite")
    elif isinstance(value, int) and not -_INT64 <= value < _INT64:
        raise InvalidAttributes("attribute integers must fit in 64 bits")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidAttributes(f"unsupported attribute value {type(value).__name__}")


def check_attributes(attributes: Mapping[str, Any], depth: int = 1) -> None:
    """Raise InvalidAttributes for names or values Firestore/the DSL reject."""
    for name, value in attributes.items():
        check_attribute_name(name)
        check_attribute_value(value, depth)


@lru_cache(maxsize=1024)
def is_valid_timezone(name: str) -> bool:
    """An IANA zone name that zoneinfo can load ("Asia/Colombo", "UTC")."""
    if not _ZONE_NAME.match(name):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def suppression_ref(db: firestore.Client, phone: str) -> firestore.DocumentReference:
    """The entry an erased, opted-out number leaves: keyed by a keyed hash."""
    return db.collection(SUPPRESSIONS).document(suppression_key(phone))


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


def consent_events(db: firestore.Client, phone: str) -> firestore.CollectionReference:
    return user_ref(db, phone).collection(CONSENT_EVENTS)


def record_consent_change(
    writer: firestore.WriteBatch | firestore.Transaction,
    db: firestore.Client,
    phone: str,
    event: dict[str, Any],
) -> None:
    """Append to the user's consent history inside the caller's batch."""
    ref = user_ref(db, phone).collection(CONSENT_EVENTS).document()
    writer.set(ref, event)


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


# Consent source of a profile re-created over an erased number's suppression.
SUPPRESSION = "suppression"


def suppressed_user(
    db: firestore.Client,
    phone: str,
    transaction: firestore.Transaction | None = None,
) -> User | None:
    """An erased, opted-out number as a suppressed profile (consent only)."""
    snapshot = suppression_ref(db, phone).get(transaction=transaction)
    if not snapshot.exists:
        return None
    data = snapshot.to_dict() or {}
    consent = Consent(
        state=ConsentState(data["state"]),
        updated_at=data.get("opted_out_at"),
        source=SUPPRESSION,
    )
    return User(phone=phone, consent=consent, suppressed=True)


class UserNotFound(LookupError):
    pass


class UserExists(ValueError):
    pass


class UserErased(ValueError):
    """The profile was erased; only its suppression entry remains."""


def create_user(
    db: firestore.Client,
    phone: str,
    attributes: dict[str, Any],
    timezone: str | None,
    state: ConsentState,
    now: datetime,
    source: str = "api",
) -> User:
    """Create a user; an erased number is re-created with its consent kept.

    Raises UserExists when a live profile holds the phone.
    """

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> User:
        ref = user_ref(db, phone)
        snapshot = ref.get(transaction=transaction)
        current = User.from_doc(snapshot.to_dict() or {}) if snapshot.exists else None
        if current is not None and not current.suppressed:
            raise UserExists(phone)
        if current is None:
            current = suppressed_user(db, phone, transaction)
        decided = upserted_consent(current, state)
        user = new_user(phone, attributes, timezone, decided or state, source, now)
        if decided is None and current is not None:
            user.consent = current.consent
        if current is not None and not snapshot.exists:
            # The history was erased with the profile: say where consent came from.
            at = current.consent.updated_at or now
            event = consent_event(None, current.consent.state, SUPPRESSION, at)
            record_consent_change(transaction, db, phone, event)
        transaction.set(ref, user_doc(user))
        if decided is not None:
            previous = current.consent.state if current else None
            event = consent_event(previous, decided, source, now)
            record_consent_change(transaction, db, phone, event)
        return user

    return apply(db.transaction())


_UNSET: Any = object()


def patch_user(
    db: firestore.Client,
    phone: str,
    attributes: Mapping[str, Any],
    now: datetime,
    timezone: str | None = _UNSET,
) -> User:
    """Merge attributes (None deletes a key) and optionally set the timezone."""

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> User:
        ref = user_ref(db, phone)
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists:
            raise UserNotFound(phone)
        user = User.from_doc(snapshot.to_dict() or {})
        if user.suppressed:
            raise UserErased(phone)
        changes: dict[str, Any] = {"updated_at": now}
        for name, value in attributes.items():
            changes[attribute_field(name)] = (
                firestore.DELETE_FIELD if value is None else value
            )
            if value is None:
                user.attributes.pop(name, None)
            else:
                user.attributes[name] = value
        if timezone is not _UNSET:
            changes["timezone"] = user.timezone = timezone
        user.updated_at = now
        transaction.update(ref, changes)
        return user

    return apply(db.transaction())
