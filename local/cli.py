"""The operator CLI: campaigns and contact imports, over the public REST API only.

    python -m local.cli [--base-url URL] [--api-key KEY] campaigns list [--status S]
    python -m local.cli campaigns summary CAMPAIGN_ID
    python -m local.cli campaigns watch CAMPAIGN_ID [--interval 5] [--timeout 0]
    python -m local.cli users import FILE [--chunk-rows 50000] [--interval 1]
                                          [--timeout 600]

`watch` exits 0 when the campaign COMPLETED and 2 when it was CANCELLED or
FAILED; `users import` waits until each upload's import is COMPLETED (the
API answers at once and `contact_importer` upserts) and exits 2 when some rows
were rejected; errors exit 1.
Without --base-url and --api-key, both come from the local stack's
`.local/endpoints.json` when it exists. Progress bars are plain text: redrawn
in place on a terminal, one line per change otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import requests

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ENDPOINTS = REPO / ".local" / "endpoints.json"
FINAL_CAMPAIGN_STATUSES = frozenset({"COMPLETED", "CANCELLED", "FAILED"})
UNSENT_STATUSES = ("QUEUED", "SENDING")
BAR_WIDTH = 30
# Uploads are validated by the API and upserted asynchronously: a chunk only
# bounds one upload well under the API's 32 MiB.
DEFAULT_CHUNK_ROWS = 50_000
IMPORT_POLL_S = 1.0
IMPORT_TIMEOUT_S = 600.0
FINAL_IMPORT_STATUSES = frozenset({"COMPLETED", "FAILED"})
SHOWN_IMPORT_ERRORS = 20
REQUEST_TIMEOUT_S = 300
CONTENT_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
FORMAT_BY_SUFFIX = {
    ".csv": "csv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}


class CliError(Exception):
    """A failure to report in one line, with exit status 1."""


# ---------------------------------------------------------------- the API


class ApiClient:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {api_key}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(
                method, self.base_url + path, timeout=REQUEST_TIMEOUT_S, **kwargs
            )
        except requests.RequestException as exc:
            raise CliError(f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise CliError(api_error(response))
        return response.json() if response.content else None

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: bytes, content_type: str) -> Any:
        return self.request(
            "POST", path, data=body, headers={"Content-Type": content_type}
        )

    def pages(self, path: str, **params: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following next_page_token."""
        token = None
        while True:
            query = {**params, **({"page_token": token} if token else {})}
            page = self.get(path, **query)
            yield from page["items"]
            token = page.get("next_page_token")
            if not token:
                return


def api_error(response: requests.Response) -> str:
    try:
        error = response.json()["error"]
        return f"HTTP {response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


# ---------------------------------------------------------------- output


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """`[#########.....................]  30%`"""
    fraction = min(done / total, 1.0) if total > 0 else 0.0
    filled = round(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}"


class ProgressLine:
    """One status line: redrawn in place on a terminal, else printed on change."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.in_place = out.isatty()
        self.last = ""

    def update(self, text: str) -> None:
        if self.in_place:
            self.out.write("\r" + text.ljust(len(self.last)))
        elif text != self.last:
            self.out.write(text + "\n")
        self.last = text
        self.out.flush()

    def finish(self) -> None:
        if self.in_place and self.last:
            self.out.write("\n")
            self.out.flush()


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str] = ()) -> str:
    lines = [list(map(str, row)) for row in ([header] if header else []) + list(rows)]
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def when(value: str | None) -> str:
    return value.replace("T", " ") if value else "-"


# ---------------------------------------------------------------- campaigns


def list_campaigns(client: ApiClient, out: TextIO, status: str | None) -> int:
    params = {"limit": "500", **({"status": status} if status else {})}
    rows = [
        (
            item["id"],
            item["name"],
            item["status"],
            when(item.get("launched_at")),
            when(item.get("completed_at")),
        )
        for item in client.pages("/v1/campaigns", **params)
    ]
    if not rows:
        out.write("no campaigns\n")
        return 0
    header = ("ID", "NAME", "STATUS", "LAUNCHED", "COMPLETED")
    out.write(format_table(rows, header) + "\n")
    return 0


def overview_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    frozen = " (final, frozen)" if summary.get("frozen") else ""
    planned = summary.get("planned")
    opt_outs = summary["opt_outs"]
    throughput = summary.get("throughput_per_minute")
    return [
        ("Campaign", f"{summary['name']} ({summary['campaign_id']})"),
        ("Status", summary["status"] + frozen),
        ("Targeted", f"{summary['targeted']}" + (f" of {planned}" if planned else "")),
        ("Sent", f"{summary['sent']} ({summary['total_segments']} segments)"),
        (
            "Delivered",
            f"{summary['delivered']} ({percent(summary['delivery_rate'])} rate)",
        ),
        ("Opt-outs", f"{opt_outs['count']} ({percent(opt_outs['rate'])} of sent)"),
        ("First send", when(summary.get("first_sent_at"))),
        ("Last send", when(summary.get("last_sent_at"))),
        ("Throughput", "-" if throughput is None else f"{throughput} / minute"),
    ]


def summary_text(summary: dict[str, Any]) -> str:
    counts = [(status, n) for status, n in summary["counts"].items() if n]
    skips = sorted(summary["skips"].items(), key=lambda item: -item[1])
    failures = [
        (f["code"], f.get("meaning") or "", f["count"]) for f in summary["failures"]
    ]
    sections = [
        format_table(overview_rows(summary)),
        format_table(counts, ("STATUS", "MESSAGES")),
    ]
    if skips:
        sections.append(format_table(skips, ("SKIP REASON", "MESSAGES")))
    if failures:
        sections.append(format_table(failures, ("ERROR", "MEANING", "MESSAGES")))
    return "\n\n".join(sections) + "\n"


def show_summary(client: ApiClient, out: TextIO, campaign_id: str) -> int:
    out.write(summary_text(client.get(f"/v1/campaigns/{campaign_id}/summary")))
    return 0


def watch_line(summary: dict[str, Any]) -> str:
    """Progress: messages that left the queue, out of those planned."""
    counts = summary["counts"]
    total = max(summary.get("planned") or 0, summary["targeted"])
    done = summary["targeted"] - sum(counts.get(s, 0) for s in UNSENT_STATUSES)
    failed = counts.get("FAILED", 0) + counts.get("UNDELIVERED", 0)
    return (
        f"{progress_bar(done, total)} {done}/{total}  "
        f"sent {summary['sent']}  delivered {summary['delivered']}  "
        f"failed {failed}  skipped {counts.get('SKIPPED', 0)}  {summary['status']}"
    )


@dataclass
class Watch:
    # Each poll runs the summary's aggregation queries: a few seconds apart.
    interval: float = 5.0
    timeout: float = 0.0  # 0: until the campaign is final
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def watch_campaign(
    client: ApiClient, out: TextIO, campaign_id: str, watch: Watch
) -> int:
    """Redraw the progress until COMPLETED, CANCELLED or FAILED; 0 if COMPLETED."""
    line = ProgressLine(out)
    deadline = watch.clock() + watch.timeout if watch.timeout else None
    while True:
        summary = client.get(f"/v1/campaigns/{campaign_id}/summary")
        line.update(watch_line(summary))
        if summary["status"] in FINAL_CAMPAIGN_STATUSES:
            line.finish()
            out.write("\n" + summary_text(summary))
            return 0 if summary["status"] == "COMPLETED" else 2
        if deadline is not None and watch.clock() >= deadline:
            line.finish()
            raise CliError(f"still {summary['status']} after {watch.timeout:g}s")
        watch.sleep(watch.interval)


# ---------------------------------------------------------------- imports


@dataclass(frozen=True)
class Chunk:
    body: bytes
    content_type: str
    rows: int


def detect_format(path: Path, payload: bytes) -> str:
    suffix_format = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if suffix_format:
        return suffix_format
    head = payload.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"[":
        return "json"
    return "ndjson" if head == b"{" else "csv"


def csv_records(text: str) -> list[str]:
    """Whole CSV records, each with its line ending; a quoted field may hold
    newlines, so a record ends only where the quotes seen so far balance."""
    records: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        current += line
        if current.count('"') % 2 == 0:
            records.append(current)
            current = ""
    if current:
        records.append(current)
    return [record for record in records if record.strip()]


def csv_chunks(payload: bytes, size: int) -> Iterator[Chunk]:
    records = csv_records(payload.decode("utf-8-sig"))
    if not records:
        raise CliError("the CSV file is empty")
    header, rows = records[0], records[1:]
    if not header.endswith("\n"):
        header += "\n"
    for start in range(0, len(rows), size):
        part = rows[start : start + size]
        body = (header + "".join(part)).encode()
        yield Chunk(body, CONTENT_TYPES["csv"], len(part))


def ndjson_chunks(payload: bytes, size: int) -> Iterator[Chunk]:
    lines = [line for line in payload.splitlines() if line.strip()]
    for start in range(0, len(lines), size):
        part = lines[start : start + size]
        yield Chunk(b"\n".join(part) + b"\n", CONTENT_TYPES["ndjson"], len(part))


def json_chunks(payload: bytes, size: int) -> Iterator[Chunk]:
    try:
        rows = json.loads(payload.decode("utf-8-sig"))
    except ValueError as exc:
        raise CliError(f"the JSON file does not parse: {exc}") from exc
    rows = rows if isinstance(rows, list) else [rows]
    for start in range(0, len(rows), size):
        part = rows[start : start + size]
        yield Chunk(json.dumps(part).encode(), CONTENT_TYPES["json"], len(part))


CHUNKERS: dict[str, Callable[[bytes, int], Iterator[Chunk]]] = {
    "csv": csv_chunks,
    "json": json_chunks,
    "ndjson": ndjson_chunks,
}


def file_chunks(path: Path, size: int) -> list[Chunk]:
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    return list(CHUNKERS[detect_format(path, payload)](payload, size))


COUNTED = ("total", "created", "updated", "duplicates", "invalid", "failed")


@dataclass
class ImportTotals:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    errors: list[dict[str, Any]] = field(default_factory=list)
    import_ids: list[str] = field(default_factory=list)

    def add(self, report: dict[str, Any], rows_before: int) -> None:
        """One chunk's report; its row numbers become the file's."""
        for name in COUNTED:
            self.counts[name] += int(report.get(name, 0))
        self.import_ids.append(report["id"])
        for error in report.get("errors", []):
            self.errors.append({**error, "row": error["row"] + rows_before})


def import_text(totals: ImportTotals) -> str:
    text = format_table(list(totals.counts.items()), ("ROWS", "COUNT")) + "\n"
    if totals.errors:
        shown = [
            (e["row"], e.get("phone") or "", e["error"])
            for e in totals.errors[:SHOWN_IMPORT_ERRORS]
        ]
        text += "\n" + format_table(shown, ("ROW", "PHONE", "ERROR")) + "\n"
        if len(totals.errors) > SHOWN_IMPORT_ERRORS:
            text += f"… and {len(totals.errors) - SHOWN_IMPORT_ERRORS} more\n"
    return text + f"imports: {', '.join(totals.import_ids)}\n"


def import_progress(done: int, rows: int, chunk: int, chunks: int) -> str:
    return f"{progress_bar(done, rows)} {done}/{rows} rows  chunk {chunk}/{chunks}"


@dataclass(frozen=True)
class ImportWait:
    interval: float = IMPORT_POLL_S
    timeout: float = IMPORT_TIMEOUT_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def finished_import(
    client: ApiClient, accepted: dict[str, Any], wait: ImportWait
) -> dict[str, Any]:
    """The import's report once COMPLETED or FAILED (the API answers 202 at once)."""
    report = accepted
    deadline = wait.clock() + wait.timeout
    while report["status"] not in FINAL_IMPORT_STATUSES:
        if wait.clock() >= deadline:
            raise CliError(
                f"import {report['id']} still {report['status']} after "
                f"{wait.timeout:g}s ({report.get('chunks_done', 0)}/"
                f"{report.get('chunks_planned', '?')} chunks)"
            )
        wait.sleep(wait.interval)
        report = client.get(f"/v1/imports/{report['id']}")
    if report["status"] == "FAILED":
        raise CliError(f"import {report['id']} FAILED: {report.get('reason')}")
    return report


def import_users(
    client: ApiClient,
    out: TextIO,
    path: Path,
    chunk_rows: int,
    wait: ImportWait | None = None,
) -> int:
    """Upload the file in chunks of `chunk_rows` rows, one import per chunk,
    each waited for until contact_importer has upserted it."""
    chunks = file_chunks(path, chunk_rows)
    rows = sum(chunk.rows for chunk in chunks)
    line = ProgressLine(out)
    totals = ImportTotals()
    done = 0
    line.update(import_progress(0, rows, 0, len(chunks)))
    for number, chunk in enumerate(chunks, start=1):
        accepted = client.post("/v1/imports", chunk.body, chunk.content_type)
        report = finished_import(client, accepted, wait or ImportWait())
        totals.add(report, done)
        done += chunk.rows
        line.update(import_progress(done, rows, number, len(chunks)))
    line.finish()
    out.write(import_text(totals))
    rejected = totals.counts["invalid"] + totals.counts["failed"]
    return 0 if rejected == 0 else 2


# ---------------------------------------------------------------- arguments


def stack_defaults(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    endpoints = json.loads(path.read_text())
    return {"base_url": endpoints["api"], "api_key": endpoints["api_key"]}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m local.cli", description=__doc__)
    root.add_argument("--base-url", help="the API's base URL")
    root.add_argument("--api-key", help="an API key")
    root.add_argument("--endpoints", type=Path, default=DEFAULT_ENDPOINTS)
    areas = root.add_subparsers(dest="area", required=True)
    campaigns = areas.add_parser("campaigns").add_subparsers(
        dest="command", required=True
    )
    listing = campaigns.add_parser("list")
    listing.add_argument("--status")
    campaigns.add_parser("summary").add_argument("campaign_id")
    watch = campaigns.add_parser("watch")
    watch.add_argument("campaign_id")
    watch.add_argument("--interval", type=float, default=Watch.interval)
    watch.add_argument("--timeout", type=float, default=0.0)
    users = areas.add_parser("users").add_subparsers(dest="command", required=True)
    upload = users.add_parser("import")
    upload.add_argument("file", type=Path)
    upload.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    upload.add_argument("--interval", type=float, default=IMPORT_POLL_S)
    upload.add_argument("--timeout", type=float, default=IMPORT_TIMEOUT_S)
    return root


def client_for(args: argparse.Namespace) -> ApiClient:
    defaults = stack_defaults(args.endpoints)
    base_url = args.base_url or defaults.get("base_url")
    api_key = args.api_key or defaults.get("api_key")
    if not base_url or not api_key:
        raise CliError(
            "give --base-url and --api-key (or start the local stack: make up)"
        )
    return ApiClient(base_url, api_key)


def run(args: argparse.Namespace, client: ApiClient, out: TextIO) -> int:
    command = (args.area, args.command)
    if command == ("campaigns", "list"):
        return list_campaigns(client, out, args.status)
    if command == ("campaigns", "summary"):
        return show_summary(client, out, args.campaign_id)
    if command == ("campaigns", "watch"):
        watch = Watch(interval=args.interval, timeout=args.timeout)
        return watch_campaign(client, out, args.campaign_id, watch)
    if args.chunk_rows < 1:
        raise CliError("--chunk-rows must be at least 1")
    wait = ImportWait(interval=args.interval, timeout=args.timeout)
    return import_users(client, out, args.file, args.chunk_rows, wait)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args, client_for(args), out)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
