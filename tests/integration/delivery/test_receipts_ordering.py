"""Property: whatever the order and duplicates, the final status is the highest.

Runs on the Firestore emulator through apply_status_callback, so it holds the
real Maximum and ArrayUnion transforms to the property, not a model of them.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.delivery.receipts import apply_at_intake, apply_status_callback
from shared.delivery.status import TWILIO_STATUS
from shared.payloads import StatusCallback
from shared.store.messages import MessageStatus, rank_of

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
# Lifecycles Twilio reports for one message (SMS and WhatsApp).
LIFECYCLES = [
    ["queued", "sending", "sent", "delivered"],
    ["accepted", "queued", "sent", "undelivered"],
    ["queued", "sent", "failed"],
    ["queued", "sent", "delivered", "read"],
    ["sent", "read"],
    ["queued", "sent", "undelivered", "delivered"],
]
_ids = itertools.count()


@st.composite
def shuffled_callbacks(draw: st.DrawFn) -> list[str]:
    lifecycle = draw(st.sampled_from(LIFECYCLES))
    duplicates = draw(st.lists(st.sampled_from(lifecycle), max_size=4))
    return list(draw(st.permutations(lifecycle + duplicates)))


def callback(message_id: str, status: str) -> StatusCallback:
    params = {"MessageSid": f"SM{message_id}", "MessageStatus": status}
    if status in ("undelivered", "failed"):
        params["ErrorCode"] = "30003"
    return StatusCallback(
        params=params, query={"message_id": message_id}, received_at=NOW
    )


def sending_message(db: Any, prefix: str) -> str:
    message_id = f"{prefix}{next(_ids)}_14155550100"
    db.collection("messages").document(message_id).set(
        {"status_rank": rank_of(MessageStatus.SENDING), "receipts": []}
    )
    return message_id


def highest_rank_seen(db: Any, message_id: str, statuses: list[str]) -> Any:
    """The message ends at the highest rank seen, with one receipt per status."""
    doc = db.collection("messages").document(message_id).get().to_dict()
    highest = max(rank_of(TWILIO_STATUS[s]) for s in statuses)
    assert doc["status_rank"] == max(highest, rank_of(MessageStatus.SENDING))
    seen = [r["params"]["MessageStatus"] for r in doc["receipts"]]
    assert sorted(seen) == sorted(set(statuses))
    return doc


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(statuses=shuffled_callbacks())
def test_the_final_status_is_the_highest_rank_seen(
    db: Any, statuses: list[str]
) -> None:
    message_id = sending_message(db, "prop")
    for status in statuses:
        apply_status_callback(db, callback(message_id, status), NOW)
    doc = highest_rank_seen(db, message_id, statuses)
    if {"undelivered", "failed"} & set(statuses):
        assert doc["error_code"] == "30003"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(statuses=shuffled_callbacks(), data=st.data())
def test_intake_and_the_queue_mixed_end_at_the_highest_rank_too(
    db: Any, statuses: list[str], data: st.DataObject
) -> None:
    # Each callback is applied by the webhook or, after a failed write there,
    # by the queue's handler: the two writers interleave in any order.
    message_id = sending_message(db, "mixed")
    for status in statuses:
        if data.draw(st.booleans()):
            assert apply_at_intake(db, callback(message_id, status))
        else:
            apply_status_callback(db, callback(message_id, status), NOW)
    doc = highest_rank_seen(db, message_id, statuses)
    assert ("error_code" in doc) == bool({"undelivered", "failed"} & set(statuses))
