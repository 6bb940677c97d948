"""Contact imports end to end through the public API, against the raw write rate.

Usage: .venv/bin/python bench/bench_import.py [--rows 10000 100000]
                                              [--formats csv json] [--million]

On the local stack (started here, or the one ESE_ENDPOINTS names), for each
size: first the raw batched-write rate of the stack's emulator in this run
(`stack_support.raw_rates`: the same documents an imported row costs, a user
and a consent event, in plain WriteBatches), then for each format (a CSV file,
and a JSON array as the issue posted it): POST the file to /v1/imports
(answered 202 once the rows are validated and published to `import-chunks`),
poll the report until `contact_importer` has upserted every chunk (COMPLETED),
then ask for a segment preview that matches every row and check that it counts
them all. Prints the API's response time, rows/s end to end (to COMPLETED, and
to the preview that sees every row), the ratio to the raw rate, and the peak
RSS and CPU of the api and contact_importer processes (both restarted before
each import, so that the peak is that import's). `--profile DIR` samples
both with py-spy during each import (bench/profiling.py). `--million` adds a
1,000,000-row CSV file (51 MB: posted in two uploads under the API's 32 MiB,
as `local.cli users import` would). Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.profiling import Profiler, print_profile  # noqa: E402
from bench.stack_support import (  # noqa: E402
    RAW_CITIES,
    RawRates,
    group_cpu_seconds,
    process_group,
    raw_rates,
    running_stack,
)
from local import stack  # noqa: E402
from local.cli import file_chunks  # noqa: E402

WORK = ROOT / ".local/bench"
MEASURED = ("api", "contact_importer")
# Rows per upload: about 25 MB of these rows, under the API's 32 MiB.
UPLOAD_ROWS = 500_000
# Matches every imported row (each has a tier), and nothing else.
EVERY_ROW = {"attribute": "tier", "operator": "exists"}


def phone_of(index: int) -> str:
    return f"+9477{index:07d}"  # Sri Lankan mobiles: valid for phonenumbers


def row_fields(i: int) -> dict[str, Any]:
    return {
        "phone": phone_of(i),
        "name": f"Customer {i}",
        "city": RAW_CITIES[i % len(RAW_CITIES)],
        "age": 18 + i % 70,
        "tier": "gold" if i % 7 == 0 else "basic",
        "consent_state": "STOP" if i % 50 == 0 else "OPT_IN",
    }


def write_file(rows: int, kind: str) -> Path:
    """The file to import: CSV, or a JSON array of row objects."""
    path = WORK / f"import-{rows}.{kind}"
    if path.exists():
        return path
    with path.open("w") as out:
        if kind == "json":
            out.write("[\n")
            for i in range(rows):
                comma = "," if i + 1 < rows else ""
                out.write(json.dumps(row_fields(i)) + comma + "\n")
            out.write("]\n")
            return path
        out.write("phone,name,city,age,tier,consent_state\n")
        for i in range(rows):
            out.write(",".join(str(v) for v in row_fields(i).values()) + "\n")
    return path


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
        time.sleep(0.2)  # short: the poll is part of the time measured
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


def preview_count(http: requests.Session, api: str) -> int:
    """The count of a segment preview that matches every imported row."""
    response = http.post(
        f"{api}/v1/segments/preview", json={"definition": EVERY_ROW}, timeout=600
    )
    response.raise_for_status()
    return int(response.json()["count"])


def run_import(
    endpoints: dict[str, Any], path: Path, profile_dir: Path | None
) -> dict[str, Any]:
    """POST the file (in uploads under the API's 32 MiB, as the CLI does),
    poll the reports until every one is COMPLETED, then preview the segment
    of every row."""
    reset(endpoints)
    state_dir = Path(endpoints["state_dir"])
    for name in MEASURED:  # a fresh process: its peak RSS is this run's
        stack.restart_function(state_dir, name)
    groups = {name: process_group(endpoints, name) for name in MEASURED}
    cpu_before = {name: group_cpu_seconds(pgid) for name, pgid in groups.items()}
    profiler = None
    if profile_dir is not None:
        profiler = Profiler(profile_dir / path.name)
        profiler.start({pgid: name for name, pgid in groups.items()}, MEASURED)
    uploads = file_chunks(path, UPLOAD_ROWS)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {endpoints['api_key']}"
    api = endpoints["api"]
    started = time.perf_counter()
    posted = [post_upload(http, api, chunk) for chunk in uploads]
    reports = wait_completed(http, api, [report for report, _ in posted])
    completed = time.perf_counter() - started
    import_rss = {n: group_peak_rss_mb(p) for n, p in groups.items()}
    if profiler is not None:  # the import, not the preview
        profiler.stop()
        for name in MEASURED:
            print_profile(profiler.out_path(name), name, profiler.rate)
    seen = preview_count(http, api)
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
        "seconds": completed,
        "seen": seen,
        "seen_seconds": time.perf_counter() - started,
        "peak_rss_mb": import_rss,
        "peak_rss_with_preview_mb": {
            n: group_peak_rss_mb(p) for n, p in groups.items()
        },
        "cpu_seconds": {
            n: group_cpu_seconds(p) - cpu_before[n] for n, p in groups.items()
        },
    }


def print_import(kind: str, rows: int, result: dict[str, Any], raw: RawRates) -> None:
    rate = result["rows"] / result["seconds"]
    seen_rate = result["rows"] / result["seen_seconds"]
    rss, cpu = result["peak_rss_mb"], result["cpu_seconds"]
    print(
        f"  API import {rows:,} {kind}: {result['status']}, {result['created']:,} "
        f"created, {result['invalid']} rejected, {result['chunks']} chunks\n"
        f"    {result['uploads']} upload(s) of at most "
        f"{result['upload_mb']:.1f} MB; the API answered 202 in at most "
        f"{result['api_seconds']:.1f}s ({result['api_rows']:,} rows, "
        f"{result['api_rows'] / result['api_seconds']:,.0f} rows/s validated)\n"
        f"    to COMPLETED {result['seconds']:.1f}s = {rate:,.0f} rows/s = "
        f"{rate / raw.rows_per_s:.2f} of raw\n"
        f"    to a preview counting {result['seen']:,} of {rows:,}: "
        f"{result['seen_seconds']:.1f}s = {seen_rate:,.0f} rows/s = "
        f"{seen_rate / raw.rows_per_s:.2f} of raw\n"
        f"    peak RSS to COMPLETED: api {rss['api']:.0f} MB, contact_importer "
        f"{rss['contact_importer']:.0f} MB (api with the preview "
        f"{result['peak_rss_with_preview_mb']['api']:.0f} MB); "
        f"CPU api {cpu['api']:.1f}s, "
        f"contact_importer {cpu['contact_importer']:.1f}s",
        flush=True,
    )


def load() -> str:
    """The load averages (1, 5, 15 min): the machine is shared."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def benchmark(
    endpoints: dict[str, Any],
    sizes: list[int],
    kinds: list[str],
    profile_dir: Path | None = None,
) -> None:
    print("warming the emulator up", flush=True)
    raw_rates(endpoints, 10_000)
    summary = []
    for rows in sizes:
        raw = raw_rates(endpoints, rows)
        print(f"{rows:,} rows, load {load()}\n  {raw.line()}", flush=True)
        for kind in kinds:
            path = write_file(rows, kind)
            print(f"  importing {path.name} ({path.stat().st_size / 1e6:.1f} MB)")
            result = run_import(endpoints, path, profile_dir)
            print_import(kind, rows, result, raw)
            summary.append((rows, kind, result, raw))
    print(
        "\nrows      format  rows/s  raw rows/s  ratio  with preview  "
        "RSS api MB  RSS importer MB"
    )
    for rows, kind, result, raw in summary:
        rate = result["rows"] / result["seconds"]
        seen = result["rows"] / result["seen_seconds"]
        rss = result["peak_rss_mb"]
        print(
            f"{rows:<9,} {kind:<6} {rate:>7,.0f} {raw.rows_per_s:>11,.0f} "
            f"{rate / raw.rows_per_s:>6.2f} {seen / raw.rows_per_s:>13.2f} "
            f"{rss['api']:>11.0f} {rss['contact_importer']:>16.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--formats", nargs="+", choices=("csv", "json"), default=["csv", "json"]
    )
    parser.add_argument("--million", action="store_true", help="add 1,000,000 rows")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample api and contact_importer with py-spy during each import",
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    sizes = sorted({*args.rows, *([1_000_000] if args.million else [])})
    with running_stack(19300, {}) as endpoints:
        benchmark(endpoints, sizes, args.formats, args.profile)


if __name__ == "__main__":
    main()
