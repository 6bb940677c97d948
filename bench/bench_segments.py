"""Segment evaluation throughput and memory, against the emulator's raw read rate.

Usage: .venv/bin/python bench/bench_segments.py [--users 100000]

Seeds 10,000 and then --users users, and at each size evaluates two segments
that match ~10% of them with `iter_segment_users`, the evaluator that preview,
dry-run and launch share, each in a fresh process so that its peak RSS is its
own:
- pushdown: city == Colombo (20%, pushed into the query) AND age >= 50
  (checked in Python);
- scan: NOT age < 90, which no query can answer, so every user is read.
Then pages through the whole collection with plain cursor queries (the same
page size) for the emulator's raw read rate. Starts a Firestore emulator unless
FIRESTORE_EMULATOR_HOST is set. Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack_support import peak_rss_mb  # noqa: E402
from local import emulators  # noqa: E402

PROJECT = "bench-segments"
WORK = ROOT / ".local/bench"
BASE_USERS = 10_000
SEED_CHUNK = 500
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
CITIES = ["Colombo", "Kandy", "Galle", "Jaffna", "Matara"]
SEGMENTS: dict[str, dict[str, Any]] = {
    "pushdown": {
        "logic": "AND",
        "conditions": [
            {"attribute": "city", "operator": "equals", "value": "Colombo"},
            {"attribute": "age", "operator": "gte", "value": 50},
        ],
    },
    "scan": {"not": {"attribute": "age", "operator": "lt", "value": 90}},
}


def user_document(index: int) -> dict[str, Any]:
    from shared.store.users import ConsentState, new_user, user_doc

    state = ConsentState.STOP if index % 50 == 0 else ConsentState.OPT_IN
    attributes = {
        "name": f"Customer {index}",
        "city": CITIES[index % len(CITIES)],
        # Independent of the city: a multiplier coprime with 5 spreads ages.
        "age": (index * 7 // 5) % 100,
        "tier": "gold" if index % 7 == 0 else "basic",
    }
    created = NOW - timedelta(minutes=index)
    user = new_user(f"+9477{index:07d}", attributes, None, state, "bench", created)
    return user_doc(user)


def seed(host: str, start: int, stop: int) -> None:
    from google.cloud import firestore

    from shared.store.users import user_ref

    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    db = firestore.Client(project=PROJECT)

    def write(first: int) -> None:
        batch = db.batch()
        for index in range(first, min(first + SEED_CHUNK, stop)):
            document = user_document(index)
            batch.set(user_ref(db, document["phone"]), document)
        batch.commit()

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(start, stop, SEED_CHUNK)))
    print(f"seeded users {start:,}..{stop:,} in {time.perf_counter() - started:.0f}s")


# ---------------------------------------------------------------- children


def child_evaluate(name: str) -> dict[str, Any]:
    from google.cloud import firestore

    from shared.audience.segments import iter_segment_users
    from shared.platform.firestore import operations

    db = firestore.Client(project=PROJECT)
    matched = 0
    started = time.perf_counter()
    for _ in iter_segment_users(db, SEGMENTS[name], NOW):
        matched += 1
        if matched % 5_000 == 0:
            print(f"    {matched:,} matched", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    reads = operations.snapshot().get("reads", 0)
    return {
        "matched": matched,
        "reads": reads,
        "seconds": elapsed,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_raw(page_size: int) -> dict[str, Any]:
    """Every user document through plain cursor-paged queries, nothing else:
    the evaluator's paging (same page size, streamed) without its work."""
    from google.cloud import firestore

    db = firestore.Client(project=PROJECT)
    query = db.collection("users").order_by("__name__")
    read = 0
    cursor = None
    started = time.perf_counter()
    while True:
        page = query.limit(page_size)
        if cursor is not None:
            page = page.start_after(cursor)
        in_page = 0
        for snapshot in page.stream():
            in_page += 1
            cursor = snapshot
        read += in_page
        if in_page < page_size:
            break
    elapsed = time.perf_counter() - started
    return {"reads": read, "seconds": elapsed, "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------- parent


def run_child(host: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": host, "GCP_PROJECT": PROJECT}
    out = subprocess.run(  # noqa: S603 - this script, fixed arguments
        [sys.executable, __file__, "--child", *args],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure_size(host: str, users: int) -> dict[str, float]:
    rss: dict[str, float] = {}
    for name in SEGMENTS:
        result = run_child(host, "evaluate", name)
        seconds, reads, matched = result["seconds"], result["reads"], result["matched"]
        rss[name] = result["peak_rss_mb"]
        print(
            f"  {name}: {matched:,} of {users:,} matched in {seconds:.1f}s; "
            f"{reads / seconds:,.0f} users scanned/s, "
            f"{reads / max(matched, 1):.2f} reads per matched user, "
            f"peak RSS {rss[name]:.0f} MB",
            flush=True,
        )
    from shared.audience.segments import SCAN_PAGE_SIZE

    raw = run_child(host, "raw", str(SCAN_PAGE_SIZE))
    print(
        f"  raw paged read: {raw['reads']:,} docs in {raw['seconds']:.1f}s = "
        f"{raw['reads'] / raw['seconds']:,.0f} docs/s, "
        f"peak RSS {raw['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    return rss


def reset(host: str) -> None:
    """Empty the database; large ones take the emulator longer than 30 s."""
    url = f"http://{host}/emulator/v1/projects/{PROJECT}/databases/(default)/documents"
    requests.delete(url, timeout=600).raise_for_status()


def benchmark(host: str, sizes: list[int]) -> None:
    reset(host)
    rss: dict[int, dict[str, float]] = {}
    seeded = 0
    for users in sizes:
        seed(host, seeded, users)
        seeded = users
        print(f"evaluating over {users:,} users", flush=True)
        rss[users] = measure_size(host, users)
    largest = max(sizes)
    if largest != BASE_USERS:
        for name in SEGMENTS:
            ratio = rss[largest][name] / rss[BASE_USERS][name]
            print(f"peak RSS {name} {largest:,} / {BASE_USERS:,} = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, value = args.child
        if kind == "evaluate":
            result = child_evaluate(value)
        else:
            result = child_raw(int(value))
        print(json.dumps(result))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    sizes = sorted({BASE_USERS, args.users})
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if host:
        benchmark(host, sizes)
        return
    server = emulators.start_firestore(emulators.free_port(), WORK)
    try:
        benchmark(server.host, sizes)
    finally:
        emulators.stop_group(server.pgid, grace=2)


if __name__ == "__main__":
    main()
