"""Document shapes any store may share: what a document id may be, delete a
document unless it is in use."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from google.cloud import firestore

T = TypeVar("T")


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
