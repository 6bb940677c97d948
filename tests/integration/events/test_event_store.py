"""The events store's republish shapes, on the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.payloads import IngestedEvent
from shared.store.events import (
    EVENTS,
    EventStatus,
    due_for_republish,
    new_event_doc,
    set_republish_at,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def store(db: Any, event_id: str, republish_at: datetime, status: str) -> None:
    """An event received an hour ago, due for republishing at `republish_at`."""
    received_at = NOW - timedelta(hours=1)
    event = IngestedEvent(
        event_id=event_id,
        type="order.shipped",
        phone="+14155550100",
        properties={},
        occurred_at=received_at,
    )
    doc = new_event_doc(event, received_at, NOW + timedelta(days=30), republish_at)
    db.collection(EVENTS).document(event_id).set({**doc, "status": status})


def test_only_received_events_whose_republish_time_has_come_are_due(
    db: Any,
) -> None:
    store(db, "stranded", NOW - timedelta(minutes=8), EventStatus.RECEIVED.value)
    store(db, "fresh", NOW + timedelta(minutes=1), EventStatus.RECEIVED.value)
    store(db, "routed", NOW - timedelta(minutes=8), EventStatus.MATCHED.value)

    due = due_for_republish(db, NOW, limit=10)

    assert [event.event_id for event in due] == ["stranded"]
    assert due[0].type == "order.shipped"


def test_a_republished_event_is_due_again_only_at_its_new_time(db: Any) -> None:
    store(db, "e1", NOW - timedelta(minutes=8), EventStatus.RECEIVED.value)
    later = NOW + timedelta(minutes=2)

    set_republish_at(db, ["e1"], later)

    assert due_for_republish(db, NOW, limit=10) == []
    assert [e.event_id for e in due_for_republish(db, later, limit=10)] == ["e1"]


def test_the_due_events_stop_at_the_limit(db: Any) -> None:
    for n in range(3):
        store(db, f"e{n}", NOW - timedelta(minutes=8), EventStatus.RECEIVED.value)

    assert len(due_for_republish(db, NOW, limit=2)) == 2
