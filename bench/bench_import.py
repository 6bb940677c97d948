"""Contact import throughput and memory, against the emulator's raw write rate.

Usage: .venv/bin/python bench/bench_import.py [--rows 100000]

Imports 10,000 and then --rows CSV rows through `run_import`, the service the
API calls, each run in a fresh process so that its peak RSS is its own. Then
writes the same documents (user and consent event per row) with plain
WriteBatches for the emulator's raw rate. Starts a Firestore emulator unless
FIRESTORE_EMULATOR_HOST is set. Prints figures only; nothing is asserted.
Targets: >= 1,330 rows/s, >= 0.8 of the raw rate, RSS(N) <= 1.2 x RSS(10k).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

from bench.stack_support import peak_rss_mb  # noqa: E402
from local import emulators  # noqa: E402

PROJECT = "bench-import"
WORK = ROOT / ".local/bench"
BASE_ROWS = 10_000
CITIES = ["Colombo", "Kandy", "Galle", "Jaffna", "Matara"]
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


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


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- children


def child_import(path: Path) -> dict[str, Any]:
    from google.cloud import firestore

    from shared.audience.imports import ImportReport, run_import

    db = firestore.Client(project=PROJECT)
    body = path.read_bytes()  # the request body: in memory, as in the API
    step = max(body.count(b"\n") // 10, 1)
    shown = [0]

    def progress(report: ImportReport) -> None:
        done = report.created + report.updated
        if done - shown[0] >= step:
            shown[0] = done
            print(f"    {done:,} rows written", file=sys.stderr, flush=True)

    started = time.perf_counter()
    report = run_import(
        db, body, "text/csv", default_region="US", now=NOW, on_progress=progress
    )
    elapsed = time.perf_counter() - started
    return {
        "rows": report.total,
        "created": report.created,
        "invalid": report.invalid + report.failed,
        "seconds": elapsed,
        "cpu_seconds": cpu_seconds(),
        "peak_rss_mb": peak_rss_mb(),
    }


def raw_documents(index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from shared.audience.users import ConsentState, consent_event, new_user, user_doc

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

    from shared.audience.users import record_consent_change, user_ref

    db = firestore.Client(project=PROJECT)

    def write(start: int) -> None:
        batch = db.batch()
        for index in range(start, min(start + chunk, rows)):
            user, event = raw_documents(index)
            batch.create(user_ref(db, user["phone"]), user)
            record_consent_change(batch, db, user["phone"], event)
        batch.commit()

    started = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(write, range(0, rows, chunk)))
    elapsed = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": elapsed,
        "cpu_seconds": cpu_seconds(),
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------- parent


def reset(host: str) -> None:
    """Empty the database; large ones take the emulator longer than 30 s."""
    url = f"http://{host}/emulator/v1/projects/{PROJECT}/databases/(default)/documents"
    requests.delete(url, timeout=600).raise_for_status()


def run_child(host: str, *args: str) -> dict[str, Any]:
    reset(host)
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": host, "GCP_PROJECT": PROJECT}
    out = subprocess.run(  # noqa: S603 - this script, fixed arguments
        [sys.executable, __file__, "--child", *args],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def report_run(label: str, result: dict[str, Any]) -> float:
    rate = result["rows"] / result["seconds"]
    print(
        f"{label}: {result['rows']:,} rows in {result['seconds']:.1f}s = "
        f"{rate:,.0f} rows/s, peak RSS {result['peak_rss_mb']:.0f} MB, "
        f"process CPU {result['cpu_seconds']:.1f}s",
        flush=True,
    )
    return rate


def benchmark(host: str, sizes: list[int], repeat: int) -> None:
    """Alternate import and raw runs; the best of `repeat` counts for each.

    The emulator's JVM is warmed first, and runs alternate, so that neither
    side profits from the other's warm-up or from a quiet moment on a shared
    machine.
    """
    from shared.audience.imports import CHUNK_ROWS, MAX_IN_FLIGHT

    raw_args = [str(CHUNK_ROWS), str(MAX_IN_FLIGHT)]
    print("warming the emulator up", flush=True)
    run_child(host, "raw", str(BASE_ROWS), *raw_args)
    rss: dict[int, float] = {}
    for rows in sizes:
        path = write_csv(rows)
        print(f"importing {rows:,} rows ({path.stat().st_size / 1e6:.1f} MB CSV)")
        rates: dict[str, float] = {"import": 0.0, "raw": 0.0}
        for _ in range(repeat):
            result = run_child(host, "import", str(path))
            rate = report_run(f"  run_import {rows:,}", result)
            rates["import"] = max(rates["import"], rate)
            rss[rows] = max(rss.get(rows, 0.0), result["peak_rss_mb"])
            raw = run_child(host, "raw", str(rows), *raw_args)
            raw_rate = report_run(f"  raw WriteBatch {rows:,} (2 docs/row)", raw)
            rates["raw"] = max(rates["raw"], raw_rate)
        print(
            f"  best: import {rates['import']:,.0f} rows/s, raw {rates['raw']:,.0f} "
            f"rows/s, import / raw = {rates['import'] / rates['raw']:.2f}",
            flush=True,
        )
    largest = max(sizes)
    if largest != BASE_ROWS:
        ratio = rss[largest] / rss[BASE_ROWS]
        print(f"peak RSS {largest:,} / {BASE_ROWS:,} = {ratio:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs per size")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "import":
            result = child_import(Path(rest[0]))
        else:
            result = child_raw(*(int(value) for value in rest))
        print(json.dumps(result))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    sizes = sorted({BASE_ROWS, args.rows})
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if host:
        benchmark(host, sizes, args.repeat)
        return
    server = emulators.start_firestore(emulators.free_port(), WORK)
    try:
        benchmark(server.host, sizes, args.repeat)
    finally:
        emulators.stop_group(server.pgid, grace=2)


if __name__ == "__main__":
    main()
