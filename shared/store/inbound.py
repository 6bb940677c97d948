"""The `inbound` collection: raw inbound messages, the guard of their processing.

A message is created first, then marked processed by a write conditional on
its last update time, so two deliveries of one message cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.platform.bulk import delete_in_batches
from shared.platform.paging import Listing

INBOUND = "inbound"


def inbound_collection(db: firestore.Client) -> firestore.CollectionReference:
    return db.collection(INBOUND)


def inbound_ref(db: firestore.Client, doc_id: str) -> firestore.DocumentReference:
    return inbound_collection(db).document(doc_id)


def new_inbound_doc(
    params: Mapping[str, str],
    phone: str | None,
    classification: str,
    received_at: datetime,
    expire_at: datetime,
) -> dict[str, Any]:
    """The document of an inbound message just received, not yet processed."""
    return {
        "params": dict(params),
        "phone": phone,
        "body": params.get("Body", ""),
        "classification": classification,
        "received_at": received_at,
        "expire_at": expire_at,
        "processed_at": None,
    }


def claim_inbound(
    db: firestore.Client, doc_id: str, doc: dict[str, Any]
) -> datetime | None:
    """Store the raw message; the update time to mark it by, None if done."""
    ref = inbound_ref(db, doc_id)
    try:
        return ref.create(doc).update_time
    except gexc.AlreadyExists:
        snapshot = ref.get()
    if (snapshot.to_dict() or {}).get("processed_at") is not None:
        return None
    return snapshot.update_time


def mark_processed(
    db: firestore.Client,
    doc_id: str,
    claim: datetime,
    reply_body: str | None,
    now: datetime,
) -> bool:
    """Compare-and-set on the update time: only one delivery may mark it."""
    try:
        inbound_ref(db, doc_id).update(
            {"processed_at": now, "reply": reply_body},
            option=db.write_option(last_update_time=claim),
        )
    except gexc.FailedPrecondition:
        return False
    return True


# ---------------------------------------------------------------- reports


def inbound_fields(snapshot: firestore.DocumentSnapshot) -> dict[str, Any]:
    """Every stored field of an inbound message, with its `id`."""
    return {**(snapshot.to_dict() or {}), "id": snapshot.id}


def recent_inbound(db: firestore.Client) -> Listing[dict[str, Any]]:
    """Every inbound message's fields, newest received first."""
    collection = inbound_collection(db)
    return Listing(
        firestore.Query(collection),
        collection,
        inbound_fields,
        newest_by="received_at",
    )


def received_since_by_classification_queries(
    db: firestore.Client, since: datetime, classifications: Iterable[str]
) -> dict[str, firestore.Query]:
    """Per classification, the inbound received since `since` (dashboard panel)."""
    recent = inbound_collection(db).where(
        filter=firestore.FieldFilter("received_at", ">=", since)
    )
    return {
        classification: recent.where(
            filter=firestore.FieldFilter("classification", "==", classification)
        )
        for classification in classifications
    }


def delete_from_phone(db: firestore.Client, phone: str, batch_size: int) -> int:
    """Delete every inbound message from `phone` (erasure); how many."""
    query = inbound_collection(db).where(
        filter=firestore.FieldFilter("phone", "==", phone)
    )
    return delete_in_batches(db, query, batch_size)
