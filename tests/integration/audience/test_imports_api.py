"""Imports on the Firestore emulator: formats, upserts, consent, the report."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from shared.audience import imports
from shared.audience.import_chunks import import_chunk
from shared.payloads import ImportChunk

pytestmark = pytest.mark.integration

# The seed system's sample files, when ../shared sits beside the repository
# (or SEED_SAMPLES_DIR names them). Only this test reads them; a clone alone
# skips it. The demo's own contacts live in local/demo_data/.
SEED_SAMPLES = Path(
    os.environ.get(
        "SEED_SAMPLES_DIR",
        Path(__file__).resolve().parents[3].parent / "shared/data/seed-samples",
    )
)


def upload(api: Any, body: bytes | str, content_type: str = "text/csv") -> Any:
    raw = body.encode() if isinstance(body, str) else body
    return api("POST", "/v1/imports", body=raw, headers={"Content-Type": content_type})


def published_chunks(api: Any) -> list[ImportChunk]:
    """The chunks the API published since the last call, as the importer gets
    them (through JSON, as Pub/Sub carries them)."""
    published = api.context.publisher.published
    chunks = [p for topic, p, _ in published if topic == "import-chunks"]
    published[:] = [entry for entry in published if entry[0] != "import-chunks"]
    return [ImportChunk.model_validate_json(c.model_dump_json()) for c in chunks]


def run_importer(api: Any, chunks: list[ImportChunk] | None = None) -> None:
    for chunk in published_chunks(api) if chunks is None else chunks:
        import_chunk(api.context.db, chunk, api.context.clock())


def imported(api: Any, body: bytes | str, content_type: str = "text/csv") -> Any:
    """Upload, let contact_importer take every chunk, return the final report."""
    response = upload(api, body, content_type)
    assert response.status == 202, response.body
    assert response.body["status"] in ("RUNNING", "COMPLETED")
    run_importer(api)
    report = api("GET", f"/v1/imports/{response.body['id']}")
    assert report.status == 200, report.body
    assert report.body["status"] == "COMPLETED", report.body
    assert report.body["chunks_done"] == report.body["chunks_planned"]
    return report.body


def counts(report: dict[str, Any]) -> dict[str, int]:
    keys = ("total", "created", "updated", "duplicates", "invalid", "failed")
    return {key: report[key] for key in keys}


def user(api: Any, phone: str) -> dict[str, Any]:
    response = api("GET", f"/v1/users/{phone}")
    assert response.status == 200, response.body
    return response.body


def consent_history(api: Any, phone: str) -> list[dict[str, Any]]:
    return api("GET", f"/v1/users/{phone}/consent").body["items"]


# Each seed file, imported in this order into one database.
SEED_EXPECTED = [
    ("demo_users.json", {"total": 4, "created": 4, "updated": 0, "invalid": 0}),
    ("test_users.csv", {"total": 5, "created": 5, "updated": 0, "invalid": 0}),
    ("test_users.json", {"total": 4, "created": 3, "updated": 1, "invalid": 0}),
    ("users_batch_1.json", {"total": 8, "created": 4, "updated": 2, "invalid": 2}),
    ("users_batch_2.csv", {"total": 15, "created": 10, "updated": 0, "invalid": 5}),
    ("users_batch_3.json", {"total": 3, "created": 3, "updated": 0, "invalid": 0}),
]


@pytest.mark.skipif(not SEED_SAMPLES.is_dir(), reason="seed samples not present")
def test_every_seed_sample_loads_as_it_is(api: Any, db: Any) -> None:
    files = sorted(p.name for p in SEED_SAMPLES.glob("*") if p.suffix != ".md")
    assert files == [name for name, _ in SEED_EXPECTED]
    for name, expected in SEED_EXPECTED:
        report = imported(
            api, (SEED_SAMPLES / name).read_bytes(), "application/octet-stream"
        )
        assert {k: report[k] for k in expected} == expected, (name, report)
        assert report["duplicates"] == report["failed"] == 0
        assert all(e["error"] == "not a valid phone number" for e in report["errors"])
    assert len(list(db.collection("users").stream())) == 29
    carol = user(api, "+94771234573")  # "whatsapp:+94771234573" in the CSV
    assert carol["attributes"] == {"name": "Carol Brown", "city": "Galle", "age": 28}
    assert carol["consent"]["state"] == "OPT_OUT"
    pending = user(api, "+94782222222")
    assert pending["consent"]["state"] == "OPT_OUT"
    assert pending["timezone"] == "Asia/Colombo"
    assert user(api, "+94781111111")["consent"]["state"] == "STOP"
    adults = api(
        "POST",
        "/v1/segments/preview",
        json={"definition": {"attribute": "age", "operator": "gte", "value": 30}},
    )
    assert adults.body["count"] == 4  # 30, 35, 40 and 40 from CSV and JSON


DEMO_DATA = Path(__file__).resolve().parents[3] / "local" / "demo_data"
DEMO_CONTENT_TYPES = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
}
# What `make demo` imports (local/demo_data/README.md), in name order.
DEMO_EXPECTED = [
    (
        "1_customers.csv",
        {"total": 10, "created": 7, "updated": 0, "duplicates": 1, "invalid": 2},
    ),
    (
        "2_app_signups.json",
        {"total": 7, "created": 5, "updated": 1, "duplicates": 0, "invalid": 1},
    ),
    (
        "3_event_leads.ndjson",
        {"total": 3, "created": 2, "updated": 1, "duplicates": 0, "invalid": 0},
    ),
]


def test_demo_contacts_cover_what_contact_files_hold(api: Any, db: Any) -> None:
    from local import demo

    assert demo.SAMPLES == DEMO_DATA and demo.CONTENT_TYPES == DEMO_CONTENT_TYPES
    files = sorted(p.name for p in DEMO_DATA.iterdir() if p.suffix != ".md")
    assert files == [name for name, _ in DEMO_EXPECTED]
    reports = {}
    for name, expected in DEMO_EXPECTED:
        path = DEMO_DATA / name
        reports[name] = imported(
            api, path.read_bytes(), DEMO_CONTENT_TYPES[path.suffix]
        )
        assert {k: reports[name][k] for k in expected} == expected, reports[name]
    # Invalid: a Sri Lankan national number under DEFAULT_REGION=US, a short
    # number, and a row without a number.
    assert [e["row"] for e in reports["1_customers.csv"]["errors"]] == [8, 9]
    assert [e["row"] for e in reports["2_app_signups.json"]["errors"]] == [7]
    assert len(list(db.collection("users").stream())) == 14
    # National format, channel prefixes, spaces: all stored as E.164.
    assert user(api, "+14155550134")["attributes"]["name"] == "Megan Ortiz"
    assert user(api, "+94772123403")["attributes"]["name"] == "Kavindu Herath"
    assert user(api, "+94772123404")["attributes"]["city"] == "Matara"
    # The later duplicate row wins; a later file updates.
    assert user(api, "+94772123401")["attributes"]["age"] == 35
    assert user(api, "+94772123402")["attributes"]["city"] == "Nuwara Eliya"
    # PENDING is not consent; an import never lifts a STOP.
    assert user(api, "+94772123410")["consent"]["state"] == "OPT_OUT"
    assert user(api, "+94772123406")["consent"]["state"] == "STOP"
    lk = api(
        "POST",
        "/v1/segments/preview",
        json={
            "definition": {"attribute": "country", "operator": "equals", "value": "LK"}
        },
    )
    assert (lk.body["count"], lk.body["eligible"]) == (12, 9)


def test_csv_cells_are_typed_and_recognised_columns_are_fields(api: Any) -> None:
    report = imported(
        api,
        "Phone,name,age,score,zip,vip,joined,Consent_State,timezone,note\n"
        "+94771234571,Ann,25,4.5,00300,TRUE,2026-01-31,opt-in,Asia/Colombo,\n",
    )
    assert counts(report) == {
        "total": 1,
        "created": 1,
        "updated": 0,
        "duplicates": 0,
        "invalid": 0,
        "failed": 0,
    }
    body = user(api, "+94771234571")
    assert body["attributes"] == {
        "name": "Ann",
        "age": 25,
        "score": 4.5,
        "zip": "00300",
        "vip": True,
        "joined": "2026-01-31",
    }
    assert body["timezone"] == "Asia/Colombo"
    events = consent_history(api, "+94771234571")
    assert [(e["to"], e["source"]) for e in events] == [("OPT_IN", "import")]
    assert events[0]["evidence"] == f"import {report['id']} row 1"


def test_bad_rows_are_reported_while_good_rows_load(api: Any) -> None:
    report = imported(
        api,
        "phone_number;name;consent_state;timezone\n"
        "+94771234571;Ann;OPT_IN;\n"
        "12345;Bob;;\n"
        ";Nobody;;\n"
        "+94771234572;Cid;MAYBE;\n"
        "+94771234573;Dan;;Mars/Base\n"
        "+94771234574;Eve;;;extra\n"
        "\n"
        "+94771234575;Fay;STOP;UTC\n",
    )
    assert (report["total"], report["created"], report["invalid"]) == (7, 2, 5)
    # Phones in the report are masked, as in logs.
    assert [(e["row"], e["phone"]) for e in report["errors"]] == [
        (2, "12345"),
        (3, None),
        (4, "+9477***4572"),
        (5, "+9477***4573"),
        (6, None),
    ]
    assert "consent_state" in report["errors"][2]["error"]
    assert "timezone" in report["errors"][3]["error"]
    assert user(api, "+94771234575")["consent"]["state"] == "STOP"


def test_duplicates_are_merged_last_wins_and_counted(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of two rows: a later row is merged into its phone's earlier
    # chunk, so that each phone is written by one chunk only.
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    rows = [
        {"phone": "+94771234571", "city": "Kandy", "tier": "gold"},
        {"phone": "whatsapp:+94771234571", "city": "Galle"},
        {"phone": "+94771234572", "city": "Jaffna"},
        {"phone": "+94771234573", "city": "Matara"},
        {"phone": "+94771234574", "city": "Negombo"},
        {"phone": "0771234571", "city": "Colombo", "consent_state": "OPT_OUT"},
    ]
    ndjson = "\n".join(json.dumps(r) for r in rows)
    api.context.core = api.context.core.model_copy(update={"default_region": "LK"})
    report = imported(api, ndjson, "application/x-ndjson")
    assert counts(report) == {
        "total": 6,
        "created": 4,
        "updated": 0,
        "duplicates": 2,
        "invalid": 0,
        "failed": 0,
    }
    merged = user(api, "+94771234571")
    assert merged["attributes"] == {"city": "Colombo", "tier": "gold"}
    assert merged["consent"]["state"] == "OPT_OUT"
    assert [e["to"] for e in consent_history(api, "+94771234571")] == ["OPT_OUT"]


def test_an_import_never_overrides_stop_but_records_other_changes(
    api: Any, clock: Any
) -> None:
    from datetime import timedelta

    for phone, state in (("+94771234571", "STOP"), ("+94771234572", "OPT_OUT")):
        created = api(
            "POST",
            "/v1/users",
            json={"phone": phone, "consent_state": state, "attributes": {"a": 1}},
        )
        assert created.status == 201
    api("POST", "/v1/users", json={"phone": "+94771234573"})
    clock.now += timedelta(hours=1)
    report = imported(
        api,
        json.dumps(
            [
                {"phone_number": "+94771234571", "consent_state": "OPT_IN", "b": 2},
                {"phone_number": "+94771234572", "consent_state": "OPT_IN"},
                {"phone_number": "+94771234573", "name": "No consent column"},
            ]
        ),
        "application/json",
    )
    assert (report["created"], report["updated"]) == (0, 3)
    stopped = user(api, "+94771234571")
    assert stopped["consent"]["state"] == "STOP"
    assert stopped["attributes"] == {"a": 1, "b": 2}
    assert [e["to"] for e in consent_history(api, "+94771234571")] == ["STOP"]
    back_in = consent_history(api, "+94771234572")
    assert [(e["to"], e["source"]) for e in back_in] == [
        ("OPT_IN", "import"),
        ("OPT_OUT", "api"),
    ]
    assert user(api, "+94771234573")["consent"]["state"] == "OPT_IN"
    assert len(consent_history(api, "+94771234573")) == 1


def test_an_erased_number_is_restored_without_losing_its_opt_out(api: Any) -> None:
    phone = "+94771234571"
    api("POST", "/v1/users", json={"phone": phone, "consent_state": "STOP"})
    assert api("DELETE", f"/v1/users/{phone}").status == 200
    report = imported(api, f"phone,consent_state,name\n{phone},OPT_IN,Ann\n")
    assert report["created"] == 1
    restored = user(api, phone)
    assert restored["consent"]["state"] == "STOP"
    assert restored["suppressed"] is False
    assert restored["attributes"] == {"name": "Ann"}
    # Again within a larger fresh list (its first write attempt reads nothing).
    api("DELETE", f"/v1/users/{phone}")
    big = "".join(f"+9477123{n:04d},OPT_IN,X\n" for n in range(300, 560))
    again = imported(api, f"phone,consent_state,name\n{phone},OPT_IN,Ann\n{big}")
    assert again["created"] == 261
    assert user(api, phone)["consent"]["state"] == "STOP"


@pytest.mark.parametrize("part_rows", [2, 200])
def test_erased_numbers_keep_their_opt_out_whether_parts_are_small_or_large(
    api: Any, monkeypatch: pytest.MonkeyPatch, part_rows: int
) -> None:
    # Parts of 2 rows meet more suppression entries than phones (their own
    # entries are read); parts of 200, fewer (every entry is read).
    from shared.audience import import_chunks

    monkeypatch.setattr(import_chunks, "PART_ROWS", part_rows)
    erased = ["+94771234571", "+94771234572", "+94771234573"]
    for phone in erased:
        api("POST", "/v1/users", json={"phone": phone, "consent_state": "STOP"})
        assert api("DELETE", f"/v1/users/{phone}").status == 200
    fresh = ["+94771234581", "+94771234582", "+94771234583"]
    rows = [erased[0], fresh[0], fresh[1], erased[2], fresh[2]]
    report = imported(
        api, "phone,consent_state\n" + "".join(f"{p},OPT_IN\n" for p in rows)
    )
    assert (report["created"], report["failed"]) == (5, 0)
    for phone in (erased[0], erased[2]):
        assert user(api, phone)["consent"]["state"] == "STOP"
    for phone in fresh:
        assert user(api, phone)["consent"]["state"] == "OPT_IN"


MULTIPART = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="note"\r\n\r\n'
    b"ignored\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="file"; filename="contacts.csv"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
    b"phone,name\r\n+94771234571,Ann\r\n+94771234572,Bob\r\n"
    b"\r\n--XyZ--\r\n"
)


@pytest.mark.parametrize(
    ("body", "content_type", "format_"),
    [
        (MULTIPART, "multipart/form-data; boundary=XyZ", "csv"),
        (
            b"\xef\xbb\xbfphone\n+94771234571\n+94771234572\n",
            "text/plain; charset=utf-8",
            "csv",
        ),
        (
            b'  [{"phone": "+94771234571"}, {"phone": "+94771234572"}]',
            "application/octet-stream",
            "json",
        ),
        (
            b'{"phone": "+94771234571"}\n\n{"phone": "+94771234572"}\n',
            "application/json",
            "ndjson",
        ),
        (b'{"phone": "+94771234571"}\n{"phone": "+94771234572"}', "", "json"),
    ],
)
def test_every_format_loads(
    api: Any, body: bytes, content_type: str, format_: str
) -> None:
    report = imported(api, body, content_type)
    assert (report["total"], report["created"]) == (2, 2), report
    assert report["format"] in (format_, "json")


def test_one_json_object_is_one_row(api: Any) -> None:
    report = imported(
        api, b'{\n  "phone": "+94771234571",\n  "age": 3\n}\n', "application/json"
    )
    assert (report["total"], report["created"]) == (1, 1)


def test_broken_json_reports_where_it_stopped(api: Any) -> None:
    report = imported(
        api, b'[{"phone": "+94771234571"}, {"phone": }, {}]', "application/json"
    )
    assert (report["total"], report["created"], report["invalid"]) == (2, 1, 1)
    assert report["errors"][0]["row"] == 2


def test_file_level_problems_write_nothing(api: Any, db: Any) -> None:
    cases = [
        (b"name,city\nAnn,Kandy\n", "text/csv", 422),
        (b"phone,phone\n+94771234571,+94771234571\n", "text/csv", 422),
        (b"phone\n\xff\xfe\n", "text/csv", 422),
        (b'"just a string"', "application/json", 422),
        (b"\x89PNG", "image/png", 415),
        (b"--a\r\n\r\n--a--", "multipart/form-data; boundary=a", 422),
        (b"   ", "text/csv", 400),
    ]
    for body, content_type, status in cases:
        response = upload(api, body, content_type)
        assert response.status == status, (body, response.body)
        assert set(response.body["error"]) == {"code", "message", "details"}
    assert list(db.collection("users").stream()) == []
    assert list(db.collection("imports").stream()) == []


def test_an_oversize_upload_is_413(api: Any, db: Any) -> None:
    api.context.api = api.context.api.model_copy(update={"max_upload_bytes": 64})
    body = "phone\n" + "+94771234571\n" * 10
    response = upload(api, body)
    assert response.status == 413
    assert response.body["error"]["code"] == "payload_too_large"
    assert list(db.collection("users").stream()) == []


def test_the_report_is_stored_with_errors_capped(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "MAX_REPORTED_ERRORS", 3)
    body = "phone\n" + "bad\n" * 5 + "+94771234571\n"
    accepted = upload(api, body)
    assert accepted.status == 202
    assert {k: accepted.body[k] for k in ("status", "total", "invalid")} == {
        "status": "RUNNING",
        "total": 6,
        "invalid": 5,
    }
    run_importer(api)
    report = api("GET", f"/v1/imports/{accepted.body['id']}").body
    assert (report["invalid"], len(report["errors"]), report["errors_omitted"]) == (
        5,
        3,
        2,
    )
    stored = api("GET", f"/v1/imports/{report['id']}")
    assert stored.status == 200
    assert stored.body == report
    assert stored.body["status"] == "COMPLETED"
    assert api("GET", "/v1/imports/nope").status == 404


def test_many_chunks_in_flight(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 3)
    phones = [f"+1415555{n:04d}" for n in range(100, 140)]
    rows = "".join(f"{p},{i}\n" for i, p in enumerate(phones))
    report = imported(api, "phone,n\n" + rows)
    assert (report["total"], report["created"]) == (40, 40)
    assert len(list(db.collection("users").stream())) == 40
    again = imported(api, "phone,n\n" + rows.replace(",", ",1"))
    assert (again["created"], again["updated"]) == (0, 40)
    assert user(api, phones[7])["attributes"] == {"n": 17}


def test_a_stop_arriving_during_the_import_wins(api: Any, db: Any, clock: Any) -> None:
    from shared.audience.consent import set_consent
    from shared.store.users import ConsentState

    phone = "+94771234571"
    api("POST", "/v1/users", json={"phone": phone, "consent_state": "OPT_OUT"})
    read = db.get_all

    def read_then_stop(*args: Any, **kwargs: Any) -> Any:
        snapshots = list(read(*args, **kwargs))
        if db.get_all is read_then_stop:
            db.get_all = read  # only the first read races with the STOP
            set_consent(db, phone, ConsentState.STOP, source="keyword", now=clock())
        return snapshots

    db.get_all = read_then_stop
    report = imported(api, f"phone,consent_state\n{phone},OPT_IN\n")
    assert (report["updated"], report["failed"]) == (1, 0)
    assert user(api, phone)["consent"]["state"] == "STOP"


# ---------------------------------------------------------------- asynchronous


def report_of(api: Any, import_id: str) -> dict[str, Any]:
    response = api("GET", f"/v1/imports/{import_id}")
    assert response.status == 200, response.body
    return response.body


def csv_of(phones: list[str]) -> str:
    return "phone,n\n" + "".join(f"{p},{i}\n" for i, p in enumerate(phones))


PHONES = [f"+1415555{n:04d}" for n in range(100, 140)]


def test_the_api_answers_202_at_once_and_the_report_shows_progress(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 3)
    response = upload(api, csv_of(PHONES[:8]) + "bad,1\n")
    assert response.status == 202, response.body
    assert response.headers["Location"] == f"/v1/imports/{response.body['id']}"
    accepted = response.body
    assert {k: accepted[k] for k in ("status", "total", "invalid", "chunks_done")} == {
        "status": "RUNNING",
        "total": 9,
        "invalid": 1,
        "chunks_done": 0,
    }
    assert accepted["chunks_planned"] == 3
    # Nothing is upserted by the API itself: contact_importer does it.
    assert list(db.collection("users").stream()) == []
    chunks = published_chunks(api)
    assert [len(c.rows) for c in chunks] == [3, 3, 2]
    assert [c.chunk_no for c in chunks] == [0, 1, 2]
    assert {r.phone for c in chunks for r in c.rows} == set(PHONES[:8])
    run_importer(api, chunks[:1])
    partway = report_of(api, accepted["id"])
    assert (partway["status"], partway["chunks_done"], partway["created"]) == (
        "RUNNING",
        1,
        3,
    )
    assert partway["errors"] == [{"row": 9, "phone": "bad", "error": ANY_TEXT}]
    run_importer(api, chunks[1:])
    done = report_of(api, accepted["id"])
    assert (done["status"], done["chunks_done"], done["created"]) == (
        "COMPLETED",
        3,
        8,
    )
    assert done["finished_at"] is not None
    assert len(list(db.collection("users").stream())) == 8


class _AnyText(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __hash__(self) -> int:
        return 0


ANY_TEXT = _AnyText()


def test_a_file_without_valid_rows_is_completed_at_once(api: Any) -> None:
    response = upload(api, "phone\nnope\n")
    assert response.status == 202
    assert (response.body["status"], response.body["chunks_planned"]) == (
        "COMPLETED",
        0,
    )
    assert published_chunks(api) == []


def test_a_redelivered_chunk_counts_once(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 4)
    accepted = upload(api, csv_of(PHONES[:10])).body
    chunks = published_chunks(api)
    run_importer(api, chunks)
    once = report_of(api, accepted["id"])
    run_importer(api, [chunks[0], chunks[2], chunks[0]])
    again = report_of(api, accepted["id"])
    assert again == once
    assert (again["created"], again["updated"], again["chunks_done"]) == (10, 0, 3)
    assert len(consent_history(api, PHONES[0])) == 1


def test_a_chunk_cut_short_resumes_and_counts_each_row_once(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.audience import import_chunks

    monkeypatch.setattr(import_chunks, "PART_ROWS", 2)
    write = import_chunks.write_contacts
    crashed: list[int] = []

    def crash_on_the_second_part(*args: Any, **kwargs: Any) -> Any:
        part = args[5] if len(args) > 5 else kwargs.get("part")
        if part is not None and part.part_no == 1 and not crashed:
            crashed.append(part.part_no)
            raise RuntimeError("the instance went away")
        return write(*args, **kwargs)

    monkeypatch.setattr(import_chunks, "write_contacts", crash_on_the_second_part)
    accepted = upload(api, csv_of(PHONES[:6])).body
    chunks = published_chunks(api)
    assert len(chunks) == 1
    with pytest.raises(RuntimeError):
        run_importer(api, chunks)
    cut = report_of(api, accepted["id"])
    assert (cut["status"], cut["chunks_done"], cut["created"]) == ("RUNNING", 0, 0)
    assert 2 <= len(list(db.collection("users").stream())) < 6
    run_importer(api, chunks)  # Pub/Sub delivers it again
    done = report_of(api, accepted["id"])
    assert (done["status"], done["created"], done["updated"]) == ("COMPLETED", 6, 0)
    assert len(list(db.collection("users").stream())) == 6


def test_chunks_counted_at_the_same_moment_all_count(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from shared.audience import import_chunks

    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    accepted = upload(api, csv_of(PHONES[:16])).body
    chunks = published_chunks(api)
    assert len(chunks) == 8
    # Every chunk reaches the report update at the same moment, then every
    # one tries to complete it: the increments and the completion must hold.
    together = threading.Barrier(len(chunks), timeout=60)
    count_once = import_chunks._count_once

    def counted_together(*args: Any) -> None:
        together.wait()
        count_once(*args)

    monkeypatch.setattr(import_chunks, "_count_once", counted_together)
    with ThreadPoolExecutor(len(chunks)) as pool:
        list(pool.map(lambda c: run_importer(api, [c]), chunks))
    done = report_of(api, accepted["id"])
    assert (done["status"], done["chunks_done"], done["created"]) == (
        "COMPLETED",
        8,
        16,
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (nested(100_000), "application/json"),
        (nested(900), "application/json"),
        (f'[{{"phone": "{PHONES[0]}"}}, {nested(900)}]', "application/json"),
        (
            f'{{"phone": "{PHONES[0]}"}}\n{{"phone": "1", "a": {nested(900)}}}',
            "application/x-ndjson",
        ),
        (f'{{"phone": "{PHONES[0]}", "a": {nested(100_000)}}}', ""),
    ],
)
def test_over_deep_json_is_a_400_and_writes_nothing(
    api: Any, db: Any, body: str, content_type: str
) -> None:
    response = upload(api, body, content_type)
    assert response.status == 400, response.body
    assert response.body["error"]["code"] == "nested_too_deep"
    assert published_chunks(api) == []
    assert list(db.collection("imports").stream()) == []


def test_a_file_broken_late_writes_nothing(api: Any, db: Any) -> None:
    body = csv_of([f"+1415555{n:04d}" for n in range(5000)]).encode() + b"\xff\n"
    response = upload(api, body)
    assert response.status == 422, response.body
    assert published_chunks(api) == []
    assert list(db.collection("imports").stream()) == []


class _Unreadable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the body was read")


class _EndlessCsv(io.RawIOBase):
    """A body with no end, as a client streaming without Content-Length."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = (b"phone\n" if not self.served else b"") + b"+14155550100\n" * 100
        data = data[: len(buffer)]
        buffer[: len(data)] = data
        self.served += len(data)
        return len(data)


def streamed(api: Any, stream: Any, headers: dict[str, str]) -> Any:
    from shared.api.app import handle_request
    from shared.api.http import ApiRequest

    request = ApiRequest(
        "POST",
        "/v1/imports",
        headers={"Authorization": "Bearer test-key", **headers},
        stream=stream,
    )
    return handle_request(request, api.context)


def test_a_declared_length_over_the_limit_is_413_before_reading(
    api: Any, db: Any
) -> None:
    limit = api.context.api.max_upload_bytes
    assert limit == 32 * 1024 * 1024  # what Cloud Functions accepts
    response = streamed(
        api,
        _Unreadable(),
        {"Content-Type": "text/csv", "Content-Length": str(limit + 1)},
    )
    assert response.status == 413, response.body
    assert response.body["error"]["code"] == "payload_too_large"
    assert list(db.collection("imports").stream()) == []


def test_a_body_without_length_is_cut_at_the_limit(api: Any, db: Any) -> None:
    api.context.api = api.context.api.model_copy(update={"max_upload_bytes": 100_000})
    body = _EndlessCsv()
    response = streamed(api, body, {"Content-Type": "text/csv"})
    assert response.status == 413, response.body
    assert body.served <= 100_000 + 70_000  # the limit and one read
    assert published_chunks(api) == []
    assert list(db.collection("imports").stream()) == []


def test_a_streamed_body_within_the_limit_imports(api: Any) -> None:
    body = csv_of(PHONES[:5]).encode()
    response = streamed(
        api,
        io.BufferedReader(io.BytesIO(body)),
        {"Content-Type": "text/csv", "Content-Length": str(len(body))},
    )
    assert response.status == 202, response.body
    run_importer(api)
    assert report_of(api, response.body["id"])["created"] == 5


def test_a_failed_publish_fails_the_report(api: Any, db: Any) -> None:
    class DownPublisher:
        def publish(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("Pub/Sub is down")

        publish_many = publish

    api.context.publisher = DownPublisher()
    response = upload(api, csv_of(PHONES[:3]))
    assert response.status == 503, response.body
    (stored,) = [s.to_dict() for s in db.collection("imports").stream()]
    assert stored["status"] == "FAILED"
    assert "send the file again" in stored["reason"]


def test_the_importer_entry_point_takes_a_pubsub_push(api: Any, db: Any) -> None:
    from tests.unit.functions.test_webhook_functions import load_function, pubsub_event

    accepted = upload(api, csv_of(PHONES[:3])).body
    (chunk,) = published_chunks(api)
    function = load_function("contact_importer")
    function.contact_importer(pubsub_event("import-chunks", chunk))
    assert report_of(api, accepted["id"])["status"] == "COMPLETED"
    assert user(api, PHONES[2])["attributes"] == {"n": 2}
