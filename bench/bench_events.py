"""Events on the local stack: ingestion rate and event-to-carrier latency.

    python bench/bench_events.py [--events 20000] [--clients 4]
                                 [--latency-events 1000] [--latency-batch 5]
                                 [--latency-rate 25]

1. Ingestion: POSTs `--events` events to /v1/events in batches of 500 from
   `--clients` concurrent clients, and prints events accepted per second
   (target: >= 1,000 events/s). The type has no campaign, so the router only
   records each event as unmatched.
2. Latency: seeds `--latency-events` OPT_IN users, launches one triggered
   campaign at 1,000 msg/s, posts one event per user in batches of
   `--latency-batch` at `--latency-rate` events/s (a steady stream, so the
   figure is the pipeline's latency rather than the time to drain a burst:
   the Pub/Sub emulator pushes about 2 messages at a time, which caps the
   local router near 2 / its per-event time, while production push scales),
   and prints p50/p99 of (the simulator's created_at of the send) - (the time
   that event's POST started), matched by phone (target: p50 <= 2 s).
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import requests

from bench.stack_support import (
    Api,
    firestore_client,
    ops_totals,
    running_stack,
    seed_users,
    wait_until,
)
from local.emulators import reset_firestore

BATCH = 500
INGEST_TYPE = "bench.ingest"
LATENCY_TYPE = "bench.latency"
INGEST_FIRST_NUMBER = 5_600_000
LATENCY_FIRST_NUMBER = 5_000_000


def ingest_batches(count: int) -> list[list[dict[str, Any]]]:
    events = [
        {
            "event_id": f"ingest-{i}",
            "type": INGEST_TYPE,
            # Valid North American numbers (an exchange cannot start with 0).
            "phone": f"+1415{INGEST_FIRST_NUMBER + i:07d}",
            "properties": {"order_id": f"O{i}", "total": i % 300},
        }
        for i in range(count)
    ]
    return [events[i : i + BATCH] for i in range(0, count, BATCH)]


def post_batch(api: Api, batch: list[dict[str, Any]]) -> float:
    started = time.monotonic()
    answer = api.post("/v1/events", batch)
    if answer["accepted"] != len(batch):
        raise RuntimeError(f"rejected: {answer['rejected'][:3]}")
    return time.monotonic() - started


def unrouted(db: Any, event_type: str) -> int:
    from google.cloud import firestore

    query = (
        db.collection("events")
        .where(filter=firestore.FieldFilter("type", "==", event_type))
        .where(filter=firestore.FieldFilter("status", "==", "received"))
    )
    return int(query.count().get()[0][0].value)


def bench_ingest(
    endpoints: dict[str, Any], api: Api, count: int, clients: int
) -> dict[str, float]:
    batches = ingest_batches(count)
    before = ops_totals(endpoints)
    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        request_seconds = list(pool.map(lambda b: post_batch(api, b), batches))
    elapsed = time.monotonic() - started
    print(f"[ingest] {count} events accepted in {elapsed:.1f}s", flush=True)
    db = firestore_client(endpoints)
    drained = wait_until(
        lambda: unrouted(db, INGEST_TYPE) == 0, timeout=600, interval=1
    )
    time.sleep(2.5)  # let the operation counters reach their files
    after = ops_totals(endpoints)
    return {
        "events": count,
        "seconds": elapsed,
        "events_per_s": count / elapsed,
        "request_p50_s": statistics.median(request_seconds),
        "routed_all_after_s": drained - started,
        "writes_per_event": (after["writes"] - before["writes"]) / count,
        "reads_per_event": (after["reads"] - before["reads"]) / count,
    }


def launch_triggered_campaign(api: Api) -> str:
    template = api.post(
        "/v1/templates",
        {"name": "b", "body": "Order {{ event.properties.order_id }} shipped"},
    )
    campaign = api.post(
        "/v1/campaigns",
        {
            "name": "bench triggered",
            "template_id": template["id"],
            "trigger": {"event": LATENCY_TYPE},
            "rate_limit_mps": 1000,
            "quiet_hours": None,
        },
    )
    api.post(f"/v1/campaigns/{campaign['id']}/launch")
    return str(campaign["id"])


def post_latency_events(
    api: Api, phones: list[str], batch_size: int, rate: float
) -> dict[str, datetime]:
    """Post one event per phone at `rate` events/s; returns each post time."""
    posted_at: dict[str, datetime] = {}
    started = time.monotonic()
    for start in range(0, len(phones), batch_size):
        chunk = phones[start : start + batch_size]
        if rate > 0:
            time.sleep(max(0.0, started + start / rate - time.monotonic()))
        now = datetime.now(UTC)
        api.post(
            "/v1/events",
            [
                {"type": LATENCY_TYPE, "phone": p, "properties": {"order_id": p[-4:]}}
                for p in chunk
            ],
        )
        posted_at.update({p: now for p in chunk})
    return posted_at


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_latency(
    endpoints: dict[str, Any], api: Api, count: int, batch_size: int, rate: float
) -> dict[str, float]:
    sim = endpoints["simulator"]
    requests.post(sim + "/_sim/reset", timeout=30).raise_for_status()
    db = firestore_client(endpoints)
    phones = seed_users(db, count, {"city": "Latency"}, first=LATENCY_FIRST_NUMBER)
    launch_triggered_campaign(api)
    time.sleep(0.5)
    started = time.monotonic()
    posted_at = post_latency_events(api, phones, batch_size, rate)
    post_seconds = time.monotonic() - started

    def all_sent() -> bool:
        stats = requests.get(sim + "/_sim/stats", timeout=30).json()
        return int(stats["accepted"]) >= count

    wait_until(all_sent, timeout=300, interval=0.5)
    sent = requests.get(sim + "/_sim/messages", timeout=60).json()["messages"]
    latencies = [
        (datetime.fromisoformat(m["created_at"]) - posted_at[m["to"]]).total_seconds()
        for m in sent
        if m["to"] in posted_at
    ]
    return {
        "events": count,
        "posting_s": post_seconds,
        "p50_s": percentile(latencies, 0.50),
        "p99_s": percentile(latencies, 0.99),
        "max_s": max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--latency-events", type=int, default=1000)
    parser.add_argument("--latency-batch", type=int, default=5)
    # 0 posts as fast as possible: then the figure is mostly the time to drain.
    parser.add_argument("--latency-rate", type=float, default=25.0)
    parser.add_argument("--base-port", type=int, default=19550)
    args = parser.parse_args()
    env = {"LOCAL_TASKS_MAX_DPS": "2000", "LOCAL_TASKS_MAX_CONCURRENT": "32"}
    with running_stack(args.base_port, env) as endpoints:
        reset_firestore(endpoints["firestore_emulator"], endpoints["project"])
        api = Api(endpoints)
        ingest = bench_ingest(endpoints, api, args.events, args.clients)
        latency = bench_latency(
            endpoints,
            api,
            args.latency_events,
            args.latency_batch,
            args.latency_rate,
        )
    print(
        f"\ningestion: {ingest['events']:.0f} events in batches of {BATCH} from "
        f"{args.clients} clients: {ingest['events_per_s']:.0f} events/s accepted "
        f"(target >= 1000); request p50 {ingest['request_p50_s']:.2f}s; the router "
        f"drained them at {ingest['events'] / ingest['routed_all_after_s']:.0f} "
        "events/s (the Pub/Sub emulator pushes about 2 at a time); per event "
        f"{ingest['writes_per_event']:.2f} writes, {ingest['reads_per_event']:.2f} "
        "reads (api + router)"
    )
    print(
        f"latency: {latency['events']:.0f} events (batches of {args.latency_batch} "
        f"at {args.latency_rate:.0f} events/s, posted in {latency['posting_s']:.1f}s)"
        " to one triggered campaign: "
        f"p50 {latency['p50_s']:.2f}s (target <= 2s), p99 {latency['p99_s']:.2f}s, "
        f"max {latency['max_s']:.2f}s"
    )


if __name__ == "__main__":
    main()
