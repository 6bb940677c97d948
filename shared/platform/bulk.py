"""Idempotent bulk writes: create-if-absent in bulk, and re-enqueue the work of
documents that are still waiting. Generic: no domain code here.

Pub/Sub and Cloud Tasks deliver at least once, so a batch handler creates its
documents with `create()` (an existing id is the duplicate check, not an
error) and rebuilds the task of a document a crashed earlier delivery may have
created without enqueuing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.cloud import firestore
from google.cloud.firestore_v1.base_document import BaseDocumentReference
from google.cloud.firestore_v1.bulk_writer import (
    BulkWriteFailure,
    BulkWriter,
    BulkWriterOptions,
)
from google.cloud.firestore_v1.types.write import WriteResult

from shared.platform.firestore import operations

T = TypeVar("T")

ALREADY_EXISTS = 6  # gRPC status code
# Attempts at a write that fails for another reason than ALREADY_EXISTS.
MAX_WRITE_ATTEMPTS = 5
# BulkWriter throttles to 500 ops/s by default; batch handlers write to many
# distinct documents, which Firestore spreads well, so they may go faster.
_WRITER_OPTIONS = BulkWriterOptions(
    initial_ops_per_second=5000, max_ops_per_second=20000
)


@dataclass
class BulkCreateResult:
    # Created document id -> its update time (the version a task may carry).
    created: dict[str, Any] = field(default_factory=dict)
    # Ids that already existed: left as they were.
    existing: set[str] = field(default_factory=set)
    # "id: message" of writes that failed for good.
    failed: list[str] = field(default_factory=list)


def _failure_id(failure: BulkWriteFailure) -> str:
    return str(getattr(failure.operation, "reference").id)  # noqa: B009


class BulkCreator:
    """Creates documents with `create()` through a BulkWriter: writes go out
    from the writer's own threads while the caller adds more."""

    def __init__(self, db: firestore.Client) -> None:
        self._added = 0
        self._result = BulkCreateResult()
        self._writer = db.bulk_writer(options=_WRITER_OPTIONS)
        self._writer.on_write_result(self._on_result)
        self._writer.on_write_error(self._on_error)

    def create(self, ref: firestore.DocumentReference, doc: Mapping[str, Any]) -> None:
        self._added += 1
        self._writer.create(ref, dict(doc))

    def close(self) -> BulkCreateResult:
        """Wait for every write; what was created, what existed, what failed."""
        self._writer.close()
        operations.add("writes", self._added)
        return self._result

    def _on_result(
        self, ref: BaseDocumentReference, result: WriteResult, _: BulkWriter
    ) -> None:
        self._result.created[ref.id] = result.update_time

    def _on_error(self, failure: BulkWriteFailure, _: BulkWriter) -> bool:
        if failure.code == ALREADY_EXISTS:
            self._result.existing.add(_failure_id(failure))
            return False
        if failure.attempts < MAX_WRITE_ATTEMPTS:
            return True
        self._result.failed.append(f"{_failure_id(failure)}: {failure.message}")
        return False


def create_all_if_absent(
    db: firestore.Client,
    docs: Sequence[tuple[firestore.DocumentReference, Mapping[str, Any]]],
) -> BulkCreateResult:
    creator = BulkCreator(db)
    for ref, doc in docs:
        creator.create(ref, doc)
    return creator.close()


def requeue_if_still_queued(
    db: firestore.Client,
    refs: Sequence[firestore.DocumentReference],
    still_queued: Callable[[Mapping[str, Any]], bool],
    task_for: Callable[[str, Mapping[str, Any], Any], T],
) -> list[T]:
    """The tasks of the documents at `refs` that still wait for theirs.

    Read in one round trip; `task_for(id, data, update_time)` must name the
    task as it was first named, so a send already enqueued is deduped.
    """
    if not refs:
        return []
    operations.add("reads", len(refs))
    tasks = []
    for snapshot in db.get_all(list(refs)):
        data = snapshot.to_dict() or {}
        if snapshot.exists and still_queued(data):
            tasks.append(task_for(snapshot.id, data, snapshot.update_time))
    return tasks


def write_in_batches(
    db: firestore.Client,
    query: firestore.Query,
    write: Callable[[firestore.WriteBatch, firestore.DocumentSnapshot], None],
    batch_size: int,
) -> int:
    """Apply `write` to every document `query` selects, a batch at a time;
    how many it wrote.

    `write` must take the document out of `query`'s selection, so the loop
    ends, and a retry after a crash halfway picks up where it stopped.
    """
    done = 0
    while True:
        snapshots = list(query.limit(batch_size).stream())
        if not snapshots:
            return done
        batch = db.batch()
        for snapshot in snapshots:
            write(batch, snapshot)
        batch.commit()
        done += len(snapshots)


def _delete(batch: firestore.WriteBatch, snapshot: firestore.DocumentSnapshot) -> None:
    batch.delete(snapshot.reference)


def delete_in_batches(
    db: firestore.Client, query: firestore.Query, batch_size: int
) -> int:
    """Delete every document `query` selects, a batch at a time; how many."""
    return write_in_batches(db, query, _delete, batch_size)
