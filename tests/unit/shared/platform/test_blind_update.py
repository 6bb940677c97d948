"""The directly built update is the very Write the client library builds, and
every shape it does not build is left to the library."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from shared.delivery.receipts import status_update
from shared.delivery.reconcile import sent_fields
from shared.payloads import StatusCallback
from shared.platform import blind_update
from shared.store.messages import MessageStatus, audit_append, rank_raised_to

AT = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
MESSAGE_ID = "camp1_14155550100"


@pytest.fixture(scope="module")
def db() -> firestore.Client:
    return firestore.Client(project="p", credentials=AnonymousCredentials())


def library_write(db: firestore.Client, fields: dict[str, Any]) -> Any:
    path = db.collection("messages").document(MESSAGE_ID)._document_path
    return _helpers.pbs_for_update(path, fields, None)[0]._pb


def direct_write(db: firestore.Client, fields: dict[str, Any]) -> Any:
    request = blind_update.commit_request(db, "messages", MESSAGE_ID, fields)
    assert request is not None
    assert request.database == db._database_string
    assert len(request.writes) == 1
    return request.writes[0]


def callback(status: str, **extra: str) -> StatusCallback:
    params = {
        "MessageSid": "SM0123",
        "MessageStatus": status,
        "To": "+14155550100",
        "AccountSid": "AC1",
        **extra,
    }
    return StatusCallback(
        params=params, query={"message_id": MESSAGE_ID}, received_at=AT
    )


UPDATES: dict[str, dict[str, Any]] = {
    "status callback": status_update(callback("delivered"), MessageStatus.DELIVERED),
    "failed callback": status_update(
        callback("undelivered", ErrorCode="30003"), MessageStatus.UNDELIVERED
    ),
    "sender's SENT": sent_fields("SM0123", "accepted", AT),
    "sender's FAILED": {
        "status_rank": rank_raised_to(MessageStatus.FAILED),
        "error_code": None,
        "error_message": "no",
        "failed_at": AT,
        "lease_until": None,
        "audit": audit_append([{"step": "send", "at": AT, "n": 3}]),
    },
    "every plain type": {
        "none": None,
        "yes": True,
        "no": False,
        "count": 7,
        "big": 2**62,
        "ratio": 0.25,
        "text": "é",
        "status": MessageStatus.SENT,  # a StrEnum: stored as its string
        "blob": b"\x00\x01",
        "naive": datetime(2026, 1, 1, 8, 0),  # read as UTC, as the library does
        "offset": datetime(2026, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=2))),
        "nanos": DatetimeWithNanoseconds(2026, 1, 1, nanosecond=123456789, tzinfo=UTC),
        "empty_map": {},
        "empty_list": [],
        "nested": {"a": [1, {"b": [None, "x"]}], "c": {"d": {}}},
        "tuple": (1, "two"),
    },
    "transforms only": {
        "n": firestore.Increment(2),
        "low": firestore.Minimum(1.5),
        "high": firestore.Maximum(3),
        "gone": firestore.ArrayRemove(["a", {"b": 1}]),
        "kept": firestore.ArrayUnion([[1, 2], "x"]),
    },
}


@pytest.mark.parametrize("name", list(UPDATES))
def test_the_direct_write_is_the_librarys_write(
    db: firestore.Client, name: str
) -> None:
    fields = UPDATES[name]
    assert direct_write(db, fields) == library_write(db, fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"a.b": 1},  # a nested path
        {"`odd name`": 1},
        {"odd name": 1},
        {"gone": firestore.DELETE_FIELD},
        {"at": firestore.SERVER_TIMESTAMP},
        {"where": firestore.GeoPoint(1.0, 2.0)},
        {"nested": {"n": firestore.Increment(1)}},
        {"keys": {1: "not a string key"}},
        {"set": {1, 2}},
        {"huge": 2**64},
        {},
    ],
)
def test_other_shapes_are_left_to_the_library(
    db: firestore.Client, fields: dict[str, Any]
) -> None:
    assert blind_update.commit_request(db, "messages", MESSAGE_ID, fields) is None


@pytest.mark.parametrize("document_id", ["", "a/b"])
def test_a_path_the_library_would_check_is_left_to_it(
    db: firestore.Client, document_id: str
) -> None:
    assert blind_update.commit_request(db, "messages", document_id, {"n": 1}) is None


def test_it_commits_through_the_clients_commit_with_its_metadata_and_retry(
    db: firestore.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    class Api:
        def commit(self, **kwargs: Any) -> None:
            seen.append(kwargs)

    monkeypatch.setattr(type(db), "_firestore_api", Api())
    fields = UPDATES["status callback"]
    blind_update.blind_update(db, "messages", MESSAGE_ID, fields, timeout=3.0)
    [call] = seen
    assert call["metadata"] == db._rpc_metadata
    assert call["timeout"] == 3.0
    assert "retry" not in call  # the method's default, as update() leaves it
    assert call["request"]._pb.writes[0] == library_write(db, fields)
