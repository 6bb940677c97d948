"""Contact imports end to end through the public API, against the raw write rate.

Usage: .venv/bin/python bench/bench_import.py [--rows 100000] [--million]

On the local stack (started here, or the one ESE_ENDPOINTS names), for each
size: POST the CSV file to /v1/imports (answered 202 once the rows are
validated and published to `import-chunks`), then poll the report until
`contact_importer` has upserted every chunk. Prints the API's response time,
rows/s end to end, and the peak RSS of the api and contact_importer processes
(both restarted before each run, so that the peak is that run's). In the same
run it writes the same documents (a user and a consent event per row) with
plain WriteBatches into the stack's emulator, for the raw batched-write rate.
`--million` adds a 1,000,000-row file (51 MB of CSV: posted in two uploads
under the API's 32 MiB, as `local.cli users import` would). Prints figures
only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack_support import (  # noqa: E402
    group_cpu_seconds,
    peak_rss_mb,
    process_group,
    running_stack,
)
from local import stack  # noqa: E402
from local.cli import file_chunks  # noqa: E402

WORK = ROOT / ".local/bench"
CITIES = ["Colombo", "Kandy", "Galle", "Jaffna", "Matara"]
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
MEASURED = ("api", "contact_importer")
# Rows per upload: about 25 MB of these rows, under the API's 32 MiB.
UPLOAD_ROWS = 500_000


def phone_of(index: int) -> str:
    return f"+9477{index:07d}"  # Sri Lankan mobiles: valid for phonenumbers


def write_csv(rows: int) -> Path:
    path = WORK / f"import-{rows}.csv"
    if path.exists():
        return path
    with path.open("w") as out:
        out.write("phone,name,city,age,tier,consent_state\n")
        for i in range(rows):
            state = "STOP" if i % 50 == 0 else "OPT_IN"
            tier = "gold" if i % 7 == 0 else "basic"
            city = CITIES[i % len(CITIES)]
            age = 18 + i % 70
            out.write(f"{phone_of(i)},Customer {i},{city},{age},{tier},{state}\n")
    return path


# ---------------------------------------------------------------- raw writes


def raw_documents(index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from shared.store.users import ConsentState, consent_event, new_user, user_doc

    state = ConsentState.STOP if index % 50 == 0 else ConsentState.OPT_IN
    attributes = {
        "name": f"Customer {index}",
        "city": CITIES[index % len(CITIES)],
        "age": 18 + index % 70,
        "tier": "gold" if index % 7 == 0 else "basic",
    }
    user = new_user(phone_of(index), attributes, None, state, "import", NOW)
    event = consent_event(None, state, "import", NOW, f"import raw row {index + 1}")
    return user_doc(user), event


def child_raw(rows: int, chunk: int, in_flight: int) -> dict[str, Any]:
    """The same documents in plain batches: a user and its event per row."""
    from google.cloud import firestore

    from shared.store.users import record_consent_change, user_ref

    db = firestore.Client(project=os.environ["GCP_PROJECT"])

    def write(start: int) -> None:
        batch = db.batch()
        for index in range(start, min(start + chunk, rows)):
            user, event = raw_documents(index)
            batch.create(user_ref(db, user["phone"]), user)
            record_consent_change(batch, db, user["phone"], event)
        # A database of a million users slows the emulator's commits past the
        # client's 60 s default (seen on a loaded machine).
        batch.commit(timeout=600)

    started = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(write, range(0, rows, chunk)))
    return {
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------- the stack


def reset(endpoints: dict[str, Any]) -> None:
    """Empty the database; large ones take the emulator longer than 30 s."""
    host, project = endpoints["firestore_emulator"], endpoints["project"]
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    requests.delete(url, timeout=900).raise_for_status()


def group_peak_rss_mb(pgid: int) -> float:
    """The largest peak RSS (VmHWM) among a process group's processes."""
    peak = 0.0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            stat = (status.parent / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
            continue
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def run_raw(endpoints: dict[str, Any], rows: int) -> dict[str, Any]:
    from shared.audience.import_chunks import MAX_IN_FLIGHT, PART_ROWS

    reset(endpoints)
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": endpoints["firestore_emulator"],
        "GCP_PROJECT": endpoints["project"],
    }
    args = [str(rows), str(PART_ROWS), str(MAX_IN_FLIGHT)]
    out = subprocess.run(  # noqa: S603 - this script, fixed arguments
        [sys.executable, __file__, "--child", *args],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def post_upload(http: requests.Session, api: str, chunk: Any) -> tuple[dict, float]:
    started = time.perf_counter()
    response = http.post(
        f"{api}/v1/imports",
        data=chunk.body,
        headers={"Content-Type": chunk.content_type},
        timeout=600,
    )
    answered = time.perf_counter() - started
    response.raise_for_status()
    return response.json(), answered


def wait_completed(http: requests.Session, api: str, reports: list[dict]) -> list:
    """Poll every report until none is RUNNING, printing progress."""
    shown = 0
    while any(r["status"] == "RUNNING" for r in reports):
        time.sleep(1)
        reports = [
            http.get(f"{api}/v1/imports/{r['id']}", timeout=60).json()
            if r["status"] == "RUNNING"
            else r
            for r in reports
        ]
        done = sum(r["chunks_done"] for r in reports)
        planned = sum(r["chunks_planned"] for r in reports)
        if done - shown >= max(planned // 10, 1):
            shown = done
            written = sum(r["created"] + r["updated"] for r in reports)
            print(f"    {done}/{planned} chunks, {written:,} rows written", flush=True)
    return reports


def run_import(endpoints: dict[str, Any], path: Path) -> dict[str, Any]:
    """POST the file (in uploads under the API's 32 MiB, as the CLI does),
    then poll the reports until every one is COMPLETED."""
    reset(endpoints)
    state_dir = Path(endpoints["state_dir"])
    for name in MEASURED:  # a fresh process: its peak RSS is this run's
        stack.restart_function(state_dir, name)
    groups = {name: process_group(endpoints, name) for name in MEASURED}
    cpu_before = {name: group_cpu_seconds(pgid) for name, pgid in groups.items()}
    uploads = file_chunks(path, UPLOAD_ROWS)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {endpoints['api_key']}"
    api = endpoints["api"]
    started = time.perf_counter()
    posted = [post_upload(http, api, chunk) for chunk in uploads]
    reports = wait_completed(http, api, [report for report, _ in posted])
    return {
        "rows": sum(r["total"] for r in reports),
        "uploads": len(uploads),
        "upload_mb": max(len(chunk.body) for chunk in uploads) / 1e6,
        "status": ",".join(sorted({r["status"] for r in reports})),
        "created": sum(r["created"] for r in reports),
        "invalid": sum(r["invalid"] + r["failed"] for r in reports),
        "chunks": sum(r["chunks_planned"] for r in reports),
        "api_seconds": max(seconds for _, seconds in posted),
        "api_rows": max(r["total"] for r, _ in posted),
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": {n: group_peak_rss_mb(p) for n, p in groups.items()},
        "cpu_seconds": {
            n: group_cpu_seconds(p) - cpu_before[n] for n, p in groups.items()
        },
    }


def benchmark(endpoints: dict[str, Any], sizes: list[int]) -> None:
    print("warming the emulator up", flush=True)
    run_raw(endpoints, 10_000)
    for rows in sizes:
        path = write_csv(rows)
        print(f"importing {rows:,} rows ({path.stat().st_size / 1e6:.1f} MB CSV)")
        result = run_import(endpoints, path)
        rate = result["rows"] / result["seconds"]
        rss, cpu = result["peak_rss_mb"], result["cpu_seconds"]
        print(
            f"  API import {rows:,}: {result['status']}, {result['created']:,} "
            f"created, {result['invalid']} rejected, {result['chunks']} chunks\n"
            f"    {result['uploads']} upload(s) of at most "
            f"{result['upload_mb']:.1f} MB; the API answered 202 in at most "
            f"{result['api_seconds']:.1f}s ({result['api_rows']:,} rows, "
            f"{result['api_rows'] / result['api_seconds']:,.0f} rows/s validated)\n"
            f"    end to end {result['seconds']:.1f}s = {rate:,.0f} rows/s\n"
            f"    peak RSS api {rss['api']:.0f} MB, contact_importer "
            f"{rss['contact_importer']:.0f} MB; CPU api {cpu['api']:.1f}s, "
            f"contact_importer {cpu['contact_importer']:.1f}s",
            flush=True,
        )
        raw = run_raw(endpoints, rows)
        raw_rate = raw["rows"] / raw["seconds"]
        print(
            f"  raw WriteBatch {rows:,} (2 docs/row): {raw['seconds']:.1f}s = "
            f"{raw_rate:,.0f} rows/s; import end to end / raw = "
            f"{rate / raw_rate:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="add 1,000,000 rows")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_raw(*(int(value) for value in args.child))))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    sizes = sorted({args.rows, *([1_000_000] if args.million else [])})
    with running_stack(19300, {}) as endpoints:
        benchmark(endpoints, sizes)


if __name__ == "__main__":
    main()
