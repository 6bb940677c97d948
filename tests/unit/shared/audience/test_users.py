"""User rules without I/O: consent on upsert, attribute and time zone checks."""

from __future__ import annotations

from typing import Any

import pytest

from shared.audience.consent import upserted_consent
from shared.audience.users import InvalidAttributes, check_attributes, is_valid_timezone
from shared.store.users import Consent, ConsentState, User

IN, OUT, STOP = ConsentState.OPT_IN, ConsentState.OPT_OUT, ConsentState.STOP


def stored(state: ConsentState, suppressed: bool = False) -> User:
    return User(
        phone="+14155550100", consent=Consent(state=state), suppressed=suppressed
    )


@pytest.mark.parametrize(
    ("current", "requested", "decided"),
    [
        (None, None, IN),
        (None, STOP, STOP),
        (stored(IN), None, None),
        (stored(IN), IN, None),
        (stored(IN), OUT, OUT),
        (stored(OUT), IN, IN),
        (stored(STOP), IN, None),
        (stored(STOP), OUT, None),
        (stored(OUT, suppressed=True), IN, None),
        (stored(OUT, suppressed=True), STOP, STOP),
        (stored(STOP, suppressed=True), IN, None),
    ],
)
def test_upserts_never_override_stop_nor_opt_an_erased_number_back_in(
    current: User | None, requested: ConsentState | None, decided: ConsentState | None
) -> None:
    assert upserted_consent(current, requested) == decided


@pytest.mark.parametrize(
    "attributes",
    [
        {"": 1},
        {"a.b": 1},
        {"__x__": 1},
        {"n": float("inf")},
        {"n": 2**63},
        {"nested": {"a.b": 1}},
        {
            "deep": {
                "a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}
            }
        },
        {"x": object()},
    ],
)
def test_attributes_firestore_or_the_dsl_cannot_hold_are_rejected(
    attributes: dict[str, Any],
) -> None:
    with pytest.raises(InvalidAttributes):
        check_attributes(attributes)


def test_ordinary_attributes_pass() -> None:
    check_attributes(
        {"name": "Ann", "age": 3, "tags": ["a", 1], "address": {"city": "K"}, "x": None}
    )


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Asia/Colombo", True),
        ("UTC", True),
        ("America/Argentina/Buenos_Aires", True),
        ("Etc/GMT+5", True),
        ("Mars/Olympus", False),
        ("../etc/passwd", False),
        ("", False),
        ("asia colombo", False),
    ],
)
def test_time_zones_are_iana_names(name: str, valid: bool) -> None:
    assert is_valid_timezone(name) is valid
