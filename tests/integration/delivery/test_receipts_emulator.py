"""Status callbacks applied on the Firestore emulator through apply_status_callback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.delivery.receipts import ReceiptOutcome, apply_status_callback
from shared.payloads import StatusCallback
from shared.platform.firestore import operations
from shared.store.messages import MessageStatus, rank_of, status_of

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
SENT_AT = NOW - timedelta(minutes=1)
PHONE = "+14155550100"
MESSAGE_ID = "camp1_14155550100"
SID = "SM" + "c" * 32


def make_message(
    db: Any,
    message_id: str = MESSAGE_ID,
    status: MessageStatus = MessageStatus.SENT,
    provider_sid: str | None = SID,
) -> None:
    db.collection("messages").document(message_id).set(
        {
            "campaign_id": message_id.split("_")[0],
            "phone": PHONE,
            "body": "Hi",
            "encoding": "GSM-7",
            "segments": 1,
            "status_rank": rank_of(status),
            "send_at": SENT_AT,
            "sent_at": SENT_AT,
            "provider_sid": provider_sid,
            "receipts": [],
        }
    )


def make_user(db: Any, state: str = "OPT_IN") -> None:
    db.collection("users").document(PHONE).set(
        {"phone": PHONE, "attributes": {}, "consent": {"state": state}}
    )


def callback(
    status: str,
    *,
    message_id: str | None = MESSAGE_ID,
    sid: str = SID,
    **extra: str,
) -> StatusCallback:
    return StatusCallback(
        params={
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": PHONE,
            **extra,
        },
        query={"message_id": message_id} if message_id else {},
        received_at=NOW,
        idempotency_token=f"{sid}:{status}",
    )


def message(db: Any, message_id: str = MESSAGE_ID) -> dict[str, Any]:
    return db.collection("messages").document(message_id).get().to_dict()


def status(db: Any, message_id: str = MESSAGE_ID) -> MessageStatus:
    return status_of(message(db, message_id)["status_rank"])


def apply(db: Any, *callbacks: StatusCallback) -> list[Any]:
    return [apply_status_callback(db, c, NOW) for c in callbacks]


def test_found_by_the_message_id_in_the_url_with_one_write_and_no_read(db: Any) -> None:
    make_message(db)
    before = operations.snapshot()
    [result] = apply(db, callback("delivered"))
    after = operations.snapshot()
    assert (result.outcome, result.message_id) == (ReceiptOutcome.APPLIED, MESSAGE_ID)
    assert after.get("writes", 0) - before.get("writes", 0) == 1
    assert after.get("reads", 0) == before.get("reads", 0)
    doc = message(db)
    assert status_of(doc["status_rank"]) is MessageStatus.DELIVERED
    assert doc["delivered_at"] == NOW
    assert doc["sent_at"] == SENT_AT
    assert [r["params"]["MessageStatus"] for r in doc["receipts"]] == ["delivered"]


def test_found_by_provider_sid_when_the_url_has_no_id(db: Any) -> None:
    make_message(db)
    [result] = apply(db, callback("delivered", message_id=None))
    assert result.message_id == MESSAGE_ID
    assert status(db) is MessageStatus.DELIVERED


def test_an_illegal_id_in_the_url_falls_back_to_provider_sid(db: Any) -> None:
    make_message(db)
    [result] = apply(db, callback("delivered", message_id="camp1/x"))
    assert result.message_id == MESSAGE_ID
    assert status(db) is MessageStatus.DELIVERED


def test_provider_sid_is_repaired_from_the_callback(db: Any) -> None:
    make_message(db, status=MessageStatus.SENDING, provider_sid=None)
    apply(db, callback("sent"))
    doc = message(db)
    assert doc["provider_sid"] == SID
    assert status_of(doc["status_rank"]) is MessageStatus.SENT


@pytest.mark.parametrize(
    ("order", "final"),
    [
        (["delivered", "sending"], MessageStatus.DELIVERED),
        (["sent", "queued"], MessageStatus.SENT),
        (["undelivered", "delivered"], MessageStatus.DELIVERED),
        (["delivered", "undelivered"], MessageStatus.DELIVERED),
        (["read", "delivered", "sent"], MessageStatus.READ),
        (["sent", "read"], MessageStatus.READ),
        (["failed", "sent"], MessageStatus.FAILED),
    ],
)
def test_a_status_never_moves_backwards(
    db: Any, order: list[str], final: MessageStatus
) -> None:
    make_message(db)
    apply(db, *(callback(s) for s in order))
    doc = message(db)
    assert status_of(doc["status_rank"]) is final
    assert [r["params"]["MessageStatus"] for r in doc["receipts"]] == order


def test_error_code_is_kept_when_a_later_callback_reports_success(db: Any) -> None:
    make_message(db)
    apply(db, callback("undelivered", ErrorCode="30003"), callback("delivered"))
    doc = message(db)
    assert status_of(doc["status_rank"]) is MessageStatus.DELIVERED
    assert doc["error_code"] == "30003"
    assert doc["error_message"] == "Unreachable destination handset"


def test_a_duplicate_callback_adds_no_second_receipt(db: Any) -> None:
    make_message(db)
    apply(db, callback("sent"), callback("delivered"), callback("sent"))
    later = callback("delivered").model_copy(
        update={"received_at": NOW + timedelta(seconds=5)}
    )
    apply(db, later)
    receipts = message(db)["receipts"]
    assert [r["params"]["MessageStatus"] for r in receipts] == ["sent", "delivered"]


def test_an_unknown_message_goes_to_receipts_with_a_ttl(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    [result] = apply(db, callback("delivered", message_id=None))
    assert result.outcome is ReceiptOutcome.UNMATCHED
    kept = db.collection("receipts").document(f"{SID}_delivered").get().to_dict()
    assert kept["params"]["MessageStatus"] == "delivered"
    assert kept["expire_at"] == NOW + timedelta(days=30)
    assert kept["received_at"] == NOW
    assert any("kept in receipts/" in r.getMessage() for r in caplog.records)


def test_an_id_in_the_url_without_its_message_creates_no_message(db: Any) -> None:
    [result] = apply(db, callback("delivered", message_id="gone_14155550100"))
    assert result.outcome is ReceiptOutcome.UNMATCHED
    assert not db.collection("messages").document("gone_14155550100").get().exists
    assert db.collection("receipts").document(f"{SID}_delivered").get().exists


def test_an_unknown_status_is_kept_for_reconciliation(db: Any) -> None:
    make_message(db)
    [result] = apply(db, callback("receiving"))
    assert result.outcome is ReceiptOutcome.UNKNOWN_STATUS
    assert status(db) is MessageStatus.SENT
    kept = db.collection("receipts").document(f"{SID}_receiving").get().to_dict()
    assert kept["reason"] == "unknown_status"


def test_unmatched_doc_ids_are_sanitised(db: Any) -> None:
    apply(db, callback("delivered", message_id=None, sid="SM/../evil"))
    ids = [d.id for d in db.collection("receipts").stream()]
    assert ids == ["SM-..-evil_delivered"]


def test_a_21610_receipt_moves_the_user_to_stop(db: Any) -> None:
    make_message(db)
    make_user(db)
    apply(db, callback("undelivered", ErrorCode="21610"))
    apply(db, callback("undelivered", ErrorCode="21610"))
    user = db.collection("users").document(PHONE).get().to_dict()
    assert user["consent"]["state"] == "STOP"
    assert user["consent"]["source"] == "carrier_21610"
    events = [
        e.to_dict()
        for e in db.collection("users")
        .document(PHONE)
        .collection("consent_events")
        .stream()
    ]
    assert [(e["from"], e["to"], e["source"], e["evidence"]) for e in events] == [
        ("OPT_IN", "STOP", "carrier_21610", SID)
    ]
    assert status(db) is MessageStatus.UNDELIVERED
    assert message(db)["error_code"] == "21610"


def test_a_21610_for_an_unknown_number_creates_a_stop_entry(db: Any) -> None:
    apply(db, callback("failed", message_id=None, ErrorCode="21610"))
    user = db.collection("users").document(PHONE).get().to_dict()
    assert user["consent"]["state"] == "STOP"


def test_other_error_codes_leave_consent_alone(db: Any) -> None:
    make_message(db)
    make_user(db)
    apply(db, callback("undelivered", ErrorCode="30007"))
    user = db.collection("users").document(PHONE).get().to_dict()
    assert user["consent"]["state"] == "OPT_IN"
