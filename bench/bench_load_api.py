"""The HTTP API under load: concurrent clients on a mixed read/write workload.

    python bench/bench_load_api.py [--clients 50] [--seconds 60] [--warmup 3]

On the local stack (its own, or the one ESE_ENDPOINTS names) it seeds 5,000
users, 20 templates, a segment and 10 campaigns with 200 messages each, then
runs `--clients` authenticated callers in a closed loop (each sends its next
request when the last one answered) for `--seconds`. The mix, per 100 requests:

    reads (75)   30 GET /v1/users/{phone}       10 GET /v1/users?limit=50
                 10 GET /v1/campaigns?limit=50  10 GET /v1/templates?limit=50
                  5 GET /v1/templates/{id}       5 GET /v1/messages/{id}
                  5 GET /v1/campaigns/{id}/summary (live: a DRAFT campaign)
    writes (25)  10 POST /v1/users (a new phone)
                 10 PATCH /v1/users/{phone} (merge two attributes)
                  5 POST /v1/templates

A 2xx is a success, and so is a 409 on POST /v1/users (a phone already taken);
any other answer, a 5xx, a timeout or a broken connection is an error. The same
callers, mix and seconds then run against the floor (bench/floor_function: one
Firestore write per request, served like `api`, with its THREADS). Prints
throughput, p50/p99 latency, CPU per request and errors, each beside the
floor's, and the figures per kind of request. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load_support import (  # noqa: E402
    Call,
    LoadResult,
    closed_loop,
    comparison_lines,
    describe_errors,
    floor_function,
    machine_line,
    measured,
    stack_groups,
)
from bench.stack_support import (  # noqa: E402
    Api,
    firestore_client,
    running_stack,
    seed_messages,
    seed_users,
)
from local.emulators import reset_firestore  # noqa: E402

USERS = 5000
TEMPLATES = 20
CAMPAIGNS = 10
MESSAGES_PER_CAMPAIGN = 200
NEW_USERS_FIRST = 3_000_000  # +1415300…: clear of the seeded +1415200…
CITIES = ("Colombo", "Kandy", "Galle", "Jaffna")
TIERS = ("bronze", "silver", "gold")
PAGE = "limit=50"

# request kind → how many of every 100 requests (the builders below say what)
MIX: dict[str, int] = {
    "GET user": 30,
    "GET users": 10,
    "GET campaigns": 10,
    "GET templates": 10,
    "GET template": 5,
    "GET message": 5,
    "GET summary": 5,
    "POST user": 10,
    "PATCH user": 10,
    "POST template": 5,
}


@dataclass(frozen=True)
class Fixtures:
    phones: list[str]
    template_ids: list[str]
    campaign_ids: list[str]
    message_ids: list[str]


class Workload:
    """Draws the next request of the mix; new phones never repeat in a run."""

    def __init__(self, fixtures: Fixtures) -> None:
        self.fixtures = fixtures
        self.new_numbers = itertools.count(NEW_USERS_FIRST)
        self.builders: dict[str, Callable[[random.Random], Call]] = {
            "GET user": self.get_user,
            "GET users": lambda _: Call("GET users", "GET", f"/v1/users?{PAGE}"),
            "GET campaigns": lambda _: Call(
                "GET campaigns", "GET", f"/v1/campaigns?{PAGE}"
            ),
            "GET templates": lambda _: Call(
                "GET templates", "GET", f"/v1/templates?{PAGE}"
            ),
            "GET template": self.get_template,
            "GET message": self.get_message,
            "GET summary": self.get_summary,
            "POST user": self.post_user,
            "PATCH user": self.patch_user,
            "POST template": self.post_template,
        }
        self.labels = list(MIX)
        self.weights = [MIX[label] for label in self.labels]

    def __call__(self, rng: random.Random) -> Call:
        label = rng.choices(self.labels, self.weights)[0]
        return self.builders[label](rng)

    def get_user(self, rng: random.Random) -> Call:
        phone = quote(rng.choice(self.fixtures.phones))
        return Call("GET user", "GET", f"/v1/users/{phone}")

    def get_template(self, rng: random.Random) -> Call:
        template_id = rng.choice(self.fixtures.template_ids)
        return Call("GET template", "GET", f"/v1/templates/{template_id}")

    def get_message(self, rng: random.Random) -> Call:
        message_id = rng.choice(self.fixtures.message_ids)
        return Call("GET message", "GET", f"/v1/messages/{message_id}")

    def get_summary(self, rng: random.Random) -> Call:
        campaign_id = rng.choice(self.fixtures.campaign_ids)
        return Call("GET summary", "GET", f"/v1/campaigns/{campaign_id}/summary")

    def post_user(self, rng: random.Random) -> Call:
        body = {
            "phone": f"+1415{next(self.new_numbers):07d}",
            "attributes": {"name": "Load", "city": rng.choice(CITIES)},
        }
        return Call("POST user", "POST", "/v1/users", json=body, expected=_TAKEN)

    def patch_user(self, rng: random.Random) -> Call:
        phone = quote(rng.choice(self.fixtures.phones))
        body = {"attributes": {"tier": rng.choice(TIERS), "visits": rng.randint(0, 99)}}
        return Call("PATCH user", "PATCH", f"/v1/users/{phone}", json=body)

    def post_template(self, rng: random.Random) -> Call:
        body = {
            "name": f"load {rng.randint(0, 10**6)}",
            "body": 'Hi {{ name | default: "there" }}, {{ city }} deals inside',
        }
        return Call("POST template", "POST", "/v1/templates", json=body)


_TAKEN = frozenset({409})


def seed(endpoints: dict[str, Any]) -> Fixtures:
    """Users and messages straight to Firestore; the rest through the API."""
    db = firestore_client(endpoints)
    phones = seed_users(db, USERS, {"city": "Colombo"})
    api = Api(endpoints)
    template_ids = [
        api.post("/v1/templates", {"name": f"seed {i}", "body": "Hi {{ name }}, news"})[
            "id"
        ]
        for i in range(TEMPLATES)
    ]
    segment = api.post(
        "/v1/segments",
        {
            "name": "colombo",
            "definition": {
                "attribute": "city",
                "operator": "equals",
                "value": "Colombo",
            },
        },
    )
    campaign_ids, message_ids = [], []
    for number in range(CAMPAIGNS):
        campaign = api.post(
            "/v1/campaigns",
            {
                "name": f"load {number}",
                "template_id": template_ids[number % TEMPLATES],
                "segment_id": segment["id"],
                "rate_limit_mps": 10,
            },
        )
        campaign_ids.append(campaign["id"])
        first = number * MESSAGES_PER_CAMPAIGN
        recipients = phones[first : first + MESSAGES_PER_CAMPAIGN]
        # Half the campaigns read as delivered, half as just sent.
        rank = 60 if number % 2 else 30
        message_ids += seed_messages(db, campaign["id"], recipients, rank)
    return Fixtures(phones, template_ids, campaign_ids, message_ids)


def run_load(
    base: str,
    groups: dict[str, int],
    args: Any,
    fixtures: Fixtures,
    target: str,
    key: str,
) -> LoadResult:
    headers = {"Authorization": f"Bearer {key}"}
    if args.warmup > 0:
        warm = closed_loop(
            base, Workload(fixtures), args.clients, args.warmup, "warm-up", headers
        )
        measured({}, warm)
    print(f"[{target}] {args.clients} clients for {args.seconds:.0f}s", flush=True)
    run = closed_loop(
        base, Workload(fixtures), args.clients, args.seconds, target, headers
    )
    return measured(groups, run)


def report(args: Any, api: LoadResult, floor: LoadResult, threads: str) -> None:
    reads = sum(w for label, w in MIX.items() if label.startswith("GET"))
    mix = ", ".join(f"{w}% {label}" for label, w in MIX.items())
    print(
        f"\nAPI load: {args.clients} clients, closed loop, {args.seconds:.0f}s per "
        f"target after {args.warmup:.0f}s of warm-up; {reads}% reads, "
        f"{100 - reads}% writes: {mix}"
    )
    print(
        f"api and floor: functions-framework (gunicorn gthread, 1 worker) with "
        f"THREADS={threads}, same Firestore emulator; {machine_line()}"
    )
    for line in comparison_lines("api", api, floor):
        print(line)
    print(f"\n{'request':<15}{'count':>8}{'p50 ms':>9}{'p99 ms':>9}  errors")
    for label in MIX:
        count = sum(1 for s in api.samples if s.label == label)
        errors = sum(1 for s in api.samples if s.label == label and not s.ok)
        print(
            f"{label:<15}{count:>8}{api.latency_ms(0.5, label):>9.1f}"
            f"{api.latency_ms(0.99, label):>9.1f}  {errors}"
            f"{describe_errors(api, label)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, each")
    parser.add_argument("--base-port", type=int, default=21500)
    args = parser.parse_args()
    with running_stack(args.base_port, {}) as endpoints:
        reset_firestore(endpoints["firestore_emulator"], endpoints["project"])
        print("[seed] users, templates, campaigns and messages…", flush=True)
        fixtures = seed(endpoints)
        key = endpoints["api_key"]
        groups = stack_groups(endpoints, "api")
        api = run_load(endpoints["api"], groups, args, fixtures, "api", key)
        with floor_function(endpoints, "api") as floor:
            floor_result = run_load(
                floor.url, floor.groups, args, fixtures, "floor", key
            )
    report(args, api, floor_result, floor.threads)


if __name__ == "__main__":
    main()
