"""What an erased number leaves behind: its suppression entry, read back."""

from __future__ import annotations

from collections.abc import Iterable

from google.cloud import firestore

from shared.audience.users import ConsentState
from shared.platform.privacy import suppression_key
from shared.store.users import SUPPRESSIONS, suppression_ref


def suppressed_state(db: firestore.Client, phone: str) -> ConsentState | None:
    """The consent an erased number left behind, if it was opted out."""
    snapshot = suppression_ref(db, phone).get()
    if not snapshot.exists:
        return None
    return ConsentState((snapshot.to_dict() or {})["state"])


def suppressed_states(
    db: firestore.Client, phones: Iterable[str]
) -> dict[str, ConsentState]:
    """`suppressed_state` of many numbers in one batched read."""
    by_key = {suppression_key(phone): phone for phone in phones}
    refs = [db.collection(SUPPRESSIONS).document(key) for key in by_key]
    found: dict[str, ConsentState] = {}
    for snapshot in db.get_all(refs, field_paths=["state"]):
        if snapshot.exists:
            state = (snapshot.to_dict() or {})["state"]
            found[by_key[snapshot.id]] = ConsentState(state)
    return found
