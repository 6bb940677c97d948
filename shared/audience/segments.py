"""Segment DSL: validation, in-memory matching and streaming evaluation.

Walking-skeleton version: `equals` on one attribute. The full DSL replaces it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.audience.users import USERS, User


class SegmentDefinitionError(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def validate_definition(definition: Any) -> None:
    if not isinstance(definition, Mapping):
        raise SegmentDefinitionError("$", "a condition must be an object")
    if definition.get("operator") != "equals" or "attribute" not in definition:
        raise SegmentDefinitionError("$", "only 'equals' conditions are supported")


def user_matches(definition: Mapping[str, Any], user: User, now: datetime) -> bool:
    value = user.attributes.get(str(definition["attribute"]))
    return value is not None and value == definition.get("value")


def iter_segment_users(
    db: firestore.Client,
    definition: Mapping[str, Any],
    now: datetime,
    page_size: int = 500,
) -> Iterator[User]:
    """Yield matching users, paging with cursors so memory stays flat."""
    field = f"attributes.`{definition['attribute']}`"
    query = db.collection(USERS).where(
        filter=firestore.FieldFilter(field, "==", definition.get("value"))
    )
    yield from _paged(query.order_by("__name__"), page_size, definition, now)


def _paged(
    query: firestore.Query,
    page_size: int,
    definition: Mapping[str, Any],
    now: datetime,
) -> Iterator[User]:
    cursor: firestore.DocumentSnapshot | None = None
    while True:
        page = query.limit(page_size)
        if cursor is not None:
            page = page.start_after(cursor)
        snapshots = list(page.stream())
        for snapshot in snapshots:
            user = User.from_doc(snapshot.to_dict() or {})
            if user_matches(definition, user, now):
                yield user
        if len(snapshots) < page_size:
            return
        cursor = snapshots[-1]
