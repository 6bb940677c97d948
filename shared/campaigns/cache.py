"""A per-instance cache of template documents.

Entries live at most `ttl` seconds (2 s by default), so an edit still takes
effect within seconds while the send path reads each template about once per
instance per TTL instead of once per message.
"""

from __future__ import annotations

from shared.platform.firestore import Database, operations
from shared.platform.ttl_cache import TtlCache
from shared.store.templates import Template, template_ref


def template_cache(db: Database, ttl: float) -> TtlCache[Template]:
    def load(template_id: str) -> Template | None:
        operations.add("reads")
        snapshot = template_ref(db, template_id).get()
        return Template.from_snapshot(snapshot) if snapshot.exists else None

    return TtlCache(ttl, load)
