"""End to end on the local stack: launch → last send, fan-out rate, ops/message.

    python bench/bench_pipeline.py [--recipients 2000 10000] [--rate 1000]
                                   [--profile DIR]

For each size it seeds that many OPT_IN users, launches a campaign at a high
rate, and prints: fan-out (messages created per second), send throughput from
launch to the last message the simulator accepted, and Firestore reads and
writes per delivered message (counted by the platform layer of every function,
with two status callbacks per message: sent and delivered), then the CPU each
process of the stack used from launch to the last receipt, in seconds and in ms
per delivered message (the product's functions marked and summed apart).
Beside the table: the raw batched write and read rate of the same stack's
Firestore emulator in the same run (`stack_support.raw_rates`, as bench_import).

With --profile DIR, py-spy (requirements-dev.txt; needs ptrace permission)
samples the send-path functions, the simulator and the dispatcher over the same
phase, writes collapsed stacks to DIR/<recipients>/<process>.txt and prints each
one's top frames by self and by inclusive samples.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.profiling import PhaseMeter, cpu_by_process, process_groups
from bench.stack_support import (
    Api,
    firestore_client,
    ops_totals,
    raw_rates,
    running_stack,
    seed_users,
)
from local.emulators import reset_firestore


def count(db: Any, campaign_id: str, rank: int | None = None) -> int:
    from google.cloud import firestore

    query = db.collection("messages").where(
        filter=firestore.FieldFilter("campaign_id", "==", campaign_id)
    )
    if rank is not None:
        query = query.where(filter=firestore.FieldFilter("status_rank", "==", rank))
    return int(query.count().get()[0][0].value)


def run_size(
    endpoints: dict[str, Any], api: Api, size: int, rate: float, meter: PhaseMeter
) -> dict[str, float]:
    import requests

    reset_firestore(endpoints["firestore_emulator"], endpoints["project"])
    requests.post(endpoints["task_dispatcher"] + "/v1/tasks:purge", timeout=30)
    sim = endpoints["simulator"]
    requests.post(sim + "/_sim/reset", timeout=30)
    requests.post(
        sim + "/_sim/config",
        json={"callback_statuses": ["sent", "delivered"], "callback_delay_ms": 5},
        timeout=30,
    )
    db = firestore_client(endpoints)
    city = f"Bench{size}"
    print(f"[{size}] seeding users…", flush=True)
    seed_users(db, size, {"city": city})
    template = api.post("/v1/templates", {"name": "b", "body": "Hi {{ name }}, news"})
    segment = api.post(
        "/v1/segments",
        {
            "name": "b",
            "definition": {"attribute": "city", "operator": "equals", "value": city},
        },
    )
    campaign = api.post(
        "/v1/campaigns",
        {
            "name": f"bench {size}",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "rate_limit_mps": rate,
            "quiet_hours": None,
        },
    )
    before = ops_totals(endpoints)
    meter.start(str(size))
    started = time.monotonic()
    api.post(f"/v1/campaigns/{campaign['id']}/launch")
    fanned_out_at = sent_at = None
    last_report = 0.0
    while sent_at is None:
        time.sleep(0.5)
        accepted = requests.get(sim + "/_sim/stats", timeout=30).json()["accepted"]
        if fanned_out_at is None and count(db, campaign["id"]) >= size:
            fanned_out_at = time.monotonic()
        if accepted >= size:
            sent_at = time.monotonic()
        if time.monotonic() - last_report > 5:
            print(
                f"[{size}] {accepted} sent after {time.monotonic() - started:.0f}s",
                flush=True,
            )
            last_report = time.monotonic()
        if time.monotonic() - started > 1800:
            raise TimeoutError("campaign did not finish in 30 minutes")
    delivered_rank = 60
    while count(db, campaign["id"], delivered_rank) < size:
        time.sleep(0.5)
    time.sleep(2.5)  # let the counters reach their files
    meter.stop()
    after = ops_totals(endpoints)
    elapsed = sent_at - started
    fanout = (fanned_out_at or sent_at) - started
    return {
        "recipients": size,
        "seconds": elapsed,
        "msgs_per_s": size / elapsed,
        "fanout_per_s": size / fanout,
        "reads_per_msg": (after["reads"] - before["reads"]) / size,
        "writes_per_msg": (after["writes"] - before["writes"]) / size,
    }


def print_cpu(endpoints: dict[str, Any]) -> None:
    """CPU seconds used by each process of the stack since it started."""
    totals = cpu_by_process(process_groups(endpoints))
    print(
        "\nCPU seconds by process since the stack started:",
        ", ".join(
            f"{k}={v:.0f}" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])
        ),
    )


def run_sizes(
    endpoints: dict[str, Any], args: argparse.Namespace
) -> list[dict[str, float]]:
    api = Api(endpoints)
    results = []
    for size in args.recipients:
        meter = PhaseMeter(endpoints, args.profile, args.profile_rate)
        results.append(run_size(endpoints, api, size, args.rate, meter))
        print(f"\n[{size}] launch to last receipt:", end="")
        meter.report(size)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--base-port", type=int, default=18900)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample the send path with py-spy; collapsed stacks go to DIR",
    )
    parser.add_argument("--profile-rate", type=int, default=50, help="samples/s")
    parser.add_argument(
        "--raw-rows", type=int, default=10_000, help="rows of the raw write rate"
    )
    args = parser.parse_args()
    env = {"LOCAL_TASKS_MAX_DPS": "2000", "LOCAL_TASKS_MAX_CONCURRENT": "32"}
    with running_stack(args.base_port, env) as endpoints:
        results = run_sizes(endpoints, args)
        print_cpu(endpoints)
        # After the runs, on the same stack: the emulator's own rates beside them.
        raw = raw_rates(endpoints, args.raw_rows)
    print(f"\n{raw.line()}")
    print("\nrecipients  seconds  msgs/s  fan-out/s  reads/msg  writes/msg")
    for r in results:
        print(
            f"{r['recipients']:>10.0f}  {r['seconds']:>7.1f}  {r['msgs_per_s']:>6.1f}"
            f"  {r['fanout_per_s']:>9.1f}  {r['reads_per_msg']:>9.2f}"
            f"  {r['writes_per_msg']:>10.2f}"
        )


if __name__ == "__main__":
    main()
