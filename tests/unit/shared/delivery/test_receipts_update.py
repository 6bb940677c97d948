"""The blind update a status callback makes: built from data, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.cloud import firestore

from shared.delivery.receipts import (
    campaign_id_of,
    receipt_entry,
    status_update,
)
from shared.delivery.status import TWILIO_STATUS
from shared.payloads import StatusCallback
from shared.store.messages import MessageStatus, rank_of

AT = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
SID = "SM" + "a" * 32


def callback(status: str, **extra: str) -> StatusCallback:
    params = {"MessageSid": SID, "MessageStatus": status, "To": "+14155550100"}
    return StatusCallback(
        params={**params, **extra},
        query={"message_id": "c1_14155550100"},
        received_at=AT,
        idempotency_token="tok",
    )


def transform_value(transform: object) -> object:
    """What a Maximum or ArrayUnion sentinel carries."""
    return getattr(transform, "value", None) or getattr(transform, "values", None)


@pytest.mark.parametrize(("twilio_status", "status"), sorted(TWILIO_STATUS.items()))
def test_rank_rises_through_a_maximum_transform(
    twilio_status: str, status: MessageStatus
) -> None:
    update = status_update(callback(twilio_status), status)
    assert isinstance(update["status_rank"], firestore.Maximum)
    assert transform_value(update["status_rank"]) == rank_of(status)
    assert isinstance(update["receipts"], firestore.ArrayUnion)
    assert update["provider_sid"] == SID


def test_the_receipt_is_the_raw_parameters_only_so_duplicates_are_equal() -> None:
    first, again = callback("delivered"), callback("delivered")
    again = again.model_copy(update={"received_at": datetime.now(UTC)})
    stored = {k: v for k, v in first.params.items() if k != "To"}
    assert receipt_entry(first) == receipt_entry(again) == {"params": stored}
    assert transform_value(
        status_update(first, MessageStatus.DELIVERED)["receipts"]
    ) == [{"params": stored}]


def test_a_stored_receipt_holds_no_phone_number() -> None:
    # A callback after an erasure must not write the number back.
    entry = receipt_entry(callback("delivered"))
    assert "To" not in entry["params"]
    assert not any("+1" in str(value) for value in entry["params"].values())
    assert "expire_at" in status_update(callback("delivered"), MessageStatus.DELIVERED)


def test_sent_at_is_never_written_by_a_callback() -> None:
    for twilio_status in ("accepted", "queued", "sending", "sent"):
        update = status_update(callback(twilio_status), MessageStatus.SENT)
        assert "sent_at" not in update
        # The callback's own time, which the settle check waits on when the
        # sender never learned that Twilio accepted (no sent_at).
        assert update["sent_reported_at"] == AT
    assert status_update(callback("delivered"), MessageStatus.DELIVERED)[
        "delivered_at"
    ] == (AT)
    assert status_update(callback("read"), MessageStatus.READ)["read_at"] == AT


def test_error_code_and_message_are_set_when_present_and_never_cleared() -> None:
    failed = status_update(
        callback("undelivered", ErrorCode="30003"), MessageStatus.UNDELIVERED
    )
    assert failed["error_code"] == "30003"
    assert failed["error_message"] == "Unreachable destination handset"
    given = status_update(
        callback("failed", ErrorCode="30999", ErrorMessage="Odd"), MessageStatus.FAILED
    )
    assert (given["error_code"], given["error_message"]) == ("30999", "Odd")
    later = status_update(callback("delivered", ErrorCode=""), MessageStatus.DELIVERED)
    assert "error_code" not in later and "error_message" not in later


def test_the_legacy_sid_repairs_provider_sid_too() -> None:
    legacy = StatusCallback(params={"SmsSid": SID, "SmsStatus": "sent"}, received_at=AT)
    assert status_update(legacy, MessageStatus.SENT)["provider_sid"] == SID


def test_campaign_id_of_a_message_id() -> None:
    assert campaign_id_of("c1_14155550100") == "c1"
    assert campaign_id_of("c1_14155550100_evt_9") == "c1"
