"""The `segments` collection: named, stored segment definitions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, Field

from shared.platform.documents import delete_unless_used, every_document
from shared.platform.firestore import operations

SEGMENTS = "segments"


class SegmentFields(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200)
    definition: dict[str, Any]


class Segment(SegmentFields):
    id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_snapshot(cls, snapshot: firestore.DocumentSnapshot) -> Segment:
        return cls.model_validate({**(snapshot.to_dict() or {}), "id": snapshot.id})


def new_segment_id() -> str:
    return uuid.uuid4().hex[:20]


def segments_collection(db: firestore.Client) -> firestore.CollectionReference:
    return db.collection(SEGMENTS)


def segment_ref(db: firestore.Client, segment_id: str) -> firestore.DocumentReference:
    return segments_collection(db).document(segment_id)


def every_segment(
    db: firestore.Client,
) -> tuple[firestore.Query, firestore.CollectionReference]:
    """The query over every segment, and its collection (for page cursors)."""
    return every_document(segments_collection(db))


def get_segment(db: firestore.Client, segment_id: str) -> Segment | None:
    snapshot = segment_ref(db, segment_id).get()
    return Segment.from_snapshot(snapshot) if snapshot.exists else None


def segment_definition(db: firestore.Client, segment_id: str) -> dict[str, Any] | None:
    """A stored segment's definition; None if there is no such segment."""
    operations.add("reads")
    snapshot = segment_ref(db, segment_id).get()
    return (snapshot.to_dict() or {}).get("definition") if snapshot.exists else None


def store_new_segment(db: firestore.Client, segment: Segment) -> None:
    segment_ref(db, segment.id).create(segment.model_dump(exclude={"id"}))


def update_segment(db: firestore.Client, segment: Segment) -> None:
    """Write what an operator may change: name, definition, updated_at."""
    segment_ref(db, segment.id).update(
        segment.model_dump(include={"name", "definition", "updated_at"})
    )


def delete_segment_unless_used(
    db: firestore.Client,
    segment_id: str,
    users_of: Callable[[firestore.Transaction], list[dict[str, Any]]],
) -> list[dict[str, Any]] | None:
    """Delete the segment unless `users_of` names users of it; returns those.

    None when there is no segment; see `delete_unless_used`.
    """
    return delete_unless_used(db, segment_ref(db, segment_id), users_of)
