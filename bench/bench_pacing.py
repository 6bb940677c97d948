"""Pacing accuracy on the local stack, counted in segments.

    python bench/bench_pacing.py [--rates 10 50] [--seconds 32]
                                 [--kinds single multi triggered]

For each rate and kind it sends about rate × seconds segments and reads the
simulator's accept times (`created_at`), each message weighted by its
segments (counted from the body as Twilio counts them):

- single: a launched campaign of one-segment messages;
- multi: a launched campaign of two-segment messages;
- triggered: a triggered campaign fed by events posted all at once, so the
  event router's pacer and the sender's guard do the spacing.

It prints the most segments accepted in any one-second window (sliding,
half-open; must not exceed the rate), the mean rate in segments as a ratio of
the configured one, and whether every recipient was sent. The local stack runs
one event_router behind one push subscription, so the triggered kind goes
through one router instance (see shared/delivery/pacing.py for several).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from typing import Any

import requests

from bench.stack_support import Api, firestore_client, running_stack, seed_users
from local.emulators import reset_firestore
from local.twilio_simulator import count_segments

SHORT_BODY = "Short note {{ name }}"
# Over 160 GSM-7 characters and under 306: two segments.
LONG_BODY = "Long note {{ name }}: " + "x" * 200
TRIGGER_TYPE = "pace_event"
EVENT_BATCH = 500


def max_in_window(sends: list[tuple[float, int]], width: float = 1.0) -> int:
    """The most weight in any half-open window [t, t + width)."""
    ordered = sorted(sends)
    best = held = start = 0
    for moment, weight in ordered:
        held += weight
        while moment - ordered[start][0] >= width:
            held -= ordered[start][1]
            start += 1
        best = max(best, held)
    return best


def mean_ratio(sends: list[tuple[float, int]], rate: float) -> float:
    """Segments per second over the span, the last send's weight excluded
    (it starts the span's end), as a ratio of `rate`."""
    ordered = sorted(sends)
    span = ordered[-1][0] - ordered[0][0] if len(ordered) > 1 else 0.0
    if not span:
        return 0.0
    return sum(w for _, w in ordered[:-1]) / span / rate


def _campaign_body(api: Api, kind: str, rate: float, segment_id: str) -> dict:
    template = api.post(
        "/v1/templates",
        {"name": "p", "body": LONG_BODY if kind == "multi" else SHORT_BODY},
    )
    body: dict[str, Any] = {
        "name": f"pace {kind} {rate:g}",
        "template_id": template["id"],
        "rate_limit_mps": rate,
        "quiet_hours": None,
    }
    if kind == "triggered":
        body["trigger"] = {"event": TRIGGER_TYPE}
    else:
        body["segment_id"] = segment_id
    return body


def _start(
    endpoints: dict[str, Any], api: Api, kind: str, rate: float, size: int
) -> list[str]:
    reset_firestore(endpoints["firestore_emulator"], endpoints["project"])
    requests.post(endpoints["task_dispatcher"] + "/v1/tasks:purge", timeout=30)
    requests.post(endpoints["simulator"] + "/_sim/reset", timeout=30)
    city = f"Pace{kind}{int(rate)}"
    phones = seed_users(firestore_client(endpoints), size, {"city": city})
    segment = api.post(
        "/v1/segments",
        {
            "name": city,
            "definition": {"attribute": "city", "operator": "equals", "value": city},
        },
    )
    campaign = api.post("/v1/campaigns", _campaign_body(api, kind, rate, segment["id"]))
    api.post(f"/v1/campaigns/{campaign['id']}/launch")
    if kind == "triggered":
        for start in range(0, size, EVENT_BATCH):
            events = [
                {"type": TRIGGER_TYPE, "phone": p}
                for p in phones[start : start + EVENT_BATCH]
            ]
            api.post("/v1/events", events)
    return phones


def run(
    endpoints: dict[str, Any], api: Api, kind: str, rate: float, seconds: float
) -> dict:
    per_message = 2 if kind == "multi" else 1
    size = max(2, int(rate * seconds / per_message))
    print(f"[{kind} {rate:g}/s] {size} recipients, starting", flush=True)
    phones = _start(endpoints, api, kind, rate, size)
    deadline = time.monotonic() + seconds * 3 + 60
    sent: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        time.sleep(2)
        sent = requests.get(
            endpoints["simulator"] + "/_sim/messages", timeout=30
        ).json()["messages"]
        print(f"[{kind} {rate:g}/s] {len(sent)}/{size} sent", flush=True)
        if len(sent) >= size:
            break
    sends = [
        (datetime.fromisoformat(m["created_at"]).timestamp(), count_segments(m["body"]))
        for m in sent
    ]
    return {
        "kind": kind,
        "rate": rate,
        "recipients": size,
        "sent": len(sent),
        "segments": sum(w for _, w in sends),
        "every_recipient_sent": {m["to"] for m in sent} == set(phones),
        "max_per_second": max_in_window(sends),
        "mean_rate_ratio": mean_ratio(sends, rate),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 50.0])
    parser.add_argument("--seconds", type=float, default=32.0)
    parser.add_argument("--kinds", nargs="+", default=["single", "multi", "triggered"])
    parser.add_argument("--base-port", type=int, default=19700)
    args = parser.parse_args()
    # The campaign's own pacing is measured, so the queue must not be the cap
    # (deployed: 10 dispatches/s, raised per sender as infra/README.md says).
    queue_above_rates = {"LOCAL_TASKS_MAX_DPS": "500"}
    with running_stack(args.base_port, queue_above_rates) as endpoints:
        api = Api(endpoints)
        results = [
            run(endpoints, api, kind, rate, args.seconds)
            for kind in args.kinds
            for rate in args.rates
        ]
    print(
        "\nkind       rate  msgs  sent  segs  all-sent  max-segs-in-1s  mean/rate  load"
    )
    for r in results:
        print(
            f"{r['kind']:<9}  {r['rate']:>4.0f}  {r['recipients']:>4}  "
            f"{r['sent']:>4}  {r['segments']:>4}  "
            f"{r['every_recipient_sent']!s:>8}  {r['max_per_second']:>14}  "
            f"{r['mean_rate_ratio']:>9.3f}  {r['load']}"
        )


if __name__ == "__main__":
    main()
