"""The `imports` collection: import reports, and their chunk and part markers.

`imports/{id}` is the report; `imports/{id}/chunks/{n}` marks a chunk counted
into it, and `imports/{id}/chunks/{n}/parts/{k}` a part of a chunk written,
with that part's counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel, Field

IMPORTS = "imports"
CHUNKS = "chunks"
PARTS = "parts"
# Reports and markers expire this long after the import started.
RETENTION = timedelta(days=30)


class ImportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    NDJSON = "ndjson"


class ImportStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ImportRowError(BaseModel):
    row: int
    phone: str | None = None
    error: str


class ImportReport(BaseModel):
    id: str
    status: ImportStatus = ImportStatus.RUNNING
    format: ImportFormat
    total: int = 0
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    invalid: int = 0
    failed: int = 0
    chunks_planned: int = 0
    chunks_done: int = 0
    errors: list[ImportRowError] = Field(default_factory=list)
    errors_omitted: int = 0
    started_at: datetime
    finished_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class PartMarker:
    """Names the marker of one part of one chunk of an import."""

    import_id: str
    chunk_no: int
    part_no: int


def import_ref(db: firestore.Client, import_id: str) -> firestore.DocumentReference:
    return db.collection(IMPORTS).document(import_id)


def _chunk_ref(
    db: firestore.Client, import_id: str, chunk_no: int
) -> firestore.DocumentReference:
    return import_ref(db, import_id).collection(CHUNKS).document(str(chunk_no))


def _part_ref(db: firestore.Client, part: PartMarker) -> firestore.DocumentReference:
    chunk = _chunk_ref(db, part.import_id, part.chunk_no)
    return chunk.collection(PARTS).document(str(part.part_no))


def report_doc(report: ImportReport) -> dict[str, Any]:
    doc = report.model_dump(mode="python", exclude={"id"})
    doc["expire_at"] = report.started_at + RETENTION
    return doc


def create_report(db: firestore.Client, report: ImportReport) -> None:
    import_ref(db, report.id).create(report_doc(report))


def fail_report(
    db: firestore.Client, import_id: str, finished_at: datetime, reason: str
) -> None:
    import_ref(db, import_id).update(
        {
            "status": ImportStatus.FAILED.value,
            "finished_at": finished_at,
            "reason": reason,
        }
    )


def get_import(db: firestore.Client, import_id: str) -> ImportReport | None:
    snapshot = import_ref(db, import_id).get()
    if not snapshot.exists:
        return None
    return ImportReport.model_validate({**(snapshot.to_dict() or {}), "id": import_id})


@dataclass(frozen=True)
class ChunkState:
    import_exists: bool
    chunk_counted: bool


def chunk_state(db: firestore.Client, import_id: str, chunk_no: int) -> ChunkState:
    """Whether the import's report exists and the chunk is counted: one read
    of both documents (a chunk's steps are serial, so each round trip shows)."""
    report, chunk = import_ref(db, import_id), _chunk_ref(db, import_id, chunk_no)
    found = {
        snapshot.reference.path
        for snapshot in db.get_all([report, chunk], field_paths=["status"])
        if snapshot.exists
    }
    return ChunkState(report.path in found, chunk.path in found)


def written_parts(
    db: firestore.Client, import_id: str, chunk_no: int, parts: int
) -> dict[int, dict[str, Any]]:
    """Which of the chunk's `parts` are written already: part number → its
    marker. Read by key: on the emulator a query's cost grows with the whole
    database, a lookup's does not."""
    refs = [
        _part_ref(db, PartMarker(import_id, chunk_no, number))
        for number in range(parts)
    ]
    return {
        int(snapshot.id): snapshot.to_dict() or {}
        for snapshot in db.get_all(refs)
        if snapshot.exists
    }


def marker_doc(counts: Mapping[str, int], now: datetime) -> dict[str, Any]:
    return {**counts, "written_at": now, "expire_at": now + RETENTION}


def set_part_marker(
    writer: firestore.WriteBatch,
    db: firestore.Client,
    part: PartMarker,
    counts: Mapping[str, int],
    now: datetime,
) -> None:
    """The part's marker, inside the batch that writes the part's users."""
    writer.set(_part_ref(db, part), marker_doc(counts, now))


def write_part_marker(
    db: firestore.Client, part: PartMarker, counts: Mapping[str, int], now: datetime
) -> None:
    """The part's marker, on its own."""
    _part_ref(db, part).set(marker_doc(counts, now))


def count_chunk_once(
    db: firestore.Client,
    import_id: str,
    chunk_no: int,
    counts: Mapping[str, int],
    errors: Sequence[dict[str, Any]],
    max_errors: int,
    now: datetime,
) -> None:
    """Create the chunk marker and add its counts to the report, atomically.

    The report keeps at most `max_errors` row errors and counts the rest. A
    marker that exists already means another delivery counted the chunk:
    nothing is added twice.
    """
    report_ref = import_ref(db, import_id)
    report = report_ref.get(field_paths=["errors"]).to_dict() or {}
    room = max(0, max_errors - len(report.get("errors") or []))
    changes: dict[str, Any] = {
        name: firestore.Increment(value) for name, value in counts.items()
    }
    changes["chunks_done"] = firestore.Increment(1)
    if errors[:room]:
        changes["errors"] = firestore.ArrayUnion(list(errors[:room]))
    if len(errors) > room:
        changes["errors_omitted"] = firestore.Increment(len(errors) - room)
    batch = db.batch()
    batch.create(_chunk_ref(db, import_id, chunk_no), marker_doc(counts, now))
    batch.update(report_ref, changes)
    try:
        batch.commit()
    except gexc.AlreadyExists:
        pass  # a concurrent delivery of this chunk counted it


def _completes(report: Mapping[str, Any]) -> bool:
    """A RUNNING report whose every planned chunk is counted."""
    done = report.get("chunks_done", 0) >= report.get("chunks_planned", 0)
    return bool(report.get("status") == ImportStatus.RUNNING.value and done)


@firestore.transactional
def _complete_if_done(
    transaction: firestore.Transaction,
    report_ref: firestore.DocumentReference,
    now: datetime,
) -> bool:
    snapshot = report_ref.get(transaction=transaction)
    if not _completes(snapshot.to_dict() or {}):
        return False
    transaction.update(
        report_ref, {"status": ImportStatus.COMPLETED.value, "finished_at": now}
    )
    return True


def complete_if_done(
    db: firestore.Client, import_id: str, now: datetime, max_attempts: int
) -> bool:
    """Mark a RUNNING report COMPLETED once every planned chunk is counted.

    A plain read first: every chunk but the last finds chunks left and stops
    there, instead of queueing for a transaction on the report that every
    chunk's count also writes. The chunk whose count came last always reads
    it (it wrote it), so the report still completes; the transaction checks
    again.
    """
    report_ref = import_ref(db, import_id)
    fields = ["status", "chunks_done", "chunks_planned"]
    if not _completes(report_ref.get(field_paths=fields).to_dict() or {}):
        return False
    transaction = db.transaction(max_attempts=max_attempts)
    return bool(_complete_if_done(transaction, report_ref, now))
