"""The operator CLI against a fake of the public API on a loopback server."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from local.cli import (
    ApiClient,
    CliError,
    ImportWait,
    Watch,
    csv_records,
    import_users,
    main,
    progress_bar,
    watch_campaign,
)

API_KEY = "cli-test-key"
SUMMARY_PATH = re.compile(r"^/v1/campaigns/(\w+)/summary$")


def make_summary(status: str = "RUNNING", **overrides: Any) -> dict[str, Any]:
    counts = dict.fromkeys(
        ("QUEUED", "SENDING", "SENT", "UNDELIVERED", "FAILED", "DELIVERED", "READ"), 0
    )
    counts.update({"DELIVERED": 6, "FAILED": 1, "QUEUED": 2, "SKIPPED": 1})
    summary = {
        "campaign_id": "c1",
        "name": "Black Friday",
        "status": status,
        "planned": 10,
        "targeted": 10,
        "counts": counts,
        "skips": {"no_consent": 1},
        "sent": 7,
        "delivered": 6,
        "delivery_rate": 0.8571,
        "failures": [
            {"code": "30003", "meaning": "Unreachable destination handset", "count": 1}
        ],
        "opt_outs": {"count": 1, "rate": 0.1429, "by_source": {"keyword": 1}},
        "total_segments": 9,
        "first_sent_at": "2026-11-26T14:00:00Z",
        "last_sent_at": "2026-11-26T14:03:00Z",
        "throughput_per_minute": 2.33,
        "computed_at": "2026-11-26T15:00:00Z",
        "frozen": status == "COMPLETED",
    }
    summary.update(overrides)
    return summary


@dataclass
class FakeApi:
    """The few routes the CLI uses, with canned answers and a request log."""

    summaries: list[dict[str, Any]] = field(default_factory=list)
    imports: list[tuple[str, bytes]] = field(default_factory=list)
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)

    def answer(self, method: str, path: str, body: bytes, ctype: str) -> Any:
        self.paths.append(f"{method} {path}")
        if method == "GET" and path.startswith("/v1/campaigns?"):
            return 200, self.campaign_page("page_token=p2" in path)
        if method == "GET" and SUMMARY_PATH.match(path):
            current = self.summaries[0]
            if len(self.summaries) > 1:
                self.summaries.pop(0)
            return 200, current
        if method == "POST" and path == "/v1/imports":
            return 202, self.import_report(body, ctype)
        if method == "GET" and path.startswith("/v1/imports/"):
            return self.import_progress(path.rsplit("/", 1)[1])
        return 404, {"error": {"code": "not_found", "message": "no route"}}

    @staticmethod
    def campaign_page(second: bool) -> dict[str, Any]:
        if second:
            item = {"id": "c2", "name": "Cyber Monday", "status": "DRAFT"}
            return {"items": [item], "next_page_token": None}
        item = {
            "id": "c1",
            "name": "Black Friday",
            "status": "COMPLETED",
            "launched_at": "2026-11-26T14:00:00Z",
            "completed_at": "2026-11-26T15:00:00Z",
        }
        return {"items": [item], "next_page_token": "p2"}

    def import_report(self, body: bytes, ctype: str) -> dict[str, Any]:
        self.imports.append((ctype, body))
        rows = count_rows(body, ctype)
        # Every chunk's first row is "invalid", to check the row renumbering.
        report = {
            "id": f"imp{len(self.imports)}",
            "status": "RUNNING",
            "total": rows,
            "created": 0,
            "updated": 0,
            "duplicates": 0,
            "invalid": 1,
            "failed": 0,
            "chunks_planned": 1,
            "chunks_done": 0,
            "errors": [{"row": 1, "phone": "nope", "error": "not a phone number"}],
        }
        self.reports[report["id"]] = [
            dict(report),  # the first poll finds it still RUNNING
            {**report, "status": "COMPLETED", "created": rows - 1, "chunks_done": 1},
        ]
        return report

    def import_progress(self, import_id: str) -> tuple[int, Any]:
        if import_id not in self.reports:
            return 404, {"error": {"code": "not_found", "message": "no import"}}
        states = self.reports[import_id]
        return 200, states.pop(0) if len(states) > 1 else states[0]


def count_rows(body: bytes, ctype: str) -> int:
    if ctype == "text/csv":
        return len(csv_records(body.decode())) - 1
    if ctype == "application/json":
        return len(json.loads(body))
    return len(body.splitlines())


class _Handler(BaseHTTPRequestHandler):
    fake: FakeApi

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            status: int = 401
            answer: Any = {"error": {"code": "unauthenticated", "message": "no key"}}
        else:
            ctype = self.headers.get("Content-Type", "")
            status, answer = self.fake.answer(self.command, self.path, body, ctype)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def fake() -> Iterator[tuple[FakeApi, str]]:
    api = FakeApi()
    handler = type("Handler", (_Handler,), {"fake": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_cli(base_url: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(["--base-url", base_url, "--api-key", API_KEY, *args], out=out)
    return status, out.getvalue()


def test_progress_bar_fills_in_proportion() -> None:
    assert progress_bar(0, 10, width=10) == "[..........]   0%"
    assert progress_bar(3, 10, width=10) == "[###.......]  30%"
    assert progress_bar(12, 10, width=10) == "[##########] 100%"
    assert progress_bar(0, 0, width=4) == "[....]   0%"


def test_campaigns_list_follows_every_page(fake: tuple[FakeApi, str]) -> None:
    api, url = fake
    status, text = run_cli(url, "campaigns", "list")
    assert status == 0
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "LAUNCHED", "COMPLETED"]
    assert "Black Friday" in lines[1] and "2026-11-26 14:00:00Z" in lines[1]
    assert "Cyber Monday" in lines[2] and "DRAFT" in lines[2]
    assert len([p for p in api.paths if p.startswith("GET /v1/campaigns?")]) == 2


def test_campaigns_summary_prints_a_readable_table(
    fake: tuple[FakeApi, str],
) -> None:
    api, url = fake
    api.summaries = [make_summary("COMPLETED")]
    status, text = run_cli(url, "campaigns", "summary", "c1")
    assert status == 0
    assert "Black Friday (c1)" in text
    assert "COMPLETED (final, frozen)" in text
    assert re.search(r"Delivered\s+6 \(85\.7% rate\)", text)
    assert re.search(r"Sent\s+7 \(9 segments\)", text)
    assert re.search(r"Opt-outs\s+1 \(14\.3% of sent\)", text)
    assert re.search(r"30003\s+Unreachable destination handset\s+1", text)
    assert re.search(r"no_consent\s+1", text)
    assert re.search(r"Throughput\s+2\.33 / minute", text)


def test_watch_redraws_until_the_campaign_is_final(fake: tuple[FakeApi, str]) -> None:
    api, url = fake
    api.summaries = [
        make_summary("RUNNING", targeted=4),
        make_summary("RUNNING"),
        make_summary("COMPLETED"),
    ]
    out = io.StringIO()
    sleeps: list[float] = []
    watch = Watch(interval=0.5, sleep=sleeps.append)
    status = watch_campaign(ApiClient(url, API_KEY), out, "c1", watch)
    assert status == 0
    assert sleeps == [0.5, 0.5]
    progress = [line for line in out.getvalue().splitlines() if line.startswith("[")]
    assert len(progress) == 3, "one line per change when not on a terminal"
    assert " 8/10 " in progress[1] and "RUNNING" in progress[1]
    assert progress[2].endswith("COMPLETED")
    assert "Black Friday (c1)" in out.getvalue()


def test_watch_of_a_cancelled_campaign_exits_2(fake: tuple[FakeApi, str]) -> None:
    api, url = fake
    api.summaries = [make_summary("CANCELLED")]
    status, _ = run_cli(url, "campaigns", "watch", "c1", "--interval", "0")
    assert status == 2


def test_watch_gives_up_after_its_timeout(
    fake: tuple[FakeApi, str], capsys: pytest.CaptureFixture[str]
) -> None:
    api, url = fake
    api.summaries = [make_summary("RUNNING")]
    status, _ = run_cli(
        url, "campaigns", "watch", "c1", "--interval", "0.01", "--timeout", "0.05"
    )
    assert status == 1
    assert "still RUNNING" in capsys.readouterr().err


def write_csv(path: Path, rows: int) -> None:
    lines = ["phone,name,note"]
    for i in range(rows):
        note = '"two\nlines"' if i == 2 else "plain"
        lines.append(f"+1415555{i:04d},Pat {i},{note}")
        if i == 3:
            lines.append("")  # a blank line is no row
    path.write_text("\n".join(lines) + "\n")


def test_import_uploads_a_csv_in_chunks_with_its_header(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake
    contacts = tmp_path / "contacts.csv"
    write_csv(contacts, 5)
    status, text = run_cli(
        url, "users", "import", str(contacts), "--chunk-rows", "2", "--interval", "0"
    )
    assert status == 2, "some rows were rejected"
    assert [ctype for ctype, _ in api.imports] == ["text/csv"] * 3
    bodies = [body.decode() for _, body in api.imports]
    assert all(body.startswith("phone,name,note\n") for body in bodies)
    assert '"two\nlines"' in bodies[1], "a quoted newline stays in its record"
    assert [count_rows(body.encode(), "text/csv") for body in bodies] == [2, 2, 1]
    assert "chunk 3/3" in text and "5/5 rows" in text
    assert re.search(r"created\s+2", text) and re.search(r"invalid\s+3", text)
    # Each chunk's row 1 is reported as the file's row 1, 3 and 5.
    rows = [int(line.split()[0]) for line in text.splitlines() if "nope" in line]
    assert rows == [1, 3, 5]
    assert "imp1, imp2, imp3" in text


def test_import_chunks_ndjson_and_json_arrays(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake
    rows = [{"phone": f"+1415555{i:04d}", "name": "Pat"} for i in range(5)]
    ndjson = tmp_path / "contacts.ndjson"
    ndjson.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    array = tmp_path / "contacts.json"
    array.write_text(json.dumps(rows))
    out = io.StringIO()
    client = ApiClient(url, API_KEY)
    import_users(client, out, ndjson, 3, ImportWait(interval=0))
    import_users(client, out, array, 4, ImportWait(interval=0))
    assert [ctype for ctype, _ in api.imports] == [
        "application/x-ndjson",
        "application/x-ndjson",
        "application/json",
        "application/json",
    ]
    assert [len(json.loads(body)) for _, body in api.imports[2:]] == [4, 1]
    assert json.loads(api.imports[1][1].splitlines()[-1]) == rows[-1]


def test_import_waits_until_the_import_is_completed(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake
    contacts = tmp_path / "contacts.csv"
    write_csv(contacts, 3)
    out = io.StringIO()
    import_users(ApiClient(url, API_KEY), out, contacts, 10, ImportWait(interval=0))
    # The POST answers RUNNING with nothing created: the counts are the
    # completed report's, read after polling.
    assert api.paths.count("GET /v1/imports/imp1") == 2
    assert re.search(r"created\s+2", out.getvalue())


def test_import_gives_up_on_an_import_that_never_completes(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    api, url = fake
    contacts = tmp_path / "contacts.csv"
    write_csv(contacts, 3)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        api.reports["imp1"][1:] = []  # it never goes COMPLETED

    wait = ImportWait(interval=2, timeout=5, clock=lambda: now[0], sleep=sleep)
    with pytest.raises(CliError, match="still RUNNING after 5s"):
        import_users(ApiClient(url, API_KEY), io.StringIO(), contacts, 10, wait)


def test_defaults_come_from_the_local_stacks_endpoints(
    fake: tuple[FakeApi, str], tmp_path: Path
) -> None:
    _, url = fake
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({"api": url, "api_key": API_KEY}))
    out = io.StringIO()
    assert main(["--endpoints", str(endpoints), "campaigns", "list"], out=out) == 0
    assert "Black Friday" in out.getvalue()


def test_an_api_error_is_one_line_and_exit_1(
    fake: tuple[FakeApi, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = fake
    out = io.StringIO()
    args = ["--base-url", url, "--api-key", "wrong", "campaigns", "list"]
    assert main(args, out=out) == 1
    assert "HTTP 401 unauthenticated: no key" in capsys.readouterr().err


def test_without_a_url_or_stack_it_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.json")
    assert main(["--endpoints", missing, "campaigns", "list"]) == 1
    assert "--base-url" in capsys.readouterr().err
