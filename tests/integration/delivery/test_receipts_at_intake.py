"""Status callbacks applied by the webhook itself (apply_at_intake), on the
Firestore emulator: the same write as the queue's handler, and a fallback to
the queue (False) whenever that write is not the whole job or fails."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud.firestore_v1.services.firestore import client as gapic

from shared.delivery.receipts import (
    apply_at_intake,
    apply_status_callback,
    status_update,
)
from shared.delivery.status import TWILIO_STATUS
from shared.platform.firestore import operations
from shared.store.messages import MessageStatus
from tests.integration.delivery.test_receipts_emulator import (
    MESSAGE_ID,
    NOW,
    SID,
    callback,
    make_message,
    make_user,
    message,
    status,
)

pytestmark = pytest.mark.integration

OTHER_ID = "camp1_14155550199"


def test_intake_makes_the_queue_handlers_write_with_no_read(db: Any) -> None:
    make_message(db)
    make_message(db, OTHER_ID)
    sequence = ["sent", "undelivered", "delivered", "sent"]
    before = operations.snapshot()
    for name in sequence:
        assert apply_at_intake(db, callback(name, ErrorCode="30003"))
    after = operations.snapshot()
    assert after.get("writes", 0) - before.get("writes", 0) == len(sequence)
    assert after.get("reads", 0) == before.get("reads", 0)
    for name in sequence:
        apply_status_callback(
            db, callback(name, message_id=OTHER_ID, ErrorCode="30003"), NOW
        )
    assert message(db) == message(db, OTHER_ID)
    assert status(db) is MessageStatus.DELIVERED


def test_duplicates_and_a_redelivery_through_the_queue_change_nothing(
    db: Any,
) -> None:
    make_message(db)
    assert apply_at_intake(db, callback("delivered"))
    once = message(db)
    # A write that landed although intake saw it fail is published too: the
    # queue's handler then applies the very same callback again.
    assert apply_at_intake(db, callback("delivered"))
    apply_status_callback(db, callback("delivered"), NOW)
    assert apply_at_intake(db, callback("sent"))
    later = message(db)
    assert later["receipts"] == once["receipts"] + [
        {"params": {k: v for k, v in callback("sent").params.items() if k != "To"}}
    ]
    assert status(db) is MessageStatus.DELIVERED
    assert later["delivered_at"] == once["delivered_at"] == NOW


def test_a_failed_write_leaves_the_callback_to_the_queue(
    db: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    make_message(db)

    def aborted(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise gexc.Aborted("commit aborted")

    # The client's commit RPC, beneath however the write was built.
    monkeypatch.setattr(gapic.FirestoreClient, "commit", aborted)
    assert not apply_at_intake(db, callback("delivered"))
    monkeypatch.undo()
    assert status(db) is MessageStatus.SENT
    assert message(db)["receipts"] == []
    assert any(
        "queued after its write failed" in r.getMessage() for r in caplog.records
    )


def test_a_write_past_its_deadline_leaves_the_callback_to_the_queue(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_message(db)

    retries: list[Any] = []

    def unavailable(self: Any, *args: Any, **kwargs: Any) -> Any:
        retries.append(kwargs.get("retry"))
        raise gexc.ServiceUnavailable("emulator down")

    monkeypatch.setattr(gapic.FirestoreClient, "commit", unavailable)
    # The client would retry Unavailable for a minute; intake gives the
    # client's retry its deadline, and answers through the queue after it.
    assert not apply_at_intake(db, callback("delivered"), deadline=0.5)
    [retry] = retries
    assert isinstance(retry, Retry)
    assert retry.timeout == 0.5


def test_a_missing_message_is_left_to_the_queue_and_nothing_is_created(
    db: Any,
) -> None:
    assert not apply_at_intake(db, callback("delivered"))
    assert not db.collection("messages").document(MESSAGE_ID).get().exists
    assert list(db.collection("receipts").stream()) == []


@pytest.mark.parametrize(
    ("name", "extra", "message_id"),
    [
        ("delivered", {}, None),  # found by SID: a read the webhook does not make
        ("receiving", {}, MESSAGE_ID),  # unknown status: kept as unmatched
        ("undelivered", {"ErrorCode": "21610"}, MESSAGE_ID),  # carrier STOP
    ],
)
def test_callbacks_that_need_more_than_one_write_go_to_the_queue(
    db: Any, name: str, extra: dict[str, str], message_id: str | None
) -> None:
    make_message(db)
    make_user(db)
    assert not apply_at_intake(db, callback(name, message_id=message_id, **extra))
    assert message(db)["receipts"] == []
    assert db.collection("users").document(callback(name).params["To"]).get().to_dict()[
        "consent"
    ] == {"state": "OPT_IN"}
    assert not db.collection("receipts").document(f"{SID}_{name}").get().exists


def test_a_twilio_retry_restamps_its_status_time_as_the_queue_did(db: Any) -> None:
    make_message(db)
    assert apply_at_intake(db, callback("delivered"))
    retry = callback("delivered").model_copy(
        update={"received_at": NOW + timedelta(seconds=5)}
    )
    assert apply_at_intake(db, retry)
    doc = message(db)
    assert doc["delivered_at"] == NOW + timedelta(seconds=5)
    assert len(doc["receipts"]) == 1


LIBRARY_ID = "camp1_14155550198"


@pytest.mark.parametrize(
    "sequence",
    [
        ["sent", "delivered"],
        ["delivered", "sent", "sent", "delivered"],  # out of order, duplicates
        ["sent", "undelivered", "delivered", "read", "failed"],
    ],
)
def test_the_direct_write_leaves_the_document_the_library_update_leaves(
    db: Any, sequence: list[str]
) -> None:
    """The same callbacks through `DocumentReference.update` (the old path) and
    through intake's directly built write end in the same document."""
    make_message(db)
    make_message(db, LIBRARY_ID)
    for offset, name in enumerate(sequence):
        extra = {"ErrorCode": "30003"} if name in ("undelivered", "failed") else {}
        late = callback(name, **extra).model_copy(
            update={"received_at": NOW + timedelta(seconds=offset)}
        )
        assert apply_at_intake(db, late)
        status_name = TWILIO_STATUS[name]
        db.collection("messages").document(LIBRARY_ID).update(
            status_update(late, status_name)
        )
    assert message(db) == message(db, LIBRARY_ID)
