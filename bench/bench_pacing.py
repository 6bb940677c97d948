"""Pacing accuracy on the local stack.

    python bench/bench_pacing.py [--rates 10 50] [--seconds 32]

For each rate it launches a campaign of rate × seconds single-segment messages
and reads the simulator's accept times: the most sends in any one-second
window (sliding, half-open; must not exceed the rate), the mean rate as a
ratio of the configured one, and whether every recipient was sent.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

import requests

from bench.stack_support import Api, firestore_client, running_stack, seed_users
from local.emulators import reset_firestore


def max_in_window(times: list[float], width: float = 1.0) -> int:
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_rate(endpoints: dict[str, Any], api: Api, rate: float, seconds: float) -> dict:
    size = int(rate * seconds)
    reset_firestore(endpoints["firestore_emulator"], endpoints["project"])
    requests.post(endpoints["task_dispatcher"] + "/v1/tasks:purge", timeout=30)
    requests.post(endpoints["simulator"] + "/_sim/reset", timeout=30)
    city = f"Pace{int(rate)}"
    phones = seed_users(firestore_client(endpoints), size, {"city": city})
    template = api.post("/v1/templates", {"name": "p", "body": "Short note {{ name }}"})
    segment = api.post(
        "/v1/segments",
        {
            "name": city,
            "definition": {"attribute": "city", "operator": "equals", "value": city},
        },
    )
    campaign = api.post(
        "/v1/campaigns",
        {
            "name": f"pace {rate}",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "rate_limit_mps": rate,
            "quiet_hours": None,
        },
    )
    print(f"[{rate:g}/s] {size} recipients, launching", flush=True)
    api.post(f"/v1/campaigns/{campaign['id']}/launch")
    deadline = time.monotonic() + seconds * 3 + 60
    sent: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        time.sleep(2)
        sent = requests.get(
            endpoints["simulator"] + "/_sim/messages", timeout=30
        ).json()["messages"]
        print(f"[{rate:g}/s] {len(sent)}/{size} sent", flush=True)
        if len(sent) >= size:
            break
    times = [datetime.fromisoformat(m["created_at"]).timestamp() for m in sent]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    return {
        "rate": rate,
        "recipients": size,
        "sent": len(sent),
        "every_recipient_sent": {m["to"] for m in sent} == set(phones),
        "max_per_second": max_in_window(times),
        "mean_rate_ratio": ((len(times) - 1) / span / rate) if span else 0.0,
        "span_s": span,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 50.0])
    parser.add_argument("--seconds", type=float, default=32.0)
    parser.add_argument("--base-port", type=int, default=19700)
    args = parser.parse_args()
    # The campaign's own pacing is measured, so the queue must not be the cap
    # (deployed: 10 dispatches/s, raised per sender as infra/README.md says).
    queue_above_rates = {"LOCAL_TASKS_MAX_DPS": "500"}
    with running_stack(args.base_port, queue_above_rates) as endpoints:
        api = Api(endpoints)
        results = [run_rate(endpoints, api, r, args.seconds) for r in args.rates]
    print("\nrate  recipients  sent  all-sent  max-in-1s  mean/rate  span-s")
    for r in results:
        print(
            f"{r['rate']:>4.0f}  {r['recipients']:>10}  {r['sent']:>4}  "
            f"{r['every_recipient_sent']!s:>8}  {r['max_per_second']:>9}  "
            f"{r['mean_rate_ratio']:>9.3f}  {r['span_s']:>6.1f}"
        )


if __name__ == "__main__":
    main()
