"""The writes built with plain protobufs are the client's own writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from hypothesis import given
from hypothesis import strategies as st

from shared.platform.firestore_writes import (
    _ID_ALPHABET,
    auto_id,
    batch_create,
    batch_set,
    plain_write,
)
from shared.store.users import ConsentState, consent_event, new_user, user_doc

NAME = "projects/p/databases/(default)/documents/users/+94770000001"
NOW = datetime(2026, 11, 26, 15, 0, 0, 123456, tzinfo=UTC)


def library_create(data: dict[str, Any]) -> Any:
    return _helpers.pbs_for_create(NAME, data)[0]._pb


def library_set(data: dict[str, Any]) -> Any:
    return _helpers.pbs_for_set_no_merge(NAME, data)[0]._pb


def imported_user() -> dict[str, Any]:
    attributes = {"name": "Ann", "city": "Kandy", "age": 31, "vip": True}
    user = new_user(
        "+94770000001", attributes, "Asia/Colombo", ConsentState.OPT_IN, "import", NOW
    )
    return user_doc(user)


DOCUMENTS = [
    imported_user(),
    consent_event(None, ConsentState.STOP, "import", NOW, "import x row 2"),
    {
        "none": None,
        "flag": False,
        "big": 2**62,
        "negative": -7,
        "ratio": 0.25,
        "text": "ünïcode ✓",
        "raw": b"\x00\x01",
        "empty_map": {},
        "empty_list": [],
        "list": [1, "two", None, [3.5], {"k": "v"}],
        "nested": {"a": {"b": {"c": NOW}}},
        "naive": datetime(2020, 1, 2, 3, 4, 5, 6),
        "before_1970": datetime(1969, 7, 20, 20, 17, 40, 500, tzinfo=UTC),
        "other_zone": datetime(2026, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5))),
        "nanos": DatetimeWithNanoseconds(2026, 1, 1, nanosecond=123456789, tzinfo=UTC),
        "enum": ConsentState.OPT_OUT,
        "dotted.key": "kept whole",
    },
    {},
]


@pytest.mark.parametrize("data", DOCUMENTS)
def test_a_create_is_the_clients_create(data: dict[str, Any]) -> None:
    assert plain_write(NAME, data, must_not_exist=True) == library_create(data)


@pytest.mark.parametrize("data", DOCUMENTS)
def test_a_set_is_the_clients_set(data: dict[str, Any]) -> None:
    assert plain_write(NAME, data, must_not_exist=False) == library_set(data)


plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.just(UTC)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(min_size=1), plain_values, max_size=5))
def test_any_plain_document_is_written_as_the_client_writes_it(
    data: dict[str, Any],
) -> None:
    assert plain_write(NAME, data, must_not_exist=True) == library_create(data)


def test_a_sentinel_or_a_reference_is_left_to_the_client() -> None:
    assert plain_write(NAME, {"at": firestore.SERVER_TIMESTAMP}, True) is None
    assert plain_write(NAME, {"where": firestore.GeoPoint(1.0, 2.0)}, True) is None


def test_the_batch_gets_the_same_writes_as_from_the_client() -> None:
    db = firestore.Client(project="p", credentials=_anonymous())
    ref = db.collection("users").document("+94770000001")
    ours, theirs = db.batch(), db.batch()
    sentinel = {"at": firestore.SERVER_TIMESTAMP, "n": 1}
    for data in (imported_user(), sentinel):
        batch_create(ours, ref, data)
        theirs.create(ref, data)
        batch_set(ours, ref, data)
        theirs.set(ref, data)
    assert [_pb(w) for w in ours._write_pbs] == [_pb(w) for w in theirs._write_pbs]


def test_auto_ids_look_like_the_clients() -> None:
    ids = {auto_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 20 and set(i) <= set(_ID_ALPHABET) for i in ids)


def _pb(write: Any) -> Any:
    return getattr(write, "_pb", write)


def _anonymous() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()
