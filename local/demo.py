"""`make demo`: the whole pipeline on this machine, end to end.

Brings the local stack up (or reuses a running one), imports the sample
contacts in local/demo_data/ through the API, launches a campaign to them,
prints its progress and final counts, and leaves the stack running for
exploring. Everything it reads is in the repository.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from local import cli, emulators, stack

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "local" / "demo_data"
STATE = REPO / ".local"
FINAL = {"DELIVERED", "READ", "UNDELIVERED", "FAILED", "SKIPPED"}
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
}


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


class Api:
    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.base = endpoints["api"]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {endpoints['api_key']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.base + path, timeout=60, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(
                f"{method} {path}: {response.status_code} {response.text}"
            )
        return response.json() if response.content else None


def running_endpoints() -> dict[str, Any]:
    path = STATE / "endpoints.json"
    if path.exists():
        endpoints = json.loads(path.read_text())
        try:
            requests.get(endpoints["api"] + "/healthz", timeout=3).raise_for_status()
            say("reusing the running local stack")
            return dict(endpoints)
        except requests.RequestException:
            stack.down(STATE)
    say("starting the local stack (emulators, simulator, dispatcher, 10 functions)")
    return stack.up(stack.free_base_port(18600), STATE, {})


def completed_import(api: Api, accepted: dict[str, Any], timeout: float = 120) -> Any:
    """The import's report once contact_importer has upserted every chunk."""
    report = accepted
    deadline = time.monotonic() + timeout
    while report["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise SystemExit(f"import {report['id']} still RUNNING after {timeout}s")
        time.sleep(0.5)
        report = api.call("GET", f"/v1/imports/{report['id']}")
    if report["status"] != "COMPLETED":
        raise SystemExit(f"import {report['id']} {report['status']}: {report}")
    return report


def import_samples(api: Api) -> None:
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix in CONTENT_TYPES)
    if not files:
        raise SystemExit(f"no sample contact files in {SAMPLES}")
    for path in files:
        accepted = api.call(
            "POST",
            "/v1/imports",
            data=path.read_bytes(),
            headers={"Content-Type": CONTENT_TYPES[path.suffix]},
        )
        # The API answers 202 at once; the campaign needs the users written.
        report = completed_import(api, accepted)
        say(
            f"imported {path.name}: {report['total']} rows, {report['created']} new, "
            f"{report['updated']} updated, {report['duplicates']} duplicates, "
            f"{report['invalid']} invalid"
        )


def create_campaign(api: Api) -> str:
    template = api.call(
        "POST",
        "/v1/templates",
        json={
            "name": "demo greeting",
            "body": 'Hi {{ name | default: "there" }}, greetings from '
            '{{ city | default: "Event Stream Engine" }}!',
        },
    )
    segment = api.call(
        "POST",
        "/v1/segments",
        json={
            "name": "Sri Lanka",
            "definition": {"attribute": "country", "operator": "equals", "value": "LK"},
        },
    )
    preview = api.call("POST", f"/v1/segments/{segment['id']}/preview")
    say(
        f"segment 'Sri Lanka': {preview['count']} users, {preview['eligible']} opted in"
    )
    campaign = api.call(
        "POST",
        "/v1/campaigns",
        json={
            "name": "demo campaign",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "rate_limit_mps": 5,
            # Off so the demo finishes at any hour; campaigns default to
            # 21:00-08:00 in each recipient's local time.
            "quiet_hours": None,
        },
    )
    dry = api.call("POST", f"/v1/campaigns/{campaign['id']}/dry-run")
    say(
        f"dry run: {dry['eligible']} eligible of {dry['targeted']}, "
        f"skips {dry['skips']}, about {dry['estimated_duration_seconds']}s "
        "at 5 segments/s"
    )
    return str(campaign["id"])


def status_counts(api: Api, campaign_id: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    token = None
    while True:
        query = {"limit": "500", **({"page_token": token} if token else {})}
        page = api.call("GET", f"/v1/campaigns/{campaign_id}/messages", params=query)
        counts.update(m["status"] for m in page["items"])
        token = page["next_page_token"]
        if not token:
            return counts


def watch(api: Api, campaign_id: str, timeout: float = 180) -> Counter[str]:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        campaign = api.call("GET", f"/v1/campaigns/{campaign_id}")
        counts = status_counts(api, campaign_id)
        line = f"{campaign['status']:<10} " + ", ".join(
            f"{k}={v}" for k, v in sorted(counts.items())
        )
        if line != last:
            say(line)
            last = line
        done = sum(counts.values()) and set(counts) <= FINAL
        if campaign["status"] == "COMPLETED" or (
            done and campaign["status"] != "RUNNING"
        ):
            return counts
        time.sleep(1)
    say("stopped watching (timeout); the campaign keeps running")
    return status_counts(api, campaign_id)


def main() -> int:
    missing = emulators.missing_emulators()
    if missing:
        say(f"cannot run: {emulators.INSTALL_HINT} (missing: {', '.join(missing)})")
        return 2
    endpoints = running_endpoints()
    api = Api(endpoints)
    import_samples(api)
    campaign_id = create_campaign(api)
    api.call("POST", f"/v1/campaigns/{campaign_id}/launch")
    say(f"launched campaign {campaign_id}; progress:")
    counts = watch(api, campaign_id)
    sent = requests.get(endpoints["simulator"] + "/_sim/messages", timeout=10).json()
    say(f"final counts: {dict(counts)}")
    say(f"the Twilio simulator accepted {len(sent['messages'])} messages")
    say(
        f"the summary, as the operator CLI shows it (python -m local.cli "
        f"campaigns summary {campaign_id}):"
    )
    cli.main(
        [
            "--base-url",
            endpoints["api"],
            "--api-key",
            endpoints["api_key"],
            "campaigns",
            "summary",
            campaign_id,
        ]
    )
    say(f"API: {endpoints['api']} (Authorization: Bearer {endpoints['api_key']})")
    say(f"endpoints: {STATE / 'endpoints.json'}; logs: {STATE / 'logs'}")
    say("the stack keeps running for exploring; stop it with: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
