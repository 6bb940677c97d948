"""`stream_query`, the lists' cheaper `query.stream()`, on the emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore

from shared.platform.firestore import stream_query

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 26, 15, 0, 0, 123456, tzinfo=UTC)


def every_kind_of_value(number: int, db: Any) -> dict[str, Any]:
    return {
        "n": number,
        "ratio": number / 4,
        "name": f"doc {number}",
        "flag": number % 2 == 0,
        "none": None,
        "at": AT,
        "raw": b"\x00\xff",
        "where": firestore.GeoPoint(6.9, 79.8),
        "other": db.collection("elsewhere").document(f"e{number}"),
        "tags": ["a", number, {"deep": [AT, None]}],
        "nested": {"consent": {"state": "OPT_IN", "updated_at": AT}, "empty": {}},
    }


def test_stream_query_yields_what_the_library_stream_yields(db: Any) -> None:
    things = db.collection("things")
    for number in range(7):
        things.document(f"t{number}").set(every_kind_of_value(number, db))
    query = things.where(filter=firestore.FieldFilter("n", ">=", 2)).order_by("n")

    ours = list(stream_query(query.limit(4)))
    theirs = list(query.limit(4).stream())

    assert [s.id for s in ours] == ["t2", "t3", "t4", "t5"]
    assert [s.id for s in ours] == [s.id for s in theirs]
    assert [s.to_dict() for s in ours] == [s.to_dict() for s in theirs]
    assert [s.reference.path for s in ours] == [s.reference.path for s in theirs]
    assert [s.update_time for s in ours] == [s.update_time for s in theirs]
    assert [s.create_time for s in ours] == [s.create_time for s in theirs]
    assert all(s.exists for s in ours)
    assert ours[0].get("nested.consent.state") == "OPT_IN"
    assert ours[0].to_dict()["at"] == AT


def test_stream_query_of_a_subcollection_and_a_collection_group(db: Any) -> None:
    user = db.collection("users").document("+14155550100")
    user.collection("consent_events").document("c1").set({"to": "STOP", "at": AT})
    db.collection("users").document("+14155550101").collection(
        "consent_events"
    ).document("c2").set({"to": "OPT_IN", "at": AT})

    events = list(stream_query(firestore.Query(user.collection("consent_events"))))
    assert [(s.id, s.to_dict()) for s in events] == [("c1", {"to": "STOP", "at": AT})]
    assert events[0].reference.path == "users/+14155550100/consent_events/c1"

    group = db.collection_group("consent_events").order_by("__name__")
    assert [s.id for s in stream_query(group)] == ["c1", "c2"]
