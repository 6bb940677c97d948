"""Reliability under faults: exactly one send per recipient, nothing lost.

One local stack runs with fault injection wired in (local/faults.py); each
test switches the fault class on, runs a campaign, switches faults off and
checks the promises: every message final, at most one send per recipient and
exactly one for each that ended SENT or later, counts that match a recount,
consent changes honoured, and dead-letter queues holding only the poison.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local import emulators, stack
from tests.e2e.conftest import REPO, Stack, wait_for

pytestmark = pytest.mark.e2e

RECIPIENTS = int(os.environ.get("ESE_FAULT_RECIPIENTS", "2000"))
FINAL = {"DELIVERED", "UNDELIVERED", "FAILED", "SKIPPED", "READ"}
ACCEPTED = {"SENT", "DELIVERED", "UNDELIVERED", "READ"}
TOPICS = (
    "campaign-launches",
    "recipient-batches",
    "delivery-receipts",
    "inbound-messages",
)


class FaultStack(Stack):
    def set_faults(self, **plan: Any) -> None:
        path = Path(self.endpoints["state_dir"]) / "faults.json"
        path.write_text(json.dumps({"seed": 20261126, **plan}))
        rate = plan.get("tasks_duplicate", 0.0)
        requests.post(
            self.endpoints["task_dispatcher"] + "/v1/config",
            json={"duplicate_after_success_rate": rate},
            timeout=10,
        ).raise_for_status()

    def dead_letters(self, topic: str) -> list[dict[str, Any]]:
        url = (
            f"http://{self.endpoints['pubsub_emulator']}/v1/projects/"
            f"{self.endpoints['project']}/subscriptions/{topic}-dlq-pull:pull"
        )
        response = requests.post(
            url, json={"maxMessages": 100, "returnImmediately": True}, timeout=30
        )
        response.raise_for_status()
        received = response.json().get("receivedMessages", [])
        if received:
            requests.post(
                url.replace(":pull", ":acknowledge"),
                json={"ackIds": [m["ackId"] for m in received]},
                timeout=10,
            )
        return [m["message"] for m in received]

    def publish(self, topic: str, data: bytes) -> None:
        url = (
            f"http://{self.endpoints['pubsub_emulator']}/v1/projects/"
            f"{self.endpoints['project']}/topics/{topic}:publish"
        )
        payload = {"messages": [{"data": base64.b64encode(data).decode()}]}
        requests.post(url, json=payload, timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[FaultStack]:
    if emulators.missing_emulators():
        pytest.skip("local stack unavailable: emulators missing")
    base = stack.free_base_port(int(os.environ.get("ESE_FAULT_BASE_PORT", "19900")))
    state_dir = REPO / ".local" / f"fault-stack-{base}"
    state_dir.mkdir(parents=True, exist_ok=True)
    faults_file = state_dir / "faults.json"
    faults_file.write_text("{}")
    env = {
        "ESE_FAULTS_FILE": str(faults_file),
        "SENDING_LEASE_SECONDS": "6",
        # Receipts queue up behind the faults; complete only once they land.
        "SETTLE_SECONDS": "600",
        "SCHEDULER_TICK_SECONDS": "2",
        "LOCAL_TASKS_MAX_BACKOFF": "2",
        "LOCAL_TASKS_MAX_CONCURRENT": "32",
    }
    try:
        yield FaultStack(stack.up(base, state_dir, env))
    finally:
        stack.down(state_dir)


@pytest.fixture
def faulty(fault_stack: FaultStack) -> FaultStack:
    fault_stack.set_faults()
    fault_stack.reset()
    for topic in TOPICS:
        fault_stack.dead_letters(topic)
    return fault_stack


_next_first_number = [0]


def seed_audience(e2e: FaultStack, city: str, count: int) -> list[str]:
    """Each test gets numbers of its own, so a send still in flight from an
    earlier test can never look like a second send in this one."""
    from bench.stack_support import seed_users

    first = _next_first_number[0]
    _next_first_number[0] += count
    return seed_users(e2e.firestore(), count, {"city": city}, first=first)


def launch_campaign(e2e: FaultStack, city: str) -> str:
    template = e2e.api(
        "POST", "/v1/templates", json={"name": "f", "body": "Hi {{ name }}"}
    )
    segment = e2e.api(
        "POST",
        "/v1/segments",
        json={
            "name": city,
            "definition": {"attribute": "city", "operator": "equals", "value": city},
        },
    )
    campaign = e2e.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": f"faults {city}",
            "template_id": template.json()["id"],
            "segment_id": segment.json()["id"],
            "rate_limit_mps": 500,
            "quiet_hours": None,
        },
    ).json()
    assert e2e.api("POST", f"/v1/campaigns/{campaign['id']}/launch").status_code == 202
    return str(campaign["id"])


def message_statuses(e2e: FaultStack, campaign_id: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    token = None
    while True:
        query = {"limit": "500", **({"page_token": token} if token else {})}
        page = e2e.api(
            "GET", f"/v1/campaigns/{campaign_id}/messages", params=query
        ).json()
        found.update({m["phone"]: m for m in page["items"]})
        token = page["next_page_token"]
        if not token:
            return found


def settle(
    e2e: FaultStack, campaign_id: str, count: int, timeout: float
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        found = message_statuses(e2e, campaign_id)
        done = len(found) == count and all(m["status"] in FINAL for m in found.values())
        return found if done else None

    return dict(wait_for(finished, timeout=timeout, interval=2))


def assert_promises(e2e: FaultStack, campaign_id: str, phones: list[str]) -> None:
    e2e.set_faults()  # the run is over; let the stack settle cleanly
    found = settle(e2e, campaign_id, len(phones), timeout=240)
    sends = Counter(m["to"] for m in e2e.sent_messages())
    assert max(sends.values()) == 1, (
        f"double sends: {[p for p, n in sends.items() if n > 1][:5]}"
    )
    accepted = {p for p, m in found.items() if m["status"] in ACCEPTED}
    assert accepted == set(sends), "a SENT+ message without its one send, or vice versa"
    assert set(found) == set(phones), "every targeted recipient has exactly one message"

    def completed() -> dict[str, Any] | None:
        e2e.tick()
        campaign = e2e.api("GET", f"/v1/campaigns/{campaign_id}").json()
        return campaign if campaign["status"] == "COMPLETED" else None

    campaign = wait_for(completed, timeout=90, interval=2)
    recount = Counter(m["status"] for m in message_statuses(e2e, campaign_id).values())
    frozen = {k: v for k, v in campaign["final_counts"].items() if v}
    assert frozen == dict(recount)
    for topic in TOPICS:
        assert e2e.dead_letters(topic) == [], f"unexpected dead letters on {topic}"


FAULT_CLASSES = {
    "pubsub_duplicates": {"pubsub_redeliver": 0.2},
    "task_retries_after_success": {"tasks_duplicate": 0.2},
    "crash_after_twilio_accept": {"crash_after_accept": 0.05},
    "firestore_aborted": {"firestore_aborted": 0.05},
}


@pytest.mark.parametrize("fault", sorted(FAULT_CLASSES))
def test_campaign_under_fault_class(faulty: FaultStack, fault: str) -> None:
    phones = seed_audience(faulty, fault, RECIPIENTS)
    faulty.set_faults(**FAULT_CLASSES[fault])
    campaign_id = launch_campaign(faulty, fault)
    assert_promises(faulty, campaign_id, phones)


def test_campaign_under_carrier_and_callback_faults(faulty: FaultStack) -> None:
    phones = seed_audience(faulty, "carrier", RECIPIENTS)
    faulty.sim(
        "POST",
        "/_sim/config",
        json={
            "fail_next_with_429": 40,
            "fail_next_with_500": 20,
            "duplicate_callbacks": True,
            "reorder_callbacks": True,
            "callback_delay_ms": 200,
        },
    )
    campaign_id = launch_campaign(faulty, "carrier")
    assert_promises(faulty, campaign_id, phones)
    stats = faulty.sim("GET", "/_sim/stats")
    assert stats["rejected"] == 60


def test_function_restarted_mid_batch(faulty: FaultStack) -> None:
    phones = seed_audience(faulty, "restart", RECIPIENTS)
    campaign_id = launch_campaign(faulty, "restart")
    state_dir = Path(faulty.endpoints["state_dir"])
    wait_for(lambda: len(faulty.sent_messages()) > 20, timeout=60)
    stack.restart_function(state_dir, "campaign_fanout")
    stack.restart_function(state_dir, "message_sender")
    assert_promises(faulty, campaign_id, phones)


def test_all_faults_together_with_consent_changes_and_a_poison_message(
    faulty: FaultStack,
) -> None:
    phones = seed_audience(faulty, "everything", RECIPIENTS)
    plan: dict[str, Any] = {}
    for faults in FAULT_CLASSES.values():
        plan.update(faults)
    faulty.set_faults(**plan)
    faulty.sim(
        "POST",
        "/_sim/config",
        json={
            "fail_next_with_429": 20,
            "duplicate_callbacks": True,
            "reorder_callbacks": True,
        },
    )
    campaign_id = launch_campaign(faulty, "everything")
    faulty.publish("recipient-batches", b"{not json")
    stopped = phones[-5:]
    for phone in stopped:
        answer = faulty.sim(
            "POST", "/_sim/inbound", json={"from": phone, "body": "STOP"}
        )
        assert answer["status"] == 200

    faulty.set_faults()
    found = settle(faulty, campaign_id, len(phones), timeout=300)
    for phone in stopped:
        user = faulty.api("GET", f"/v1/users/{phone}").json()
        assert user["consent"]["state"] == "STOP"
        message = found[phone]
        sent_before_stop = message["status"] in ACCEPTED
        assert sent_before_stop or message["skip_reason"] == "no_consent"

    def poison_dead_lettered() -> list[dict[str, Any]]:
        return faulty.dead_letters("recipient-batches")

    letters = wait_for(poison_dead_lettered, timeout=120, interval=3)
    assert [base64.b64decode(m["data"]) for m in letters] == [b"{not json"]
    assert_promises(faulty, campaign_id, phones)
