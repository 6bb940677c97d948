"""Contact imports: CSV, JSON array, NDJSON or a multipart `file`, upserted.

The body is parsed as a stream of records; rows are validated one by one, so a
bad row is reported with its number and reason while the good rows load.
Rows are written in chunks of CHUNK_ROWS users, each chunk one atomic batch
(user documents and their consent events together), with several chunks in
flight. Memory holds the body, the phones seen so far (to count duplicates)
and the chunks in flight, whatever the number of rows.

Typing rule for CSV cells (JSON values keep their JSON types):
- an empty cell is "no value": the attribute is neither set nor deleted;
- `true`/`false` (any case) become booleans;
- integers without a leading zero or `+` (`25`, `-3`) become int, and decimals
  (`4.5`) float, so that numeric segment comparisons work; `007`, `00300`,
  `+9477…` and anything else stay strings (ISO dates stay strings too; the DSL
  reads them as dates where a date is expected).

Consent: a new user gets the row's `consent_state` (OPT_IN by default); an
existing user's consent changes only as `upserted_consent` allows (STOP never,
an erased number never back to OPT_IN); each change appends a consent event
with source "import" and the import id and row as evidence.

Row numbers count data records from 1 (the CSV header is not a row).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from email.parser import BytesHeaderParser
from enum import StrEnum
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel, Field

from shared.audience.erasure import suppressed_states
from shared.audience.phones import InvalidPhone, normalize_phone
from shared.audience.users import (
    SUPPRESSION,
    Consent,
    ConsentState,
    InvalidAttributes,
    User,
    attribute_field,
    check_attributes,
    consent_event,
    is_valid_timezone,
    new_user,
    record_consent_change,
    upserted_consent,
    user_doc,
    user_ref,
)
from shared.platform.clock import utcnow
from shared.platform.config import core_settings
from shared.platform.logging import mask_phones_in_log

IMPORTS = "imports"
SOURCE = "import"
MAX_REPORTED_ERRORS = 1000
# A batch holds at most 500 writes: a user document and one consent event each.
CHUNK_ROWS = 250
MAX_IN_FLIGHT = 8
COMMIT_ATTEMPTS = 3
_MAX_TEXT = 200

PHONE_FIELDS = ("phone", "phone_number")
CONSENT_FIELD = "consent_state"
TIMEZONE_FIELD = "timezone"
ATTRIBUTES_FIELD = "attributes"
RECOGNISED_FIELDS = frozenset({*PHONE_FIELDS, CONSENT_FIELD, TIMEZONE_FIELD})

# Spellings of consent seen in contact files. PENDING (double opt-in not yet
# confirmed) is not consent, so it loads as OPT_OUT.
CONSENT_SPELLINGS: dict[str, ConsentState] = {
    "OPT_IN": ConsentState.OPT_IN,
    "OPTIN": ConsentState.OPT_IN,
    "OPTED_IN": ConsentState.OPT_IN,
    "OPT_OUT": ConsentState.OPT_OUT,
    "OPTOUT": ConsentState.OPT_OUT,
    "OPTED_OUT": ConsentState.OPT_OUT,
    "PENDING": ConsentState.OPT_OUT,
    "STOP": ConsentState.STOP,
}

_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,17})")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,17})\.[0-9]{1,15}")
_BOOLEANS = {"true": True, "false": False}
_WHITESPACE = re.compile(r"[ \t\r\n]*")
# Commit errors that mean "someone else wrote these users meanwhile": read again.
_RACES = (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound, gexc.Aborted)
_SUPPRESSION_CLEARED = {
    "suppressed": firestore.DELETE_FIELD,
    "erased_at": firestore.DELETE_FIELD,
}


class ImportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    NDJSON = "ndjson"


class ImportFileError(ValueError):
    """The file as a whole cannot be read (no phone column, not UTF-8, …)."""


class UnsupportedFormat(ValueError):
    """The Content-Type names a format that is not an import format."""


class RowError(ValueError):
    def __init__(self, reason: str, phone: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.phone = phone


class ImportStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"


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
    errors: list[ImportRowError] = Field(default_factory=list)
    errors_omitted: int = 0
    started_at: datetime
    finished_at: datetime | None = None
    # The report and its row errors go with a TTL policy (IMPORT_RETENTION_DAYS).
    expire_at: datetime | None = None

    def add_error(self, row: int, phone: object, reason: str) -> None:
        if len(self.errors) >= MAX_REPORTED_ERRORS:
            self.errors_omitted += 1
            return
        # Masked as in logs: an import report outlives the contact's erasure.
        shown = None if phone is None else mask_phones_in_log(str(phone)[:_MAX_TEXT])
        self.errors.append(
            ImportRowError(row=row, phone=shown, error=reason[:_MAX_TEXT])
        )


# ---------------------------------------------------------------- formats

CONTENT_TYPES: dict[str, ImportFormat] = {
    "text/csv": ImportFormat.CSV,
    "application/csv": ImportFormat.CSV,
    "text/comma-separated-values": ImportFormat.CSV,
    "application/vnd.ms-excel": ImportFormat.CSV,
    "application/json": ImportFormat.JSON,
    "text/json": ImportFormat.JSON,
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
    "application/x-jsonlines": ImportFormat.NDJSON,
    "application/jsonlines": ImportFormat.NDJSON,
}
SNIFFED_CONTENT_TYPES = frozenset({"", "text/plain", "application/octet-stream"})
EXTENSIONS: dict[str, ImportFormat] = {
    ".csv": ImportFormat.CSV,
    ".json": ImportFormat.JSON,
    ".ndjson": ImportFormat.NDJSON,
    ".jsonl": ImportFormat.NDJSON,
}
MULTIPART = "multipart/form-data"


def _header_params(content_type: str) -> Message:
    message = Message()
    message["content-type"] = content_type
    return message


def sniff_format(payload: bytes) -> ImportFormat:
    head = payload[:64].lstrip(codecs.BOM_UTF8).lstrip()
    return ImportFormat.JSON if head[:1] in (b"[", b"{") else ImportFormat.CSV


def detect_format(
    payload: bytes, content_type: str, filename: str = ""
) -> ImportFormat:
    """Content-Type decides; a generic type falls back to the name, then sniffing."""
    media = _header_params(content_type).get_content_type() if content_type else ""
    if media in CONTENT_TYPES:
        return CONTENT_TYPES[media]
    if content_type and media not in SNIFFED_CONTENT_TYPES:
        raise UnsupportedFormat(f"cannot import {media}: send CSV, JSON or NDJSON")
    suffix = filename[filename.rfind(".") :].lower() if "." in filename else ""
    return EXTENSIONS.get(suffix) or sniff_format(payload)


def multipart_file(body: bytes, content_type: str) -> tuple[bytes, str, str]:
    """The `file` part of a multipart/form-data body: (bytes, type, filename)."""
    boundary = _header_params(content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ImportFileError("multipart body without a boundary parameter")
    delimiter = b"--" + boundary.encode("latin-1")
    position = body.find(delimiter)
    while position >= 0:
        start = position + len(delimiter)
        if body[start : start + 2] == b"--":
            break
        head_end = body.find(b"\r\n\r\n", start)
        end = body.find(b"\r\n" + delimiter, head_end)
        if head_end < 0 or end < 0:
            break
        headers = BytesHeaderParser().parsebytes(body[start:head_end].lstrip())
        if headers.get_param("name", header="content-disposition") == "file":
            filename = headers.get_filename() or ""
            part_type = headers.get("content-type", "")
            return body[head_end + 4 : end], part_type, filename
        position = end + 2
    raise ImportFileError("multipart body has no 'file' part")


def open_upload(body: bytes, content_type: str) -> tuple[ImportFormat, bytes]:
    """The format and the bytes to import, unwrapping a multipart upload."""
    media = _header_params(content_type).get_content_type() if content_type else ""
    if media == MULTIPART:
        payload, part_type, filename = multipart_file(body, content_type)
        return detect_format(payload, part_type, filename), payload
    return detect_format(body, content_type), body


# ---------------------------------------------------------------- parsing

Record = tuple[int, "dict[str, Any] | str"]


def typed_csv_value(text: str) -> Any:
    """A CSV cell as an attribute value (see the module docstring)."""
    value = text.strip()
    if not value:
        return None
    if _INTEGER.fullmatch(value):
        return int(value)
    if _DECIMAL.fullmatch(value):
        return float(value)
    return _BOOLEANS.get(value.lower(), value)


def _canonical(name: str) -> str:
    stripped = name.strip()
    return stripped.lower() if stripped.lower() in RECOGNISED_FIELDS else stripped


def check_utf8(payload: bytes, step: int = 1 << 20) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(payload), step):
            decoder.decode(payload[start : start + step])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ImportFileError("the file is not UTF-8 text") from exc


def _csv_header(lines: Iterator[str]) -> tuple[list[str], str]:
    """The column names and the delimiter (the commonest of , ; and tab)."""
    first = next(lines, "")
    delimiter = max(",;\t", key=first.count)
    names = [_canonical(n) for n in next(csv.reader([first], delimiter=delimiter))]
    if not any(name in PHONE_FIELDS for name in names):
        raise ImportFileError("the CSV header has no 'phone' or 'phone_number' column")
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise ImportFileError(f"the CSV header repeats {', '.join(repeated)}")
    return names, delimiter


def csv_records(payload: bytes) -> Iterator[Record]:
    check_utf8(payload)
    lines = io.TextIOWrapper(io.BytesIO(payload), encoding="utf-8-sig", newline="")
    names, delimiter = _csv_header(lines)
    return _csv_rows(csv.reader(lines, delimiter=delimiter), names)


def _csv_rows(reader: Iterator[list[str]], names: list[str]) -> Iterator[Record]:
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield number, f"unreadable CSV row: {exc}"
            continue
        if not any(cell.strip() for cell in cells):
            continue
        number += 1
        if len(cells) > len(names):
            yield number, f"row has {len(cells)} fields, the header {len(names)}"
            continue
        yield number, _csv_fields(names, cells)


def _csv_fields(names: list[str], cells: list[str]) -> dict[str, Any]:
    return {
        name: cell.strip() if name in RECOGNISED_FIELDS else typed_csv_value(cell)
        for name, cell in zip(names, cells, strict=False)
        if name
    }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _as_fields(value: Any) -> dict[str, Any] | str:
    if not isinstance(value, dict):
        return "the row is not a JSON object"
    return {_canonical(key): item for key, item in value.items()}


def ndjson_records(payload: bytes) -> Iterator[Record]:
    number = 0
    start = 0
    while start < len(payload):
        end = payload.find(b"\n", start)
        end = len(payload) if end < 0 else end
        line = payload[start:end].strip()
        start = end + 1
        if not line:
            continue
        number += 1
        try:
            yield number, _as_fields(_DECODER.decode(line.decode("utf-8-sig")))
        except ValueError as exc:
            yield number, f"invalid JSON: {exc}"


def json_records(payload: bytes) -> Iterator[Record]:
    """A JSON array (streamed element by element), one object, or NDJSON."""
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError("the file is not UTF-8 text") from exc
    start = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
    if text.startswith("{", start):
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            return ndjson_records(payload)
        if end == len(text) or not text[end:].strip():
            return iter([(1, _as_fields(value))])
        return ndjson_records(payload)
    if not text.startswith("[", start):
        raise ImportFileError("a JSON import is an array of objects or NDJSON")
    return _json_array(text, start + 1)


def _json_array(text: str, position: int) -> Iterator[Record]:
    number = 0
    position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
    if text.startswith("]", position):
        return
    while True:
        number += 1
        try:
            value, position = _DECODER.raw_decode(text, position)
        except ValueError as exc:
            yield number, f"invalid JSON, the rest of the file was not read: {exc}"
            return
        yield number, _as_fields(value)
        position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
        separator = text[position : position + 1]
        position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
        if separator == "]":
            return
        if separator != ",":
            yield number + 1, "invalid JSON: expected ',' or ']' after a row"
            return


READERS = {
    ImportFormat.CSV: csv_records,
    ImportFormat.JSON: json_records,
    ImportFormat.NDJSON: ndjson_records,
}


# ---------------------------------------------------------------- rows


@dataclass
class Contact:
    """One validated row: what it says about one user."""

    phone: str
    row: int
    attributes: dict[str, Any]
    timezone: str | None = None
    consent: ConsentState | None = None
    # A phone an earlier chunk already wrote: counted as a duplicate only.
    repeat: bool = False

    def merge(self, later: Contact) -> None:
        """A later row for the same phone wins, key by key."""
        self.row = later.row
        self.attributes.update(later.attributes)
        self.timezone = later.timezone or self.timezone
        self.consent = later.consent or self.consent


def parse_consent(value: Any) -> ConsentState | None:
    if value is None or value == "":
        return None
    key = re.sub(r"[\s-]+", "_", str(value).strip().upper())
    if key not in CONSENT_SPELLINGS:
        raise RowError(f"consent_state {value!r} is not OPT_IN, OPT_OUT or STOP")
    return CONSENT_SPELLINGS[key]


def _timezone(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not is_valid_timezone(value.strip()):
        raise RowError(f"timezone {value!r} is not an IANA time zone")
    return value.strip()


def _attributes(fields: Mapping[str, Any]) -> dict[str, Any]:
    nested = fields.get(ATTRIBUTES_FIELD) or {}
    if not isinstance(nested, dict):
        raise RowError("'attributes' must be an object")
    flat = {
        name: value
        for name, value in fields.items()
        if name not in RECOGNISED_FIELDS and name != ATTRIBUTES_FIELD
    }
    merged = {
        name: value
        for name, value in {**nested, **flat}.items()
        if value is not None and value != ""
    }
    try:
        check_attributes(merged)
    except InvalidAttributes as exc:
        raise RowError(str(exc)) from exc
    return merged


def parse_contact(row: int, fields: Mapping[str, Any], default_region: str) -> Contact:
    raw_phone = next((fields[n] for n in PHONE_FIELDS if fields.get(n)), None)
    if raw_phone is None:
        raise RowError("phone is missing")
    try:
        phone = normalize_phone(raw_phone, default_region)
    except InvalidPhone as exc:
        raise RowError(str(exc), raw_phone) from exc
    try:
        return Contact(
            phone=phone,
            row=row,
            attributes=_attributes(fields),
            timezone=_timezone(fields.get(TIMEZONE_FIELD)),
            consent=parse_consent(fields.get(CONSENT_FIELD)),
        )
    except RowError as exc:
        raise RowError(exc.reason, raw_phone) from exc


# ---------------------------------------------------------------- writing


@dataclass
class ChunkOutcome:
    created: int = 0
    updated: int = 0
    failures: list[tuple[Contact, str]] = field(default_factory=list)
    # Whether the chunk met stored users, which decides how the next one starts.
    met_existing: bool = False


class _Batch:
    """One atomic write of several contacts, decided from their stored state."""

    def __init__(self, db: firestore.Client, now: datetime, import_id: str) -> None:
        self.db = db
        self.now = now
        self.import_id = import_id
        self.batch = db.batch()
        self.outcome = ChunkOutcome()

    def add(
        self, contact: Contact, snapshot: firestore.DocumentSnapshot | None
    ) -> None:
        if snapshot is None or not snapshot.exists:
            self._create(contact, None)
            return
        self.outcome.met_existing = True
        current = User.model_validate(
            {"phone": contact.phone, **(snapshot.to_dict() or {})}
        )
        if current.suppressed:
            self._create(contact, current, snapshot.update_time)
        else:
            self._update(contact, current, snapshot.update_time)

    def add_over_suppression(self, contact: Contact, state: ConsentState) -> None:
        """A new profile for an erased number, keeping its opt-out."""
        consent = Consent(state=state, source=SUPPRESSION)
        current = User(phone=contact.phone, consent=consent, suppressed=True)
        self._record(contact, None, state, SUPPRESSION)
        self._create(contact, current, None)

    def _evidence(self, contact: Contact) -> str:
        return f"import {self.import_id} row {contact.row}"

    def _record(
        self,
        contact: Contact,
        previous: ConsentState | None,
        state: ConsentState,
        source: str = SOURCE,
    ) -> None:
        event = consent_event(
            previous, state, source, self.now, self._evidence(contact)
        )
        record_consent_change(self.batch, self.db, contact.phone, event)

    def _create(
        self, contact: Contact, current: User | None, read_at: Any = None
    ) -> None:
        """A new user, or a new profile for an erased (suppressed) number."""
        decided = upserted_consent(current, contact.consent)
        user = new_user(
            contact.phone,
            contact.attributes,
            contact.timezone,
            decided or ConsentState.OPT_IN,
            SOURCE,
            self.now,
        )
        ref = user_ref(self.db, contact.phone)
        if current is None or read_at is None:
            if decided is None and current is not None:
                user.consent = current.consent
            self.batch.create(ref, user_doc(user))
        else:
            if decided is None:
                user.consent = current.consent
            profile = {**user_doc(user), **_SUPPRESSION_CLEARED}
            option = self.db.write_option(last_update_time=read_at)
            self.batch.update(ref, profile, option=option)
        if decided is not None:
            self._record(contact, current.consent.state if current else None, decided)
        self.outcome.created += not contact.repeat

    def _update(self, contact: Contact, current: User, read_at: Any) -> None:
        changes: dict[str, Any] = {"updated_at": self.now}
        for name, value in contact.attributes.items():
            changes[attribute_field(name)] = value
        if contact.timezone:
            changes["timezone"] = contact.timezone
        decided = upserted_consent(current, contact.consent)
        if decided is not None:
            changes["consent"] = {
                "state": decided.value,
                "updated_at": self.now,
                "source": SOURCE,
            }
            self._record(contact, current.consent.state, decided)
        # The precondition turns a concurrent change (a STOP arriving now) into
        # a failed commit that is read and decided again.
        option = self.db.write_option(last_update_time=read_at)
        self.batch.update(user_ref(self.db, contact.phone), changes, option=option)
        self.outcome.updated += not contact.repeat


def _stored_states(
    db: firestore.Client, contacts: list[Contact]
) -> dict[str, firestore.DocumentSnapshot]:
    refs = [user_ref(db, contact.phone) for contact in contacts]
    return {
        snapshot.id: snapshot
        for snapshot in db.get_all(refs, field_paths=["consent", "suppressed"])
    }


def _commit(
    db: firestore.Client,
    contacts: list[Contact],
    now: datetime,
    import_id: str,
    read_first: bool,
) -> ChunkOutcome:
    """One atomic batch. Unread, every contact is created: if one exists the
    whole batch fails (AlreadyExists) and is decided again from a read."""
    snapshots = _stored_states(db, contacts) if read_first else {}
    # Erased, opted-out numbers: a batched read of their suppression entries,
    # so a re-import never opts one back in.
    suppressed = suppressed_states(db, {contact.phone for contact in contacts})
    batch = _Batch(db, now, import_id)
    for contact in contacts:
        snapshot = snapshots.get(contact.phone)
        state = suppressed.get(contact.phone)
        if state is not None and (snapshot is None or not snapshot.exists):
            batch.add_over_suppression(contact, state)
        else:
            batch.add(contact, snapshot)
    batch.batch.commit()
    return batch.outcome


def write_chunk(
    db: firestore.Client,
    contacts: list[Contact],
    now: datetime,
    import_id: str,
    expect_new: bool = False,
) -> ChunkOutcome:
    """Write a chunk atomically, reading again after a race; isolate bad rows.

    With `expect_new` the first attempt skips the read: on a fresh list most
    chunks hold only new users, and the read costs the emulator and Firestore
    about as much as a fifth of the writes.
    """
    read_first = not expect_new
    for _ in range(COMMIT_ATTEMPTS):
        try:
            return _commit(db, contacts, now, import_id, read_first)
        except _RACES:
            read_first = True
        except (gexc.GoogleAPICallError, ValueError, TypeError):
            break
    if len(contacts) == 1:
        return ChunkOutcome(failures=[(contacts[0], "could not be written")])
    outcome = ChunkOutcome()
    for contact in contacts:
        single = write_chunk(db, [contact], now, import_id)
        outcome.created += single.created
        outcome.updated += single.updated
        outcome.failures.extend(single.failures)
    return outcome


Progress = Callable[[ImportReport], None]


class ImportWriter:
    """Merges duplicates, cuts chunks and keeps a few chunk commits in flight."""

    def __init__(
        self,
        db: firestore.Client,
        report: ImportReport,
        now: datetime,
        on_progress: Progress | None = None,
    ) -> None:
        self.db = db
        self.report = report
        self.now = now
        self.on_progress = on_progress
        # Phones as integers: half the memory of strings on large files.
        self.seen: set[int] = set()
        self.chunk: dict[str, Contact] = {}
        self.chunk_repeats_earlier = False
        self.in_flight: deque[Future[ChunkOutcome]] = deque()
        self.expect_new = True
        self.executor = ThreadPoolExecutor(MAX_IN_FLIGHT, "import")

    def add(self, contact: Contact) -> None:
        key = int(contact.phone[1:])
        if key in self.seen:
            self.report.duplicates += 1
            if contact.phone in self.chunk:
                self.chunk[contact.phone].merge(contact)
                return
            # Its first row may still be in flight: wait before reading it.
            self.chunk_repeats_earlier = True
            contact.repeat = True
        self.seen.add(key)
        self.chunk[contact.phone] = contact
        if len(self.chunk) >= CHUNK_ROWS:
            self.submit()

    def submit(self) -> None:
        if not self.chunk:
            return
        if self.chunk_repeats_earlier:
            self.drain(0)
        contacts = list(self.chunk.values())
        expect_new = self.expect_new and not self.chunk_repeats_earlier
        self.chunk = {}
        self.chunk_repeats_earlier = False
        future = self.executor.submit(
            write_chunk, self.db, contacts, self.now, self.report.id, expect_new
        )
        self.in_flight.append(future)
        self.drain(MAX_IN_FLIGHT)

    def drain(self, keep: int) -> None:
        while len(self.in_flight) > keep:
            self._count(self.in_flight.popleft().result())

    def _count(self, outcome: ChunkOutcome) -> None:
        self.expect_new = not outcome.met_existing
        self.report.created += outcome.created
        self.report.updated += outcome.updated
        for contact, reason in outcome.failures:
            self.report.failed += 1
            self.report.add_error(contact.row, contact.phone, reason)
        if self.on_progress is not None:
            self.on_progress(self.report)

    def close(self) -> None:
        try:
            self.submit()
            self.drain(0)
        finally:
            self.executor.shutdown(wait=True)


# ---------------------------------------------------------------- service


def import_ref(db: firestore.Client, import_id: str) -> firestore.DocumentReference:
    return db.collection(IMPORTS).document(import_id)


def _save(db: firestore.Client, report: ImportReport) -> None:
    import_ref(db, report.id).set(report.model_dump(mode="python", exclude={"id"}))


def run_import(
    db: firestore.Client,
    body: bytes,
    content_type: str,
    *,
    default_region: str,
    now: datetime,
    import_id: str | None = None,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import a file and return its report, also stored in `imports/{id}`.

    `on_progress` is called with the report as each chunk completes.

    Raises UnsupportedFormat or ImportFileError, before writing anything, when
    the file as a whole cannot be imported.
    """
    import_format, payload = open_upload(body, content_type)
    records = READERS[import_format](payload)
    retention = timedelta(days=core_settings().import_retention_days)
    report = ImportReport(
        id=import_id or uuid.uuid4().hex[:20],
        format=import_format,
        started_at=now,
        expire_at=now + retention,
    )
    _save(db, report)
    writer = ImportWriter(db, report, now, on_progress)
    try:
        for row, fields in records:
            _load_row(writer, report, row, fields, default_region)
    finally:
        writer.close()
    report.status = ImportStatus.COMPLETED
    report.finished_at = utcnow()
    _save(db, report)
    return report


def _load_row(
    writer: ImportWriter,
    report: ImportReport,
    row: int,
    fields: dict[str, Any] | str,
    default_region: str,
) -> None:
    report.total += 1
    try:
        if isinstance(fields, str):
            raise RowError(fields)
        writer.add(parse_contact(row, fields, default_region))
    except RowError as exc:
        report.invalid += 1
        report.add_error(row, exc.phone, exc.reason)


def get_import(db: firestore.Client, import_id: str) -> ImportReport | None:
    snapshot = import_ref(db, import_id).get()
    if not snapshot.exists:
        return None
    return ImportReport.model_validate({**(snapshot.to_dict() or {}), "id": import_id})
