"""The `receipts` collection: status callbacks that matched no message.

Kept (with a TTL) for reconciliation; one document per SID and status, so a
redelivered callback overwrites its own entry.
"""

from __future__ import annotations

from typing import Any

from google.cloud import firestore

from shared.platform.bulk import delete_in_batches
from shared.platform.documents import safe_document_id
from shared.platform.firestore import operations

UNMATCHED_RECEIPTS = "receipts"


def receipts_collection(db: firestore.Client) -> firestore.CollectionReference:
    return db.collection(UNMATCHED_RECEIPTS)


def keep_unmatched(
    db: firestore.Client, sid: str, status: str, doc: dict[str, Any]
) -> None:
    """Store (or overwrite) the unmatched callback of `sid` with `status`."""
    operations.add("writes")
    receipts_collection(db).document(safe_document_id(sid, status)).set(doc)


def delete_to_phone(db: firestore.Client, phone: str, batch_size: int) -> int:
    """Delete every unmatched callback sent to `phone` (erasure); how many."""
    query = receipts_collection(db).where(
        filter=firestore.FieldFilter("params.To", "in", [phone, f"whatsapp:{phone}"])
    )
    return delete_in_batches(db, query, batch_size)
