"""The Firestore client, built once per process.

The client library talks to the emulator by itself when FIRESTORE_EMULATOR_HOST
is set, so production and local runs share this code path.
"""

from __future__ import annotations

import threading
from collections import Counter
from functools import lru_cache
from typing import Any

from google.cloud import firestore

from shared.platform.config import core_settings


@lru_cache(maxsize=1)
def firestore_client() -> firestore.Client:
    return firestore.Client(project=core_settings().gcp_project)


class OperationCounter:
    """Counts document reads and writes made by the repositories.

    The send path reports its Firestore cost through this, so benchmarks can
    state reads and writes per message without a billing export.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._counts[kind] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


operations = OperationCounter()


def count_of(query: firestore.Query) -> int:
    """A count() aggregation: billed as one read per 1,000 index entries."""
    operations.add("reads")
    aggregation: Any = query.count()
    results = aggregation.get()
    return int(results[0][0].value)
