"""Import parsing without I/O: formats, typing of CSV cells, rows, merging."""

from __future__ import annotations

from typing import Any

import pytest

from shared.audience.import_files import (
    Contact,
    ImportFileError,
    RowError,
    UnsupportedFormat,
    csv_records,
    detect_format,
    json_records,
    ndjson_records,
    parse_consent,
    parse_contact,
    typed_csv_value,
)
from shared.store.imports import ImportFormat
from shared.store.users import ConsentState


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("25", 25),
        (" -3 ", -3),
        ("0", 0),
        ("4.5", 4.5),
        ("-0.25", -0.25),
        ("007", "007"),
        ("00300", "00300"),
        ("+94771234567", "+94771234567"),
        ("1e5", "1e5"),
        ("1.", "1."),
        ("12345678901234567890", "12345678901234567890"),
        ("TRUE", True),
        ("false", False),
        ("yes", "yes"),
        ("2026-01-31", "2026-01-31"),
        ("25-34", "25-34"),
        ("", None),
        ("   ", None),
    ],
)
def test_csv_cells_are_typed_by_a_documented_rule(cell: str, value: Any) -> None:
    typed = typed_csv_value(cell)
    assert typed == value and type(typed) is type(value)


def test_csv_header_names_are_recognised_case_insensitively() -> None:
    rows = list(csv_records(b"Phone_Number,Name,CITY\n+94771234571,Ann,Kandy\n"))
    assert rows == [
        (1, {"phone_number": "+94771234571", "Name": "Ann", "CITY": "Kandy"})
    ]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_taken_from_the_header(delimiter: str) -> None:
    body = f"phone{delimiter}city\n+94771234571{delimiter}Kandy, Central\n".encode()
    if delimiter == ",":
        body = body.replace(b"Kandy, Central", b'"Kandy, Central"')
    assert list(csv_records(body))[0][1]["city"] == "Kandy, Central"


@pytest.mark.parametrize(
    "body",
    [b"", b"name\nAnn\n", b"phone,a,a\n1,2,3\n", b"phone\n\xc3\x28\n"],
)
def test_csv_file_level_problems(body: bytes) -> None:
    with pytest.raises(ImportFileError):
        list(csv_records(body))


def test_csv_rows_are_numbered_without_header_or_blank_lines() -> None:
    rows = list(csv_records(b"phone,a\n\n1,x\n \n2,y,z\n3\n"))
    assert [number for number, _ in rows] == [1, 2, 3]
    assert rows[1][1] == "row has 3 fields, the header 2"
    assert rows[2][1] == {"phone": "3"}


def test_json_array_is_streamed_and_checked() -> None:
    rows = list(json_records(b' [ {"phone": 1}, 2 , {"Phone": "x", "n": NaN} ] '))
    assert rows[0] == (1, {"phone": 1})
    assert rows[1] == (2, "the row is not a JSON object")
    assert rows[2][1].startswith("invalid JSON")  # NaN is not JSON
    assert list(json_records(b"[]")) == []
    with pytest.raises(ImportFileError):
        json_records(b'"text"')


def test_ndjson_lines_fail_one_by_one() -> None:
    rows = list(ndjson_records(b'{"phone": "1"}\n{oops\n\n[1]\n{"phone": "2"}'))
    assert [n for n, _ in rows] == [1, 2, 3, 4]
    assert rows[1][1].startswith("invalid JSON")
    assert rows[2][1] == "the row is not a JSON object"


@pytest.mark.parametrize(
    ("payload", "content_type", "filename", "expected"),
    [
        (b"phone", "text/csv; charset=utf-8", "", ImportFormat.CSV),
        (b"[]", "application/json", "", ImportFormat.JSON),
        (b"{}", "application/x-ndjson", "", ImportFormat.NDJSON),
        (b"[]", "text/plain", "", ImportFormat.JSON),
        (b"phone", "application/octet-stream", "", ImportFormat.CSV),
        (b"{}", "", "", ImportFormat.JSON),
        (b"{}", "application/octet-stream", "a.jsonl", ImportFormat.NDJSON),
        (b"[]", "", "a.CSV", ImportFormat.CSV),
    ],
)
def test_content_type_decides_then_name_then_sniffing(
    payload: bytes, content_type: str, filename: str, expected: ImportFormat
) -> None:
    assert detect_format(payload, content_type, filename) == expected


def test_other_media_types_are_unsupported() -> None:
    with pytest.raises(UnsupportedFormat):
        detect_format(b"x", "application/pdf")


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("OPT_IN", ConsentState.OPT_IN),
        ("opt-in", ConsentState.OPT_IN),
        ("Opted Out", ConsentState.OPT_OUT),
        ("PENDING", ConsentState.OPT_OUT),
        ("stop", ConsentState.STOP),
        ("", None),
        (None, None),
    ],
)
def test_consent_spellings(raw: Any, state: ConsentState | None) -> None:
    assert parse_consent(raw) == state


def test_unknown_consent_is_a_row_error() -> None:
    with pytest.raises(RowError):
        parse_consent("MAYBE")


def test_a_contact_takes_its_fields_and_keeps_the_rest_as_attributes() -> None:
    contact = parse_contact(
        3,
        {
            "phone_number": "whatsapp:+94 77 123 4571",
            "consent_state": "STOP",
            "timezone": "Asia/Colombo",
            "attributes": {"tier": "gold", "city": "old"},
            "city": "Kandy",
            "empty": "",
            "none": None,
        },
        "US",
    )
    assert contact == Contact(
        phone="+94771234571",
        row=3,
        attributes={"tier": "gold", "city": "Kandy"},
        timezone="Asia/Colombo",
        consent=ConsentState.STOP,
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": "x"}, "phone is missing"),
        ({"phone": "123"}, "not a valid phone number"),
        ({"phone": "+94771234571", "timezone": "Asia/Nowhere"}, "timezone"),
        ({"phone": "+94771234571", "a.b": 1}, "contains '.'"),
        ({"phone": "+94771234571", "attributes": [1]}, "'attributes' must be"),
    ],
)
def test_bad_rows_say_why(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(RowError) as error:
        parse_contact(1, fields, "US")
    assert reason in error.value.reason


def test_a_later_row_wins_key_by_key() -> None:
    first = Contact("+1", 1, {"a": 1, "b": 1}, "UTC", ConsentState.OPT_IN)
    first.merge(Contact("+1", 4, {"b": 2, "c": 2}, None, None))
    assert first == Contact(
        "+1", 4, {"a": 1, "b": 2, "c": 2}, "UTC", ConsentState.OPT_IN
    )


# ---------------------------------------------------------------- streaming


def test_a_json_array_is_read_across_small_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import json

    from shared.audience import import_files

    monkeypatch.setattr(import_files, "_READ_SIZE", 5)
    rows = [
        {"phone": f"+1415555{i:04d}", "note": "é, [ok]" * (i % 3)} for i in range(40)
    ]
    records = list(json_records(io.BytesIO(json.dumps(rows, indent=1).encode())))
    assert records == [(i + 1, row) for i, row in enumerate(rows)]
    broken = b'[{"phone": "1"}, {"phone": ' + b" " * 50 + b"}, {}]"
    numbered = list(json_records(io.BytesIO(broken)))
    assert numbered[0] == (1, {"phone": "1"})
    assert numbered[1][0] == 2 and numbered[1][1].startswith("invalid JSON")


def test_pretty_objects_one_after_another_are_rows() -> None:
    body = b'{\n "phone": "1"\n}\n{\n "phone": "2"\n}\n'
    assert [fields for _, fields in json_records(body)] == [
        {"phone": "1"},
        {"phone": "2"},
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'[{"phone": "1", "a": ' + b"[" * 40 + b"]" * 40 + b"}]",
        b'{"phone": "1"}\n{"a": ' + b"[" * 40 + b"]" * 40 + b"}\n",
    ],
)
def test_json_nested_past_the_limit_fails_the_file(body: bytes) -> None:
    from shared.audience.import_files import NestedTooDeep

    with pytest.raises(NestedTooDeep):
        list(json_records(body))


def test_invalid_utf8_late_in_a_csv_fails_the_file() -> None:
    body = b"phone\n" + b"+14155550100\n" * 20_000 + b"\xff\n"
    with pytest.raises(ImportFileError, match="UTF-8"):
        list(csv_records(body))


def test_valid_rows_keep_one_entry_per_phone_and_chunks_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime

    from shared.audience import imports

    rows = imports.ContactRows()
    for number in range(1, 8):
        rows.add(Contact(f"+1415555010{number}", number, {"n": number}))
    rows.add(Contact("+14155550102", 8, {"later": True}, None, ConsentState.STOP))
    assert (len(rows), rows.duplicates) == (7, 1)
    monkeypatch.setattr(imports, "CHUNK_ROWS", 3)
    chunks = list(rows.chunks("imp", datetime(2026, 11, 26, tzinfo=UTC)))
    assert [len(chunk.rows) for chunk in chunks] == [3, 3, 1]
    merged = chunks[0].rows[1]
    assert (merged.phone, merged.row, merged.consent) == ("+14155550102", 8, "STOP")
    assert merged.attributes == {"n": 2, "later": True}
    monkeypatch.setattr(imports, "CHUNK_BYTES", 200)  # about two rows
    bounds = rows.chunk_bounds()
    assert [start for start, _ in bounds[1:]] == [end for _, end in bounds[:-1]]
    assert (bounds[0][0], bounds[-1][1]) == (0, 7)
    for start, end in bounds:
        sizes = [len(row) + 1 for row in rows.encoded.values()]
        assert sum(sizes[start:end]) <= 200
    assert 3 <= len(bounds) <= 4


def test_report_phones_are_masked() -> None:
    from shared.audience.imports import masked

    assert masked("+94771234571") == "+9477***4571"
    assert masked("whatsapp:0771234571") == "whatsapp:0771***4571"
    assert masked("12345") == "12345"
