"""The Firestore client, built once per process, and its operation counter.

The client library talks to the emulator by itself when FIRESTORE_EMULATOR_HOST
is set, so production and local runs share this code path.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from google.api_core import gapic_v1
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from shared.platform.config import core_settings
from shared.platform.once import once


@once
def firestore_client() -> firestore.Client:
    return firestore.Client(project=core_settings().gcp_project)


class OperationCounter:
    """Counts document reads and writes made through the repositories.

    Benchmarks state Firestore cost per message from these counts. When
    ESE_OPS_COUNTER_FILE is set (local stack only), the counts are also
    written to that file about once a second, so a benchmark can add up the
    counts of every function process.
    """

    def __init__(self, dump_path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._dump_path = Path(dump_path) if dump_path else None
        self._dirty = threading.Event()
        self._dumper_pid: int | None = None

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._counts[kind] += n
            # Started lazily: a server may fork its workers after import.
            if self._dump_path is not None and self._dumper_pid != os.getpid():
                self._dumper_pid = os.getpid()
                threading.Thread(target=self._dump_forever, daemon=True).start()
        self._dirty.set()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def _dump_forever(self) -> None:
        assert self._dump_path is not None  # noqa: S101 - set before the thread starts
        self._dump_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            self._dirty.wait()
            self._dirty.clear()
            tmp = self._dump_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.snapshot()))
            tmp.replace(self._dump_path)
            threading.Event().wait(1.0)


operations = OperationCounter(os.environ.get("ESE_OPS_COUNTER_FILE"))


def count_of(query: firestore.Query) -> int:
    """A count() aggregation: billed as one read per 1,000 index entries."""
    operations.add("reads")
    aggregation: Any = query.count()
    results = aggregation.get()
    return int(results[0][0].value)


def ping(db: firestore.Client, timeout: float) -> None:
    """One read, to prove Firestore answers; raises whatever the client raises."""
    db.collection("_health").document("ping").get(timeout=timeout)


class DecodedSnapshot(firestore.DocumentSnapshot):
    """A query result decoded once and owned by its one reader.

    The library deep-copies each document's data when it builds a snapshot and
    again in `to_dict()`; with its timestamps that costs more than the read.
    """

    def __init__(
        self,
        reference: firestore.DocumentReference,
        data: dict[str, Any],
        read_time: Any,
        create_time: Any,
        update_time: Any,
    ) -> None:
        self._reference = reference
        self._data = data
        self._exists = True
        self.read_time = read_time
        self.create_time = create_time
        self.update_time = update_time

    def to_dict(self) -> dict[str, Any]:
        return self._data


def stream_query(query: firestore.Query) -> Iterator[firestore.DocumentSnapshot]:
    """`query.stream()` for a query over one collection, at a third of its CPU.

    The same RunQuery call; each document is decoded straight from the
    response's protobuf (not through the proto-plus wrappers) and not copied.
    A query over a collection group streams as the library does.
    """
    collection: Any = query._parent
    if query._all_descendants:
        yield from query.stream()
        return
    responses, prefix = query._get_stream_iterator(None, gapic_v1.method.DEFAULT, None)
    client = collection._client
    for response in responses:
        result = response._pb
        if not result.HasField("document"):
            continue
        document = result.document
        parent, _, document_id = document.name.rpartition("/")
        if parent != prefix:
            raise ValueError(f"unexpected document {document.name} under {prefix}")
        yield DecodedSnapshot(
            collection.document(document_id),
            cast(dict[str, Any], _helpers.decode_dict(document.fields, client)),
            DatetimeWithNanoseconds.from_timestamp_pb(result.read_time),
            DatetimeWithNanoseconds.from_timestamp_pb(document.create_time),
            DatetimeWithNanoseconds.from_timestamp_pb(document.update_time),
        )


KeyT = TypeVar("KeyT")
# Aggregation queries run side by side; each is one short RPC.
COUNT_WORKERS = 8


def count_each(queries: Mapping[KeyT, firestore.Query]) -> dict[KeyT, int]:
    """count() of each query, run side by side."""
    if not queries:
        return {}
    with ThreadPoolExecutor(max_workers=min(COUNT_WORKERS, len(queries))) as pool:
        counts = pool.map(count_of, queries.values())
        return dict(zip(queries, counts, strict=True))


# The client type, named here so that code above the stores can take a client
# and hand it to a store without importing the Firestore library itself.
Database = firestore.Client
