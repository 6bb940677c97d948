"""Contact imports, asynchronous: the API validates, `contact_importer` upserts.

`validate_upload` reads the upload as a stream (shared.audience.import_files),
validates each row as it comes, and keeps the valid ones encoded, one per
phone: a later row for a phone already seen is merged into the earlier one,
key by key, so that each phone lands in exactly one chunk and chunks can be
written in any order. Only when the whole file has been read does
`queue_import` store the report `imports/{id}` (RUNNING, chunks planned) and
publish the rows to `import-chunks` in chunks of at most CHUNK_ROWS; so a file
refused as a whole (not UTF-8 halfway, hostile JSON) writes nothing. The
upload limit (32 MiB) bounds what is held; the rows are held as compact JSON,
not as objects.

`contact_importer` writes each chunk (shared.audience.import_chunks) and adds
its counts to the report, which goes COMPLETED when every chunk is counted.
Phones in the report's row errors are masked.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from pydantic import TypeAdapter

from shared.audience.import_files import (
    READERS,
    Contact,
    RowError,
    open_upload,
    parse_contact,
)
from shared.payloads import IMPORT_CHUNK_ROWS, ImportChunk, ImportRow
from shared.platform.firestore import Database
from shared.platform.pubsub import Publisher, Topic
from shared.store.imports import (
    ImportReport,
    ImportRowError,
    ImportStatus,
    create_report,
    fail_report,
)
from shared.store.users import ConsentState

SOURCE = "import"
MAX_REPORTED_ERRORS = 1000
CHUNK_ROWS = IMPORT_CHUNK_ROWS
# Well under Pub/Sub's 10 MB per message, whatever the attributes weigh.
CHUNK_BYTES = 4 << 20
# Chunks published per round trip: bounds the chunk objects held at once.
PUBLISH_GROUP = 8
_MAX_TEXT = 200
_DIGIT_RUN = re.compile(r"\d{8,}")
_ROWS = TypeAdapter(list[ImportRow])


class ImportNotQueued(RuntimeError):
    """The rows could not all be published; the report is FAILED."""


def masked(raw: object) -> str:
    """A phone as the report shows it: `+94771234571` → `+9477***4571`."""
    text = str(raw)[:_MAX_TEXT]
    return _DIGIT_RUN.sub(lambda m: f"{m[0][:4]}***{m[0][-4:]}", text)


def row_error(row: int, phone: object, reason: str) -> ImportRowError:
    shown = None if phone is None else masked(phone)
    return ImportRowError(row=row, phone=shown, error=reason[:_MAX_TEXT])


def add_row_error(report: ImportReport, row: int, phone: object, reason: str) -> None:
    """Report a row's error; past MAX_REPORTED_ERRORS only count it."""
    if len(report.errors) >= MAX_REPORTED_ERRORS:
        report.errors_omitted += 1
        return
    report.errors.append(row_error(row, phone, reason))


# ---------------------------------------------------------------- valid rows


def encode_contact(contact: Contact) -> bytes:
    row = {
        "phone": contact.phone,
        "row": contact.row,
        "attributes": contact.attributes,
        "timezone": contact.timezone,
        "consent": contact.consent.value if contact.consent else None,
    }
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()


def contact_of(row: ImportRow | dict[str, Any]) -> Contact:
    data = row.model_dump() if isinstance(row, ImportRow) else row
    consent = data.get("consent")
    return Contact(
        phone=data["phone"],
        row=data["row"],
        attributes=dict(data.get("attributes") or {}),
        timezone=data.get("timezone"),
        consent=ConsentState(consent) if consent else None,
    )


class ContactRows:
    """The valid rows of a file, one per phone, encoded until published."""

    def __init__(self) -> None:
        # Keyed by the phone's digits as an int (far smaller than the string
        # on large files), in the order phones first appeared.
        self.encoded: dict[int, bytes] = {}
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self.encoded)

    def add(self, contact: Contact) -> None:
        key = int(contact.phone[1:])
        earlier = self.encoded.get(key)
        if earlier is None:
            self.encoded[key] = encode_contact(contact)
            return
        # A later row wins key by key; the phone keeps its first place.
        self.duplicates += 1
        merged = contact_of(json.loads(earlier))
        merged.merge(contact)
        self.encoded[key] = encode_contact(merged)

    def chunk_bounds(self) -> list[tuple[int, int]]:
        """(start, end) of each chunk: at most CHUNK_ROWS rows and CHUNK_BYTES."""
        bounds: list[tuple[int, int]] = []
        start, size = 0, 0
        for index, row in enumerate(self.encoded.values()):
            if index > start and (
                index - start >= CHUNK_ROWS or size + len(row) > CHUNK_BYTES
            ):
                bounds.append((start, index))
                start, size = index, 0
            size += len(row) + 1
        if start < len(self.encoded):
            bounds.append((start, len(self.encoded)))
        return bounds

    def chunks(self, import_id: str, imported_at: datetime) -> Iterator[ImportChunk]:
        rows = list(self.encoded.values())
        for number, (start, end) in enumerate(self.chunk_bounds()):
            yield ImportChunk(
                import_id=import_id,
                chunk_no=number,
                imported_at=imported_at,
                rows=_ROWS.validate_json(b"[" + b",".join(rows[start:end]) + b"]"),
            )


def _validate_row(
    report: ImportReport,
    rows: ContactRows,
    row: int,
    fields: dict[str, Any] | str,
    default_region: str,
) -> None:
    report.total += 1
    try:
        if isinstance(fields, str):
            raise RowError(fields)
        rows.add(parse_contact(row, fields, default_region))
    except RowError as exc:
        report.invalid += 1
        add_row_error(report, row, exc.phone, exc.reason)


def validate_upload(
    source: bytes | IO[bytes],
    content_type: str,
    *,
    default_region: str,
    now: datetime,
    import_id: str | None = None,
    filename: str = "",
) -> tuple[ImportReport, ContactRows]:
    """Read and validate the whole file, writing nothing.

    Raises UnsupportedFormat or ImportFileError (NestedTooDeep for hostile
    JSON) when the file as a whole cannot be imported.
    """
    import_format, stream = open_upload(source, content_type, filename)
    report = ImportReport(
        id=import_id or uuid.uuid4().hex[:20], format=import_format, started_at=now
    )
    rows = ContactRows()
    for row, fields in READERS[import_format](stream):
        _validate_row(report, rows, row, fields, default_region)
    report.duplicates = rows.duplicates
    report.chunks_planned = len(rows.chunk_bounds())
    if report.chunks_planned == 0:
        report.status = ImportStatus.COMPLETED
        report.finished_at = now
    return report, rows


# ---------------------------------------------------------------- the report


def queue_import(
    db: Database,
    publisher: Publisher,
    report: ImportReport,
    rows: ContactRows,
) -> None:
    """Store the report (RUNNING) and publish its chunks to `import-chunks`.

    Raises ImportNotQueued, the report then FAILED, when publishing fails.
    """
    create_report(db, report)
    group: list[ImportChunk] = []
    try:
        for chunk in rows.chunks(report.id, report.started_at):
            group.append(chunk)
            if len(group) >= PUBLISH_GROUP:
                publisher.publish_many(Topic.IMPORT_CHUNKS, group)
                group = []
        if group:
            publisher.publish_many(Topic.IMPORT_CHUNKS, group)
    except Exception as exc:
        # The chunks already published still load (an upsert, safe to repeat):
        # the caller is told to send the file again.
        reason = "the rows could not all be queued; send the file again"
        fail_report(db, report.id, report.started_at, reason)
        raise ImportNotQueued(reason) from exc
