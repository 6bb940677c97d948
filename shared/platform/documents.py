"""Document shapes any store may share: what a document id may be, delete a
document unless it is in use."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from google.cloud import firestore

from shared.platform.firestore import operations
from shared.platform.ttl_cache import TtlCache

T = TypeVar("T")

# Firestore document ids may not contain "/", be "." or "..", or look like
# `__name__`; anything outside this set is replaced so an id is always legal.
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.+-]")
_MAX_ID_CHARS = 500


def safe_document_id(*parts: str) -> str:
    """Join parts with "_" into a legal Firestore document id."""
    joined = "_".join(_UNSAFE_ID_CHARS.sub("-", part) for part in parts)
    joined = joined[:_MAX_ID_CHARS]
    if joined.strip(".") == "" or (joined.startswith("__") and joined.endswith("__")):
        return f"id-{joined}"
    return joined


def document_cache(
    ttl: float,
    ref_of: Callable[[str], firestore.DocumentReference],
    model_of: Callable[[firestore.DocumentSnapshot], T],
) -> TtlCache[T]:
    """Documents read by id and cached per instance for `ttl` seconds (None
    cached for a missing one); each read is counted."""

    def load(doc_id: str) -> T | None:
        operations.add("reads")
        snapshot = ref_of(doc_id).get()
        return model_of(snapshot) if snapshot.exists else None

    return TtlCache(ttl, load)


def is_document_id(value: str) -> bool:
    """Firestore's rules for a document id (no slash, no dots-only, no __x__)."""
    return (
        0 < len(value.encode()) <= 1500
        and "/" not in value
        and value not in (".", "..")
        and not (value.startswith("__") and value.endswith("__"))
    )


def delete_unless_used(
    db: firestore.Client,
    ref: firestore.DocumentReference,
    users_of: Callable[[firestore.Transaction], list[T]],
) -> list[T] | None:
    """Delete the document unless `users_of` names users of it; returns those.

    None when there is no document. `users_of` runs inside the delete's
    transaction, so nothing it queries can change between the check and the
    delete.
    """

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> list[T] | None:
        if not ref.get(transaction=transaction).exists:
            return None
        blocking = users_of(transaction)
        if not blocking:
            transaction.delete(ref)
        return blocking

    blocking: list[T] | None = apply(db.transaction())
    return blocking
