"""A per-instance cache of campaign and template documents.

Entries live at most `ttl` seconds (2 s by default), so a pause or cancel still
takes effect within seconds while the send path reads each campaign about once
per instance per TTL instead of once per message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from google.cloud import firestore

from shared.campaigns.models import Campaign, campaign_ref
from shared.platform.firestore import operations
from shared.store.templates import Template, template_ref

T = TypeVar("T")


class TtlCache(Generic[T]):
    def __init__(self, ttl: float, load: Callable[[str], T | None]) -> None:
        self._ttl = ttl
        self._load = load
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, T | None]] = {}

    def get(self, key: str) -> T | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        value = self._load(key)
        with self._lock:
            self._entries[key] = (now, value)
        return value

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


def campaign_cache(db: firestore.Client, ttl: float) -> TtlCache[Campaign]:
    def load(campaign_id: str) -> Campaign | None:
        operations.add("reads")
        snapshot = campaign_ref(db, campaign_id).get()
        return Campaign.from_snapshot(snapshot) if snapshot.exists else None

    return TtlCache(ttl, load)


def template_cache(db: firestore.Client, ttl: float) -> TtlCache[Template]:
    def load(template_id: str) -> Template | None:
        operations.add("reads")
        snapshot = template_ref(db, template_id).get()
        return Template.from_snapshot(snapshot) if snapshot.exists else None

    return TtlCache(ttl, load)
