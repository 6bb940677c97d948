"""The scheduler's sweep for events stored but never routed."""

from __future__ import annotations

from datetime import datetime

from shared.events.ingest import REPUBLISH_AFTER, publish_events
from shared.platform.firestore import Database
from shared.platform.pubsub import Publisher
from shared.store import events as event_store

SWEEP_LIMIT = 500


def republish_stranded_events(db: Database, publisher: Publisher, now: datetime) -> int:
    """Publish again events stored but never routed (their publish was lost
    and the caller did not retry); the router is idempotent per event.

    Each is due again only REPUBLISH_AFTER later, so an event that is merely
    queued behind a router backlog gets one more copy per interval rather
    than one per tick: copies per tick grew the backlog they sat in.
    """
    due = event_store.due_for_republish(db, now, SWEEP_LIMIT)
    if not due:
        return 0
    publish_events(publisher, due)
    # After the publish: if this write fails, the next tick publishes again,
    # which the router absorbs; the other order could lose the republish.
    event_store.set_republish_at(
        db, [event.event_id for event in due], now + REPUBLISH_AFTER
    )
    return len(due)
