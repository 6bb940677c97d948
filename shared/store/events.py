"""The `events` collection: ingested events and what the router recorded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from google.cloud import firestore

from shared.payloads import IngestedEvent
from shared.platform.bulk import BulkCreator, delete_in_batches
from shared.platform.firestore import operations
from shared.platform.paging import Listing

EVENTS = "events"


class EventStatus(StrEnum):
    RECEIVED = "received"
    MATCHED = "matched"
    UNMATCHED = "unmatched"


class EventWritesFailed(RuntimeError):
    """Some event documents could not be written (other than as duplicates)."""


def events_collection(db: firestore.Client) -> firestore.CollectionReference:
    return db.collection(EVENTS)


def event_ref(db: firestore.Client, event_id: str) -> firestore.DocumentReference:
    return events_collection(db).document(event_id)


def every_event(db: firestore.Client) -> Listing[dict[str, Any]]:
    """Every event's fields (see `event_fields`), newest received first."""
    collection = events_collection(db)
    return Listing(
        firestore.Query(collection), collection, event_fields, newest_by="received_at"
    )


def new_event_doc(
    event: IngestedEvent,
    received_at: datetime,
    expire_at: datetime,
    republish_at: datetime,
) -> dict[str, Any]:
    """The document of an event just received, not yet routed."""
    return {
        "type": event.type,
        "phone": event.phone,
        "properties": event.properties,
        "occurred_at": event.occurred_at,
        "received_at": received_at,
        "expire_at": expire_at,
        "status": EventStatus.RECEIVED.value,
        "republish_at": republish_at,
    }


def event_fields(snapshot: firestore.DocumentSnapshot) -> dict[str, Any]:
    """Every stored field of an event, with its `event_id`."""
    return {**(snapshot.to_dict() or {}), "event_id": snapshot.id}


def get_event_doc(db: firestore.Client, event_id: str) -> dict[str, Any] | None:
    """The stored fields of one event; None if there is no such event."""
    snapshot = event_ref(db, event_id).get()
    return (snapshot.to_dict() or {}) if snapshot.exists else None


def stored_event(snapshot: firestore.DocumentSnapshot) -> IngestedEvent:
    data = snapshot.to_dict() or {}
    return IngestedEvent(
        event_id=snapshot.id,
        type=data["type"],
        phone=data["phone"],
        properties=data.get("properties") or {},
        occurred_at=data["occurred_at"],
    )


class EventWriter:
    """Creates event documents with `create()`, the duplicate check.

    Writes go out while the caller is still adding (see BulkCreator). An id
    added twice is written once; the first one wins.
    """

    def __init__(self, db: firestore.Client):
        self._db = db
        self._added: set[str] = set()
        self._creator = BulkCreator(db)

    def create(self, event_id: str, doc: Mapping[str, Any]) -> bool:
        """Queue the create; False if this id was added already."""
        if event_id in self._added:
            return False
        self._added.add(event_id)
        self._creator.create(event_ref(self._db, event_id), doc)
        return True

    def close(self) -> tuple[set[str], set[str]]:
        """Wait for every write: the ids created, and the ids that existed.

        Raises EventWritesFailed if any other write failed.
        """
        result = self._creator.close()
        if result.failed:
            raise EventWritesFailed(
                f"{len(result.failed)} event writes failed: {result.failed[:3]}"
            )
        return set(result.created), set(result.existing)


def record_routing(
    db: firestore.Client, event_id: str, fields: Mapping[str, Any]
) -> None:
    """Merged, so an event published without its document still gets one."""
    operations.add("writes")
    event_ref(db, event_id).set(dict(fields), merge=True)


def events_with_status(
    db: firestore.Client, ids: Iterable[str], status: EventStatus
) -> list[IngestedEvent]:
    """The stored events among `ids` whose status is `status`."""
    refs = [event_ref(db, event_id) for event_id in sorted(ids)]
    if not refs:
        return []
    operations.add("reads", len(refs))
    return [
        stored_event(snapshot)
        for snapshot in db.get_all(refs)
        if snapshot.exists and (snapshot.to_dict() or {}).get("status") == status.value
    ]


def due_for_republish(
    db: firestore.Client, now: datetime, limit: int
) -> list[IngestedEvent]:
    """Events still `received` whose `republish_at` has come (at most `limit`)."""
    due = (
        events_collection(db)
        .where(filter=firestore.FieldFilter("status", "==", EventStatus.RECEIVED.value))
        .where(filter=firestore.FieldFilter("republish_at", "<=", now))
        .limit(limit)
    )
    return [stored_event(snapshot) for snapshot in due.stream()]


def set_republish_at(
    db: firestore.Client, event_ids: Iterable[str], at: datetime
) -> None:
    """Move the events' next republish to `at`, in one batch."""
    batch = db.batch()
    count = 0
    for event_id in event_ids:
        batch.update(event_ref(db, event_id), {"republish_at": at})
        count += 1
    if count:
        batch.commit()
        operations.add("writes", count)


def delete_of_phone(db: firestore.Client, phone: str, batch_size: int) -> int:
    """Delete every event of `phone` (erasure); how many."""
    query = events_collection(db).where(
        filter=firestore.FieldFilter("phone", "==", phone)
    )
    return delete_in_batches(db, query, batch_size)
