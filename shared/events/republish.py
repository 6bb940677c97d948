"""The scheduler's sweep for events stored but never routed."""

from __future__ import annotations

from datetime import datetime

from google.cloud import firestore

from shared.events.ingest import REPUBLISH_AFTER, EventStatus, publish_events
from shared.platform.firestore import operations
from shared.platform.pubsub import Publisher
from shared.store.events import EVENTS, stored_event

SWEEP_LIMIT = 500


def republish_stranded_events(
    db: firestore.Client, publisher: Publisher, now: datetime
) -> int:
    """Publish again events stored but never routed (their publish was lost
    and the caller did not retry); the router is idempotent per event.

    Each is due again only REPUBLISH_AFTER later, so an event that is merely
    queued behind a router backlog gets one more copy per interval rather
    than one per tick: copies per tick grew the backlog they sat in.
    """
    due = (
        db.collection(EVENTS)
        .where(filter=firestore.FieldFilter("status", "==", EventStatus.RECEIVED.value))
        .where(filter=firestore.FieldFilter("republish_at", "<=", now))
        .limit(SWEEP_LIMIT)
    )
    snapshots = list(due.stream())
    if not snapshots:
        return 0
    publish_events(publisher, [stored_event(snapshot) for snapshot in snapshots])
    # After the publish: if this write fails, the next tick publishes again,
    # which the router absorbs; the other order could lose the republish.
    batch = db.batch()
    for snapshot in snapshots:
        batch.update(snapshot.reference, {"republish_at": now + REPUBLISH_AFTER})
    batch.commit()
    operations.add("writes", len(snapshots))
    return len(snapshots)
