"""Users: attribute and timezone rules, and user create/patch (CRUD only).

Consent rules live in `shared.audience.consent`; the stored shape in
`shared.store.users`.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from shared.audience.consent import upserted_consent
from shared.platform.firestore import Database
from shared.store.users import (
    SUPPRESSION,
    ConsentState,
    ProfileEdit,
    User,
    UserTransaction,
    consent_event,
    edit_profile,
    in_user_transaction,
    new_user,
)

# Firestore allows 20 levels of nested maps; attributes stay well inside that.
MAX_ATTRIBUTE_DEPTH = 10
MAX_ATTRIBUTE_NAME = 200
_INT64 = 2**63
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


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


class UserNotFound(LookupError):
    pass


class UserExists(ValueError):
    pass


class UserErased(ValueError):
    """The profile was erased; only its suppression entry remains."""


def create_user(
    db: Database,
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

    def apply(stored: UserTransaction) -> User:
        current, suppression = stored.read_with_suppression()
        exists = current is not None
        if current is not None and not current.suppressed:
            raise UserExists(phone)
        if current is None:
            current = suppression
        decided = upserted_consent(current, state)
        user = new_user(phone, attributes, timezone, decided or state, source, now)
        if decided is None and current is not None:
            user.consent = current.consent
        if current is not None and not exists:
            # The history was erased with the profile: say where consent came from.
            at = current.consent.updated_at or now
            stored.record_consent_change(
                consent_event(None, current.consent.state, SUPPRESSION, at)
            )
        stored.set(user)
        if decided is not None:
            previous = current.consent.state if current else None
            stored.record_consent_change(consent_event(previous, decided, source, now))
        return user

    return in_user_transaction(db, phone, apply)


_UNSET: Any = object()


def patch_user(
    db: Database,
    phone: str,
    attributes: Mapping[str, Any],
    now: datetime,
    timezone: str | None = _UNSET,
) -> User:
    """Merge attributes (None deletes a key) and optionally set the timezone."""

    def apply(stored: ProfileEdit) -> User:
        user = stored.read()
        if user is None:
            raise UserNotFound(phone)
        if user.suppressed:
            raise UserErased(phone)
        for name, value in attributes.items():
            if value is None:
                user.attributes.pop(name, None)
            else:
                user.attributes[name] = value
        set_timezone = timezone is not _UNSET
        if set_timezone:
            user.timezone = timezone
        user.updated_at = now
        stored.update_profile(attributes, now, user.timezone, set_timezone)
        return user

    return edit_profile(db, phone, apply)
