"""Reliability under faults: exactly one send per recipient, nothing lost.

The e2e stack runs with fault injection wired in (local/faults.py); each
test switches its fault classes on under a label of its own, runs a campaign,
switches faults off and checks the promises: every message final, at most one
send per recipient and exactly one for each that ended SENT or later, counts
that match a recount, consent changes honoured, and dead-letter queues holding
only the poison. Each test also asserts that every class it switched on fired
at least once (the stack's injection counters) and prints how often.
An event burst with repeated ids checks the same of triggered campaigns: one
message per matching (campaign, event) and none for the rest. With ESE_SOAK=1
(`make soak`) rounds of a campaign and a burst at once run on one stack.

Sizes: ESE_FAULT_RECIPIENTS (200 by default, 2,000 with ESE_TEST_FULL=1, as
`make test-full` sets) and ESE_FAULT_EVENTS (600; 5,000 in full). The stack's
FANOUT_BATCH_SIZE (25; 250 in full) keeps even the small campaigns at eight
recipient batches. The schedules' seed is printed; ESE_FAULT_SEED replays it.
"""

from __future__ import annotations

import base64
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from local import stack
from local.faults import FAULT_CLASSES as INJECTED_CLASSES
from local.faults import injection_counts
from tests.e2e.conftest import STACK_ENV, Stack, city_segment, wait_for

pytestmark = pytest.mark.e2e

FULL = os.environ.get("ESE_TEST_FULL") == "1"
RECIPIENTS = int(os.environ.get("ESE_FAULT_RECIPIENTS", "2000" if FULL else "200"))
EVENTS = int(os.environ.get("ESE_FAULT_EVENTS", "5000" if FULL else "600"))
FINAL = {"DELIVERED", "UNDELIVERED", "FAILED", "SKIPPED", "READ"}
ACCEPTED = {"SENT", "DELIVERED", "UNDELIVERED", "READ"}
TOPICS = (
    "campaign-launches",
    "recipient-batches",
    "delivery-receipts",
    "inbound-messages",
)


class FaultStack(Stack):
    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        # Injected Aborted reaches the API's commits too; it answers 503 and a
        # caller retries, as any client of ours should.
        for _ in range(10):
            response = super().api(method, path, **kwargs)
            if response.status_code != 503:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return response

    label = ""
    report: Callable[[str], None] | None = None

    def switch_on(self, label: str, **plan: Any) -> None:
        """Fault classes on, under a label that starts fresh counts."""
        unknown = set(plan) - set(INJECTED_CLASSES) - {"tasks_duplicate"}
        assert not unknown, f"no such fault class: {unknown}"
        self.label = label
        self.set_faults(label, **plan)

    def injections(self) -> dict[str, int]:
        """How often each class fired under the current label: the functions'
        counters, the dispatcher's redeliveries and the simulator's refusals."""
        assert self.faults_file is not None
        counts = {
            fault: sum(by_function.values())
            for fault, by_function in injection_counts(
                self.faults_file, self.label
            ).items()
        }
        tasks = requests.get(
            self.endpoints["task_dispatcher"] + "/v1/tasks/stats", timeout=10
        ).json()
        counts["tasks_duplicate"] = int(tasks["redelivered"])
        sim = self.sim("GET", "/_sim/stats")
        counts["carrier_rejected"] = int(sim["rejected"])
        counts["created_then_failed"] = int(sim["created_then_failed"])
        counts["held_queued"] = int(sim["held_queued"])
        return counts

    def injections_by_function(self, fault: str) -> dict[str, int]:
        assert self.faults_file is not None
        return injection_counts(self.faults_file, self.label).get(fault, {})

    def assert_fired(self, *faults: str) -> dict[str, int]:
        """Each class fired at least once under the current label; prints how
        often, with the seed to replay the schedule."""
        counts = self.injections()
        assert self.faults_file is not None
        where = injection_counts(self.faults_file, self.label)
        line = f"injections under {self.label!r}: {counts}; by function: {where}"
        if self.report is not None:
            self.report(line)  # shown in the run's output, not captured
        for fault in faults:
            assert counts.get(fault, 0) >= 1, (
                f"fault class {fault} never fired (label {self.label!r}); "
                "the test ran as a plain campaign"
            )
        return counts

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


@pytest.fixture
def faulty(local_stack: Stack, pytestconfig: pytest.Config) -> Iterator[FaultStack]:
    """The e2e stack (conftest), reset, with faults off and the DLQs drained."""
    fault_stack = FaultStack(local_stack.endpoints)
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def report(line: str) -> None:
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"\n{line}")

    if terminal is not None and capture is not None:
        fault_stack.report = report
    if fault_stack.faults_file is None:
        pytest.skip("the stack in ESE_ENDPOINTS runs without fault injection")
    fault_stack.reset()
    for topic in EVENT_TOPICS:
        fault_stack.dead_letters(topic)
    yield fault_stack
    fault_stack.set_faults()


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
    campaign = e2e.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": f"faults {city}",
            "template_id": template.json()["id"],
            "segment_id": city_segment(e2e, city),
            "rate_limit_mps": 500,
            "quiet_hours": None,
        },
    ).json()
    assert e2e.api("POST", f"/v1/campaigns/{campaign['id']}/launch").status_code == 202
    return str(campaign["id"])


def campaign_messages(e2e: FaultStack, campaign_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        query = {"limit": "500", **({"page_token": token} if token else {})}
        page = e2e.api(
            "GET", f"/v1/campaigns/{campaign_id}/messages", params=query
        ).json()
        found.extend(page["items"])
        token = page["next_page_token"]
        if not token:
            return found


def message_statuses(e2e: FaultStack, campaign_id: str) -> dict[str, dict[str, Any]]:
    return {m["phone"]: m for m in campaign_messages(e2e, campaign_id)}


def settle(
    e2e: FaultStack, campaign_id: str, count: int, timeout: float
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        found = message_statuses(e2e, campaign_id)
        done = len(found) == count and all(m["status"] in FINAL for m in found.values())
        return found if done else None

    return dict(wait_for(finished, timeout=timeout, interval=2))


def sent_under_faults(e2e: FaultStack, campaign_id: str, count: int) -> None:
    """Keep the faults on until every recipient has a message and none waits
    to be sent (QUEUED or SENDING): fan-out, sends and most receipts all ran
    under them. (Switching them off at launch tested a plain campaign.)"""

    def all_past_sending() -> bool:
        found = message_statuses(e2e, campaign_id)
        return len(found) == count and all(
            m["status"] not in ("QUEUED", "SENDING") for m in found.values()
        )

    wait_for(all_past_sending, timeout=300, interval=2)


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
    assert_completed_with_a_true_count(e2e, campaign_id)
    for topic in TOPICS:
        assert e2e.dead_letters(topic) == [], f"unexpected dead letters on {topic}"


def assert_completed_with_a_true_count(e2e: FaultStack, campaign_id: str) -> None:
    def completed() -> dict[str, Any] | None:
        e2e.tick()
        campaign = e2e.api("GET", f"/v1/campaigns/{campaign_id}").json()
        return campaign if campaign["status"] == "COMPLETED" else None

    campaign = wait_for(completed, timeout=90, interval=2)
    recount = Counter(m["status"] for m in message_statuses(e2e, campaign_id).values())
    frozen = {k: v for k, v in campaign["final_counts"].items() if v}
    assert frozen == dict(recount)


# Each test's plan. Fan-out redeliveries at a higher rate: a campaign has
# only eight recipient batches, and a redelivered batch is what this proves.
FAULT_CLASSES = {
    "pubsub_duplicates": {
        "pubsub_redeliver": {"campaign_fanout": 0.5, "*": 0.2},
    },
    "task_retries_after_success": {"tasks_duplicate": 0.2},
    "crash_after_twilio_accept": {"crash_after_accept": 0.05},
    "firestore_aborted": {"firestore_aborted": 0.05},
}


# The carrier and callback faults of the all-together runs (simulator config).
CARRIER_AND_CALLBACK_FAULTS = {
    "fail_next_with_429": 20,
    "duplicate_callbacks": True,
    "reorder_callbacks": True,
}


def all_fault_classes() -> dict[str, Any]:
    plan: dict[str, Any] = {}
    for faults in FAULT_CLASSES.values():
        plan.update(faults)
    return plan


@pytest.mark.parametrize("fault", sorted(FAULT_CLASSES))
def test_campaign_under_fault_class(faulty: FaultStack, fault: str) -> None:
    phones = seed_audience(faulty, fault, RECIPIENTS)
    faulty.switch_on(fault, **FAULT_CLASSES[fault])
    campaign_id = launch_campaign(faulty, fault)
    sent_under_faults(faulty, campaign_id, len(phones))
    assert_promises(faulty, campaign_id, phones)
    faulty.assert_fired(*FAULT_CLASSES[fault])
    if fault == "pubsub_duplicates":
        fanout = faulty.injections_by_function("pubsub_redeliver")
        assert fanout.get("campaign_fanout", 0) >= 1, (
            f"no recipient batch was redelivered: {fanout}"
        )


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
    print(f"carrier: {stats}")


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
    faulty.switch_on("everything", **all_fault_classes())
    faulty.sim("POST", "/_sim/config", json=CARRIER_AND_CALLBACK_FAULTS)
    campaign_id = launch_campaign(faulty, "everything")
    faulty.publish("recipient-batches", b"{not json")
    stopped = phones[-5:]
    for phone in stopped:
        answer = faulty.sim(
            "POST", "/_sim/inbound", json={"from": phone, "body": "STOP"}
        )
        assert answer["status"] == 200

    sent_under_faults(faulty, campaign_id, len(phones))
    faulty.set_faults()
    found = settle(faulty, campaign_id, len(phones), timeout=300)
    for phone in stopped:
        user = faulty.api("GET", f"/v1/users/{phone}").json()
        assert user["consent"]["state"] == "STOP"
        message = found[phone]
        sent_before_stop = message["status"] in ACCEPTED
        # Twilio saw the STOP before our consent did: it refuses with 21610.
        refused = (message["status"], message["error_code"]) == ("FAILED", "21610")
        assert sent_before_stop or refused or message["skip_reason"] == "no_consent"

    def poison_dead_lettered() -> list[dict[str, Any]]:
        return faulty.dead_letters("recipient-batches")

    letters = wait_for(poison_dead_lettered, timeout=120, interval=3)
    assert [base64.b64decode(m["data"]) for m in letters] == [b"{not json"]
    assert_promises(faulty, campaign_id, phones)
    faulty.assert_fired(*all_fault_classes(), "carrier_rejected")


# ------------------------------------------------------------ ambiguous sends

# Small audiences: these classes wait out sending leases, not volume.
AMBIGUOUS_RECIPIENTS = 40
# Longer than a lease (6 s) and the retry that finds it expired.
HOLD_QUEUED_MS = 10_000


def ambiguous_sends(e2e: FaultStack, count: int, hold_ms: int = 0) -> None:
    """The next `count` sends reach Twilio but answer 500; with `hold_ms` they
    also stay queued there (no DateSent, no callback) that long."""
    config: dict[str, Any] = {"create_then_fail_with_500": count}
    if hold_ms:
        config |= {"hold_next_queued": count, "hold_queued_ms": hold_ms}
    e2e.sim("POST", "/_sim/config", json=config)


def reconciled_by_lookup(messages: list[dict[str, Any]]) -> int:
    """Messages whose send was recorded from a Twilio lookup."""
    return sum(
        any(a["step"] == "send" and a["outcome"] == "reconciled" for a in m["audit"])
        for m in messages
    )


def test_twilio_answers_500_after_creating_the_message(faulty: FaultStack) -> None:
    phones = seed_audience(faulty, "created500", AMBIGUOUS_RECIPIENTS)
    faulty.switch_on("created500")  # the simulator's faults; a label to report
    # Queued at Twilio, without a callback, a little longer than a task retry
    # takes but not as long as a lease: the status callbacks settle them.
    ambiguous_sends(faulty, 20, hold_ms=3000)
    campaign_id = launch_campaign(faulty, "created500")
    assert_promises(faulty, campaign_id, phones)
    counts = faulty.assert_fired("created_then_failed", "held_queued")
    assert (counts["created_then_failed"], counts["held_queued"]) == (20, 20)


def test_a_message_still_queued_at_twilio_when_its_lease_expires(
    faulty: FaultStack,
) -> None:
    phones = seed_audience(faulty, "heldqueued", AMBIGUOUS_RECIPIENTS)
    faulty.switch_on("heldqueued")
    ambiguous_sends(faulty, 20, hold_ms=HOLD_QUEUED_MS)
    campaign_id = launch_campaign(faulty, "heldqueued")
    assert_promises(faulty, campaign_id, phones)
    counts = faulty.assert_fired("created_then_failed", "held_queued")
    assert (counts["created_then_failed"], counts["held_queued"]) == (20, 20)
    assert reconciled_by_lookup(campaign_messages(faulty, campaign_id)) > 0


def test_two_same_text_messages_to_one_number_reconciling_at_once(
    faulty: FaultStack,
) -> None:
    """Two campaigns, one text, one audience; every send is ambiguous and still
    queued at Twilio when its lease expires. The rendezvous holds each claim
    until the other message of its number claims the same SID."""
    phones = seed_audience(faulty, "sametext", 10)
    ambiguous_sends(faulty, 2 * len(phones), hold_ms=HOLD_QUEUED_MS)
    faulty.switch_on("sametext", reconcile_rendezvous=1.0)
    campaign_ids = [launch_campaign(faulty, "sametext") for _ in range(2)]

    def all_reconciled() -> list[dict[str, Any]] | None:
        found = [m for c in campaign_ids for m in campaign_messages(faulty, c)]
        unsettled = [m for m in found if m["status"] in ("QUEUED", "SENDING")]
        return found if len(found) == 2 * len(phones) and not unsettled else None

    wait_for(all_reconciled, timeout=120, interval=2)
    faulty.set_faults()
    faulty.assert_fired("reconcile_rendezvous", "created_then_failed", "held_queued")

    found = {
        m["id"]: m
        for c in campaign_ids
        for m in settle(faulty, c, len(phones), timeout=120).values()
    }
    assert_one_send_per_accepted_message(faulty, found, campaign_ids)
    sends = Counter(m["to"] for m in faulty.sent_messages())
    assert sends == dict.fromkeys(phones, 2), "each number gets each campaign's text"
    for campaign_id in campaign_ids:
        assert_completed_with_a_true_count(faulty, campaign_id)


def test_a_send_task_that_exhausts_its_attempts(faulty: FaultStack) -> None:
    """Every send task fails until its attempts are spent; the stranded-QUEUED
    sweep (STRANDED_QUEUED_SECONDS in STACK_ENV) then requeues each message,
    whose new task sends once the faults are off."""
    phones = seed_audience(faulty, "exhausted", 10)
    budget = int(stack.dispatcher_settings(STACK_ENV)["max_attempts"])
    faulty.switch_on("exhausted", send_task_exhausted=1.0)
    campaign_id = launch_campaign(faulty, "exhausted")

    def attempts_spent() -> bool:
        # Every attempt of each of the send tasks (the dispatcher's budget).
        spent = faulty.injections().get("send_task_exhausted", 0)
        return spent >= budget * len(phones)

    wait_for(attempts_spent, timeout=180, interval=2)
    assert_promises(faulty, campaign_id, phones)
    faulty.assert_fired("send_task_exhausted")
    requeued = [
        m["phone"]
        for m in campaign_messages(faulty, campaign_id)
        if any(a["step"] == "stranded" for a in m["audit"])
    ]
    assert sorted(requeued) == sorted(phones), "each message went through the sweep"


# ---------------------------------------------------------------- event bursts

EVENT_BATCH = 250
EVENT_CLIENTS = 4
# Every tenth posted event repeats an id posted elsewhere in the burst.
REPEAT_SHARE = 0.1
EVENT_TOPICS = (*TOPICS, "events")


@dataclass(frozen=True)
class BurstCampaigns:
    """Two campaigns on one event type, so an event may cause 0, 1 or 2
    messages: `big` wants big orders from its segment's users (`where` and
    segment), `vip` wants VIP orders from any known user (`where` only)."""

    kind: str
    big: str
    vip: str

    def wanted_by(
        self, event: dict[str, Any], inside: set[str], known: set[str]
    ) -> set[str]:
        phone, properties = event["phone"], event["properties"]
        wanted = set()
        if phone in inside and properties["total"] >= 100:
            wanted.add(self.big)
        if phone in known and properties["tier"] == "vip":
            wanted.add(self.vip)
        return wanted


@dataclass(frozen=True)
class EventBurst:
    events: list[dict[str, Any]]  # one per distinct event_id
    batches: list[list[dict[str, Any]]]  # the posts: events and their repeats
    repeats: int


def reserve_numbers(count: int) -> list[str]:
    """Numbers no user has: events about them meet no known user."""
    first = _next_first_number[0]
    _next_first_number[0] += count
    # seed_users' numbering, so they can never collide with a seeded user.
    return [f"+1415{2_000_000 + i:07d}" for i in range(first, first + count)]


def launch_burst_campaigns(e2e: FaultStack, kind: str, city: str) -> BurstCampaigns:
    template = e2e.api(
        "POST",
        "/v1/templates",
        json={
            "name": "b",
            "body": "Hi {{ name }}, order {{ event.properties.order_id }}",
        },
    ).json()
    segment_id = city_segment(e2e, city)
    where = {
        "big": {"attribute": "total", "operator": "gte", "value": 100},
        "vip": {"attribute": "tier", "operator": "equals", "value": "vip"},
    }
    ids = {}
    for name, condition in where.items():
        campaign = e2e.api(
            "POST",
            "/v1/campaigns",
            json={
                "name": f"burst {name}",
                "template_id": template["id"],
                "trigger": {"event": kind, "where": condition},
                "rate_limit_mps": 500,
                "quiet_hours": None,
                **({"segment_id": segment_id} if name == "big" else {}),
            },
        ).json()
        launched = e2e.api("POST", f"/v1/campaigns/{campaign['id']}/launch")
        assert launched.json()["status"] == "ACTIVE", launched.text
        ids[name] = str(campaign["id"])
    return BurstCampaigns(kind, ids["big"], ids["vip"])


def plan_burst(kind: str, phones: list[str], total: int, seed: int) -> EventBurst:
    """One event per phone, then repeats of random ones (some ids several
    times): one in four lands in its original's batch, the rest anywhere."""
    rng = random.Random(seed)
    rng.shuffle(phones)
    events = [
        {
            "event_id": f"{kind}-{i}",
            "type": kind,
            "phone": phone,
            "properties": {
                "order_id": f"O{i}",
                "total": rng.randrange(200),
                "tier": "vip" if rng.random() < 0.1 else "standard",
            },
        }
        for i, phone in enumerate(phones)
    ]
    batches = [events[i : i + EVENT_BATCH] for i in range(0, len(events), EVENT_BATCH)]
    home = {e["event_id"]: n for n, batch in enumerate(batches) for e in batch}
    repeats = total - len(events)
    for i, original in enumerate(rng.choices(events, k=repeats)):
        n = home[original["event_id"]] if i % 4 == 0 else rng.randrange(len(batches))
        batches[n] = [*batches[n], dict(original)]
    for batch in batches:
        rng.shuffle(batch)
    return EventBurst(events, batches, repeats)


def post_burst(e2e: FaultStack, burst: EventBurst) -> int:
    """Posts the batches from concurrent clients; returns the duplicates the
    API reported (each posting of an id but the one that stored it)."""

    def post(batch: list[dict[str, Any]]) -> int:
        response = e2e.api("POST", "/v1/events", json=batch)
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["accepted"] == len(batch), answer["rejected"][:3]
        return len(answer["duplicate_ids"])

    with ThreadPoolExecutor(EVENT_CLIENTS) as pool:
        return sum(pool.map(post, burst.batches))


def routed_events(e2e: FaultStack, kind: str) -> dict[str, set[str]] | None:
    """Each stored event's matched campaigns, once the router recorded all."""
    from google.cloud import firestore

    query = (
        e2e.firestore()
        .collection("events")
        .where(filter=firestore.FieldFilter("type", "==", kind))
    )
    routes: dict[str, set[str]] = {}
    for snapshot in query.stream():
        event = snapshot.to_dict() or {}
        if event.get("status") == "received":
            return None
        routes[snapshot.id] = {m["campaign_id"] for m in event.get("matched", [])}
    return routes


def settle_messages(
    e2e: FaultStack, campaign_ids: list[str], count: int, timeout: float
) -> dict[str, dict[str, Any]]:
    """The campaigns' messages by id, once there are `count` and all final."""

    def messages() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for campaign_id in campaign_ids:
            found.update({m["id"]: m for m in campaign_messages(e2e, campaign_id)})
        return found

    def finished() -> dict[str, dict[str, Any]] | None:
        found = messages()
        done = len(found) >= count and all(m["status"] in FINAL for m in found.values())
        return found if done else None

    try:
        return dict(wait_for(finished, timeout=timeout, interval=3))
    except AssertionError:
        found = messages()
        waiting = [m for m in found.values() if m["status"] not in FINAL]
        raise AssertionError(
            f"not settled in {timeout}s: {len(found)} of {count} messages, "
            f"{dict(Counter(m['status'] for m in found.values()))}; "
            f"e.g. {[(m['id'], m['audit'][-3:]) for m in waiting[:3]]}"
        ) from None


def sends_per_message(e2e: FaultStack, campaign_ids: list[str]) -> Counter[str]:
    """The campaigns' simulator sends, by the message id our sender put in
    StatusCallback (`{campaign_id}_…`)."""
    message_ids = (
        parse_qs(urlsplit(m["status_callback"]).query)["message_id"][0]
        for m in e2e.sent_messages()
    )
    return Counter(i for i in message_ids if i.split("_")[0] in campaign_ids)


def assert_one_send_per_accepted_message(
    e2e: FaultStack, found: dict[str, dict[str, Any]], campaign_ids: list[str]
) -> None:
    sends = sends_per_message(e2e, campaign_ids)
    if sends:
        assert max(sends.values()) == 1, f"double sends: {sends.most_common(3)}"
    accepted = {
        i
        for i, m in found.items()
        if m["status"] in ACCEPTED and m["campaign_id"] in campaign_ids
    }
    assert accepted == set(sends), "a SENT+ message without its one send, or vice versa"


@dataclass(frozen=True)
class BurstRun:
    """A planned burst and what it must cause: each distinct event's campaigns."""

    campaigns: BurstCampaigns
    burst: EventBurst
    expected: dict[str, set[str]]

    @property
    def campaign_ids(self) -> list[str]:
        return [self.campaigns.big, self.campaigns.vip]

    @property
    def wanted(self) -> list[tuple[str, str]]:
        return sorted(
            (campaign_id, event_id)
            for event_id, campaign_ids in self.expected.items()
            for campaign_id in campaign_ids
        )


def prepare_burst(e2e: FaultStack, name: str, count: int, seed: int) -> BurstRun:
    """Users (60% in the segment, 35% outside it, 5% unknown), the two
    campaigns on an event type of the burst's own, and the planned posts."""
    distinct = count - int(count * REPEAT_SHARE)
    inside = seed_audience(e2e, f"{name}-in", distinct * 60 // 100)
    outside = seed_audience(e2e, f"{name}-out", distinct * 35 // 100)
    unknown = reserve_numbers(distinct - len(inside) - len(outside))
    campaigns = launch_burst_campaigns(e2e, f"fault.{name}", f"{name}-in")
    burst = plan_burst(campaigns.kind, inside + outside + unknown, count, seed)
    known = {*inside, *outside}
    expected = {
        e["event_id"]: campaigns.wanted_by(e, set(inside), known) for e in burst.events
    }
    return BurstRun(campaigns, burst, expected)


def await_routes(e2e: FaultStack, run: BurstRun, started: float) -> None:
    routes = wait_for(lambda: routed_events(e2e, run.campaigns.kind), 900, 3)
    print(f"routed all {len(run.expected)} after {time.monotonic() - started:.1f}s")
    assert routes == run.expected, "every event stored once, routed to what it matches"


def assert_burst_promises(
    e2e: FaultStack, run: BurstRun, found: dict[str, dict[str, Any]]
) -> None:
    caused = sorted(
        (m["campaign_id"], m["event_id"])
        for m in found.values()
        if m["campaign_id"] in run.campaign_ids
    )
    assert caused == run.wanted, (
        "exactly one message per matching (campaign, event), none for the rest"
    )
    assert_one_send_per_accepted_message(e2e, found, run.campaign_ids)


def assert_no_dead_letters(e2e: FaultStack) -> None:
    for topic in EVENT_TOPICS:
        assert e2e.dead_letters(topic) == [], f"unexpected dead letters on {topic}"


def test_event_burst_with_repeated_ids_under_all_faults(faulty: FaultStack) -> None:
    """ESE_FAULT_EVENTS events (a tenth of them repeated ids) from concurrent
    clients while every fault class is on: one message per (campaign, event)
    that matches, none for the rest, one send per message that went out."""
    for topic in EVENT_TOPICS:
        faulty.dead_letters(topic)
    run = prepare_burst(faulty, "burst", EVENTS, seed=11)

    faulty.switch_on("burst", **all_fault_classes())
    faulty.sim("POST", "/_sim/config", json=CARRIER_AND_CALLBACK_FAULTS)
    started = time.monotonic()
    assert post_burst(faulty, run.burst) == run.burst.repeats
    print(f"posted {EVENTS} events in {time.monotonic() - started:.1f}s")
    await_routes(faulty, run, started)

    faulty.set_faults()
    found = settle_messages(faulty, run.campaign_ids, len(run.wanted), timeout=420)
    print(f"{len(found)} messages final after {time.monotonic() - started:.1f}s")
    assert_burst_promises(faulty, run, found)
    assert_no_dead_letters(faulty)
    faulty.assert_fired(*all_fault_classes(), "carrier_rejected")


# ---------------------------------------------------------------- the soak

SOAK = os.environ.get("ESE_SOAK") == "1"
SOAK_ROUNDS = int(os.environ.get("ESE_SOAK_ROUNDS", "5"))


def soak_round(e2e: FaultStack, number: int) -> None:
    """A campaign and an event burst at once under every fault class, with the
    router and the sender restarted mid-round; nothing is reset before it."""
    name = f"soak{number}"
    phones = seed_audience(e2e, name, RECIPIENTS)
    run = prepare_burst(e2e, f"{name}burst", EVENTS, seed=number)
    e2e.switch_on(name, **all_fault_classes())
    e2e.sim("POST", "/_sim/config", json=CARRIER_AND_CALLBACK_FAULTS)
    started = time.monotonic()
    campaign_id = launch_campaign(e2e, name)
    assert post_burst(e2e, run.burst) == run.burst.repeats
    state_dir = Path(e2e.endpoints["state_dir"])
    for function in ("event_router", "message_sender"):
        stack.restart_function(state_dir, function)
    await_routes(e2e, run, started)

    e2e.set_faults()
    ids = [campaign_id, *run.campaign_ids]
    found = settle_messages(e2e, ids, len(phones) + len(run.wanted), timeout=900)
    print(
        f"round {number}: {len(found)} messages final after "
        f"{time.monotonic() - started:.1f}s"
    )
    assert_burst_promises(e2e, run, found)
    assert_one_send_per_accepted_message(e2e, found, ids)
    campaign = {m["phone"] for m in found.values() if m["campaign_id"] == campaign_id}
    assert campaign == set(phones), "every targeted recipient has exactly one message"
    assert_completed_with_a_true_count(e2e, campaign_id)
    assert_no_dead_letters(e2e)
    e2e.assert_fired(*all_fault_classes())


@pytest.mark.skipif(not SOAK, reason="the long soak runs with ESE_SOAK=1 (make soak)")
def test_soak_rounds_of_campaigns_and_event_bursts_under_all_faults(
    faulty: FaultStack,
) -> None:
    for topic in EVENT_TOPICS:
        faulty.dead_letters(topic)
    for number in range(SOAK_ROUNDS):
        soak_round(faulty, number)
