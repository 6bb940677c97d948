"""Contact files: CSV, JSON array or NDJSON, read as a stream.

Each reader takes the bytes or a binary stream and yields (row number, fields)
records, or (row number, reason) for a row that cannot be read; a file that
cannot be read at all raises ImportFileError. Only the current row (and for a
JSON array, the text of the element being decoded) is held, never the file.

Typing rule for CSV cells (JSON values keep their JSON types):
- an empty cell is "no value": the attribute is neither set nor deleted;
- `true`/`false` (any case) become booleans;
- integers without a leading zero or `+` (`25`, `-3`) become int, and decimals
  (`4.5`) float, so that numeric segment comparisons work; `007`, `00300`,
  `+9477…` and anything else stay strings (ISO dates stay strings too; the DSL
  reads them as dates where a date is expected).

Row numbers count data records from 1 (the CSV header is not a row).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any

from shared.audience.phones import InvalidPhone, normalize_phone
from shared.audience.users import InvalidAttributes, check_attributes, is_valid_timezone
from shared.store.imports import ImportFormat
from shared.store.users import ConsentState

PHONE_FIELDS = ("phone", "phone_number")
CONSENT_FIELD = "consent_state"
TIMEZONE_FIELD = "timezone"
ATTRIBUTES_FIELD = "attributes"
RECOGNISED_FIELDS = frozenset({*PHONE_FIELDS, CONSENT_FIELD, TIMEZONE_FIELD})
# Deeper than any attribute may nest (10) plus the row around it: only a
# hostile file nests further, and the whole file is refused.
MAX_JSON_DEPTH = 32
_READ_SIZE = 1 << 16
# A Firestore document holds at most 1 MiB, so no row is longer.
MAX_ROW_TEXT = 1 << 20
_SNIFF_BYTES = 64

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


class ImportFileError(ValueError):
    """The file as a whole cannot be read (no phone column, not UTF-8, …)."""


class NestedTooDeep(ImportFileError):
    """JSON nested deeper than any contact can be: a hostile file."""


class UnsupportedFormat(ValueError):
    """The Content-Type names a format that is not an import format."""


class RowError(ValueError):
    def __init__(self, reason: str, phone: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.phone = phone


Source = bytes | IO[bytes]
Record = tuple[int, "dict[str, Any] | str"]


def as_stream(source: Source) -> IO[bytes]:
    return io.BytesIO(source) if isinstance(source, bytes) else source


class _Prefixed(io.RawIOBase):
    """Bytes already read from a stream, then the rest of the stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def peek(source: Source, size: int = _SNIFF_BYTES) -> tuple[bytes, IO[bytes]]:
    """The first `size` bytes, and a stream that still starts with them."""
    stream = as_stream(source)
    head = stream.read(size)
    return head, io.BufferedReader(_Prefixed(head, stream), _READ_SIZE)


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


def _header_params(content_type: str) -> Message:
    message = Message()
    message["content-type"] = content_type
    return message


def sniff_format(head: bytes) -> ImportFormat:
    start = head[:_SNIFF_BYTES].lstrip(codecs.BOM_UTF8).lstrip()
    return ImportFormat.JSON if start[:1] in (b"[", b"{") else ImportFormat.CSV


def detect_format(head: bytes, content_type: str, filename: str = "") -> ImportFormat:
    """Content-Type decides; a generic type falls back to the name, then sniffing."""
    media = _header_params(content_type).get_content_type() if content_type else ""
    if media in CONTENT_TYPES:
        return CONTENT_TYPES[media]
    if content_type and media not in SNIFFED_CONTENT_TYPES:
        raise UnsupportedFormat(f"cannot import {media}: send CSV, JSON or NDJSON")
    suffix = filename[filename.rfind(".") :].lower() if "." in filename else ""
    return EXTENSIONS.get(suffix) or sniff_format(head)


def open_upload(
    source: Source, content_type: str, filename: str = ""
) -> tuple[ImportFormat, IO[bytes]]:
    """The format and a stream of the bytes to import."""
    head, stream = peek(source)
    return detect_format(head, content_type, filename), stream


# ---------------------------------------------------------------- parsing


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


def canonical_field(name: str) -> str:
    stripped = name.strip()
    return stripped.lower() if stripped.lower() in RECOGNISED_FIELDS else stripped


def _utf8_lines(stream: IO[bytes]) -> Iterator[str]:
    """Decoded lines (endings kept); invalid UTF-8 anywhere fails the file."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from text
    except UnicodeDecodeError as exc:
        raise ImportFileError("the file is not UTF-8 text") from exc


def _csv_header(lines: Iterator[str]) -> tuple[list[str], str]:
    """The column names and the delimiter (the commonest of , ; and tab)."""
    first = next(lines, "")
    delimiter = max(",;\t", key=first.count)
    names = [canonical_field(n) for n in next(csv.reader([first], delimiter=delimiter))]
    if not any(name in PHONE_FIELDS for name in names):
        raise ImportFileError("the CSV header has no 'phone' or 'phone_number' column")
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise ImportFileError(f"the CSV header repeats {', '.join(repeated)}")
    return names, delimiter


def csv_records(source: Source) -> Iterator[Record]:
    lines = _utf8_lines(as_stream(source))
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


def check_depth(value: Any) -> None:
    """Raise NestedTooDeep past MAX_JSON_DEPTH, without recursing."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise NestedTooDeep(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)


def decode_value(text: str, position: int = 0) -> tuple[Any, int]:
    """One JSON value from `text` at `position`, and where it ended."""
    try:
        value, end = _DECODER.raw_decode(text, position)
    except RecursionError as exc:
        raise NestedTooDeep("JSON nests too deeply to read") from exc
    check_depth(value)
    return value, end


def _as_fields(value: Any) -> dict[str, Any] | str:
    if not isinstance(value, dict):
        return "the row is not a JSON object"
    return {canonical_field(key): item for key, item in value.items()}


def ndjson_records(source: Source) -> Iterator[Record]:
    number = 0
    for raw in as_stream(source):
        line = raw.strip()
        if not line:
            continue
        number += 1
        try:
            yield number, _as_fields(decode_value(line.decode("utf-8-sig"))[0])
        except NestedTooDeep:
            raise
        except ValueError as exc:
            yield number, f"invalid JSON: {exc}"


class _TextWindow:
    """Decoded text of a stream with a read position, refilled as needed, so
    that a JSON array is decoded one element at a time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text = ""
        self.position = 0
        self.eof = False

    def fill(self) -> bool:
        """Read more text; False at the end of the stream."""
        if self.eof:
            return False
        data = self._stream.read(_READ_SIZE)
        self.eof = not data
        try:
            more = self._decoder.decode(data, final=self.eof)
        except UnicodeDecodeError as exc:
            raise ImportFileError("the file is not UTF-8 text") from exc
        # Drop what was consumed, so memory holds about one element.
        self.text = self.text[self.position :] + more
        self.position = 0
        return not self.eof or bool(more)

    def skip_space(self) -> str:
        """The next non-blank character ("" at the end), not consumed."""
        while True:
            self.position = _WHITESPACE.match(self.text, self.position).end()  # type: ignore[union-attr]
            if self.position < len(self.text) or not self.fill():
                return self.text[self.position : self.position + 1]

    def value(self) -> Any:
        """The JSON value at the position; a value cut by the window is read
        again with more text."""
        while True:
            try:
                value, self.position = decode_value(self.text, self.position)
                return value
            except NestedTooDeep:
                raise
            except ValueError:
                # Cut by the window: retry with more text. Past a row's
                # largest size the error is genuine, not a cut.
                if len(self.text) - self.position > MAX_ROW_TEXT or not self.fill():
                    raise


def json_records(source: Source) -> Iterator[Record]:
    """A JSON array (element by element), one object, NDJSON or objects one
    after another."""
    head, stream = peek(source, _READ_SIZE)
    start = head.lstrip(codecs.BOM_UTF8).lstrip()
    if start.startswith(b"["):
        window = _TextWindow(stream)
        window.skip_space()
        window.position += 1
        return _json_array(window)
    if not start.startswith(b"{"):
        raise ImportFileError("a JSON import is an array of objects or NDJSON")
    try:
        first_line = _DECODER.decode(start.split(b"\n", 1)[0].decode("utf-8"))
    except (ValueError, RecursionError):
        return _json_objects(_TextWindow(stream))
    if not isinstance(first_line, dict):
        return _json_objects(_TextWindow(stream))
    # The first line is a whole object: NDJSON, where a bad line is one bad row.
    return ndjson_records(stream)


def _row_at(window: _TextWindow, number: int) -> tuple[Record, bool]:
    """The row at the window's position, and whether the rows may go on."""
    try:
        value = window.value()
    except NestedTooDeep:
        raise
    except ValueError as exc:
        error = f"invalid JSON, the rest of the file was not read: {exc}"
        return (number, error), False
    return (number, _as_fields(value)), True


def _json_objects(window: _TextWindow) -> Iterator[Record]:
    number = 0
    while window.skip_space():
        number += 1
        record, more = _row_at(window, number)
        yield record
        if not more:
            return


def _json_array(window: _TextWindow) -> Iterator[Record]:
    number = 0
    if window.skip_space() == "]":
        return
    while True:
        number += 1
        record, more = _row_at(window, number)
        yield record
        if not more:
            return
        separator = window.skip_space()
        window.position += 1
        if separator == "]":
            return
        if separator != ",":
            yield number + 1, "invalid JSON: expected ',' or ']' after a row"
            return
        window.skip_space()


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
