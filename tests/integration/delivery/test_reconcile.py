"""Ambiguous sends and their reconciliation, on the Firestore emulator and
through the real twilio SDK against the local Twilio simulator.

Each test makes a send ambiguous the way Twilio can (a 500 answered after the
message was created, a timeout), lets the lease expire by moving the sender's
clock, and runs the reconcile task the scheduler's sweep would enqueue. The
simulator's message list is the ground truth: at most one carrier send per
message, and every message accounted for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.twilio_simulator import SimulatorConfig, SimulatorServer
from shared.campaigns.scheduler import is_finished
from shared.campaigns.summary import compute_summary
from shared.delivery import sender as sender_module
from shared.delivery.gateway import TwilioGateway
from shared.delivery.messages import message_id_for, send_task
from shared.delivery.sender import SenderDeps, SendResult, send_message
from shared.payloads import SendTaskBody
from shared.platform.config import (
    CoreSettings,
    TwilioApiKeySettings,
    TwilioSettings,
)
from shared.platform.tasks import SendTask
from shared.store.campaigns import (
    Campaign,
    CampaignSettings,
    CampaignStatus,
    campaign_cache,
)
from shared.store.messages import MessageStatus, rank_of, status_of
from shared.store.users import ConsentState, new_user, user_doc

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "c3" * 16
AUTH_TOKEN = "reconcile-test-token"
SERVICE_SID = "MG" + "d4" * 16
# The senders' credential: an API key (the simulator here refuses the token).
KEY = TwilioApiKeySettings(
    TWILIO_API_KEY_SID="SK" + "e5" * 16,
    TWILIO_API_KEY_SECRET="reconcile-key-secret",  # noqa: S106 - a test key
)
PHONE = "+12125550100"
BODY = "Hi Ann, 20% off today"
CONTENT_SID = "HX" + "e5" * 16
LEASE = timedelta(seconds=120)
# Status callbacks go to a closed port: the messages move only as we say.
PUBLIC_BASE_URL = "http://127.0.0.1:9"


class MovableClock:
    """Real time at the start (Twilio's DateCreated is real), moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def expire_leases(self) -> None:
        self.now += LEASE + timedelta(seconds=1)


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    config = SimulatorConfig(
        ACCOUNT_SID,
        AUTH_TOKEN,
        callback_delay_ms=5,
        api_keys={KEY.api_key_sid: KEY.api_key_secret},
        rest_requires_api_key=True,
    )
    with SimulatorServer(config) as server:
        yield server


def sim_config(server: SimulatorServer, **changes: Any) -> None:
    server.simulator.update_config(changes)


def sends_to(server: SimulatorServer, phone: str = PHONE) -> list[dict[str, Any]]:
    return list(server.simulator.messages_view(phone)["messages"])


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


def make_deps(
    db: Any, server: SimulatorServer, clock: MovableClock, task_queue: Any, **env: str
) -> SenderDeps:
    twilio = TwilioSettings(
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID,
        TWILIO_API_BASE_URL=server.base_url,
        **env,
    )
    core = CoreSettings(
        GCP_PROJECT="ese-test",
        QUIET_HOURS_DEFAULT="21:00-08:00",  # the campaigns have none
        GLOBAL_FREQUENCY_CAP="",
        SENDING_LEASE_SECONDS=str(int(LEASE.total_seconds())),
    )
    return SenderDeps(
        db=db,
        gateway=TwilioGateway(twilio, KEY),
        tasks=task_queue,
        core=core,
        twilio=twilio,
        campaigns=campaign_cache(db, 0.0),
        clock=clock,
    )


@pytest.fixture
def deps(
    db: Any, simulator: SimulatorServer, clock: MovableClock, task_queue: Any
) -> SenderDeps:
    db.collection("users").document(PHONE).set(
        user_doc(
            new_user(PHONE, {"name": "Ann"}, "UTC", ConsentState.OPT_IN, "api", clock())
        )
    )
    return make_deps(db, simulator, clock, task_queue)


def make_message(
    db: Any, clock: MovableClock, campaign_id: str, **fields: Any
) -> tuple[str, SendTask]:
    """A running campaign with no quiet hours and one queued message in it."""
    settings = CampaignSettings(
        name=campaign_id,
        template_id="greeting",
        segment_id="everyone",
        rate_limit_mps=100.0,
        quiet_hours=None,
    ).model_dump(by_alias=True)
    db.collection("campaigns").document(campaign_id).set(
        {**settings, "status": CampaignStatus.RUNNING.value, "launch_id": "l1"}
    )
    message_id = message_id_for(campaign_id, PHONE)
    doc = {
        "campaign_id": campaign_id,
        "phone": PHONE,
        "body": BODY,
        "encoding": "GSM7",
        "segments": 1,
        "channel": "sms",
        "status_rank": rank_of(MessageStatus.QUEUED),
        "generation": 0,
        "attempts": 0,
        "send_at": clock(),
        "created_at": clock(),
        "audit": [],
        **fields,
    }
    written = db.collection("messages").document(message_id).create(doc)
    return message_id, send_task(message_id, doc, written.update_time)


def run(deps: SenderDeps, task: SendTask) -> SendResult:
    return send_message(deps, SendTaskBody.model_validate(task.body))


def reconcile_task(db: Any, message_id: str) -> SendTask:
    """What the scheduler's sweep enqueues for a message whose lease expired."""
    snapshot = db.collection("messages").document(message_id).get()
    return send_task(
        message_id, snapshot.to_dict(), None, reconcile=True, name_suffix="-r1"
    )


def message(db: Any, message_id: str) -> dict[str, Any]:
    return dict(db.collection("messages").document(message_id).get().to_dict())


def status(db: Any, message_id: str) -> MessageStatus:
    return status_of(message(db, message_id)["status_rank"])


def sid_claim(db: Any, sid: str) -> dict[str, Any] | None:
    snapshot = db.collection("provider_sids").document(sid).get()
    return snapshot.to_dict() if snapshot.exists else None


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    event = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError("condition not met in time")


def send_timing_out(
    deps: SenderDeps, simulator: SimulatorServer, task: SendTask, reaches: bool
) -> None:
    """A send whose answer comes after the sender gave up; Twilio created the
    message (`reaches`) or refused it with a 500 the sender never saw."""
    impatient = replace(
        deps,
        gateway=TwilioGateway(
            deps.twilio.model_copy(update={"request_timeout_seconds": 0.3}), KEY
        ),
    )
    before = simulator.simulator.stats()
    sim_config(simulator, response_delay_ms=800, fail_next_with_500=0 if reaches else 1)
    assert run(impatient, task) == SendResult(503, "outcome_unknown")

    def answered() -> bool:
        now = simulator.simulator.stats()
        return (
            now["accepted"] + now["rejected"] > before["accepted"] + before["rejected"]
        )

    wait_until(answered)
    sim_config(simulator, response_delay_ms=0)


# --- ambiguous answers keep the claim -------------------------------------------


def test_a_500_after_twilio_created_the_message_is_reconciled_not_resent(
    db: Any, deps: SenderDeps, simulator: SimulatorServer, clock: MovableClock
) -> None:
    message_id, task = make_message(db, clock, "spring")
    sim_config(simulator, create_then_fail_with_500=1)

    assert run(deps, task) == SendResult(503, "outcome_unknown")
    assert status(db, message_id) is MessageStatus.SENDING
    # Cloud Tasks retries at once: the live lease holds it back.
    assert run(deps, task) == SendResult(503, "send_in_flight")

    clock.expire_leases()
    assert run(deps, reconcile_task(db, message_id)) == SendResult(
        200, "reconciled_sent"
    )
    [sent] = sends_to(simulator)
    doc = message(db, message_id)
    assert status_of(doc["status_rank"]) is MessageStatus.SENT
    assert doc["provider_sid"] == sent["sid"]
    claim = sid_claim(db, sent["sid"])
    assert claim is not None and claim["message_id"] == message_id
    assert claim["expire_at"] > clock()  # deleted by the TTL policy later
    assert run(deps, task).outcome == "already_sent"
    assert len(sends_to(simulator)) == 1


def test_a_send_still_queued_at_twilio_after_a_timeout_is_found(
    db: Any,
    simulator: SimulatorServer,
    clock: MovableClock,
    deps: SenderDeps,
    task_queue: Any,
) -> None:
    """No DateSent yet: a DateSent lookup misses it and the message goes twice."""
    impatient = make_deps(
        db, simulator, clock, task_queue, TWILIO_TIMEOUT_SECONDS="0.3"
    )
    message_id, task = make_message(db, clock, "spring")
    sim_config(
        simulator, response_delay_ms=1200, hold_next_queued=1, hold_queued_ms=60000
    )

    assert run(impatient, task) == SendResult(503, "outcome_unknown")
    wait_until(lambda: len(sends_to(simulator)) == 1)  # Twilio finished it late
    sim_config(simulator, response_delay_ms=0)
    [queued] = sends_to(simulator)
    # Not sent yet (no DateSent): a Messaging Service send stays "accepted"
    # until Twilio picks a sender for it.
    assert queued["status"] == "accepted"

    clock.expire_leases()
    assert run(deps, reconcile_task(db, message_id)) == SendResult(
        200, "reconciled_sent"
    )
    assert message(db, message_id)["provider_sid"] == queued["sid"]
    assert len(sends_to(simulator)) == 1


def test_a_content_template_send_is_matched_without_its_body(
    db: Any, deps: SenderDeps, simulator: SimulatorServer, clock: MovableClock
) -> None:
    message_id, task = make_message(
        db, clock, "spring", content_sid=CONTENT_SID, content_variables={"1": "Ann"}
    )
    sim_config(simulator, create_then_fail_with_500=1)

    assert run(deps, task) == SendResult(503, "outcome_unknown")
    clock.expire_leases()
    assert run(deps, reconcile_task(db, message_id)) == SendResult(
        200, "reconciled_sent"
    )
    [sent] = sends_to(simulator)
    assert sent["content_sid"] == CONTENT_SID
    assert message(db, message_id)["provider_sid"] == sent["sid"]


def test_a_send_that_never_reached_twilio_is_released_and_sent_once(
    db: Any, deps: SenderDeps, simulator: SimulatorServer, clock: MovableClock
) -> None:
    message_id, task = make_message(db, clock, "spring")
    sim_config(simulator, fail_next_with_500=1)  # refused before creating it

    assert run(deps, task) == SendResult(503, "outcome_unknown")
    clock.expire_leases()
    reconcile = reconcile_task(db, message_id)
    assert run(deps, reconcile) == SendResult(503, "reconciled_not_sent")
    assert status(db, message_id) is MessageStatus.QUEUED
    assert run(deps, reconcile) == SendResult(200, "sent")
    assert len(sends_to(simulator)) == 1


# --- what cannot be settled with certainty is held and reported ---------------


def test_two_candidate_content_sends_are_unreconciled_and_reported(
    db: Any, deps: SenderDeps, simulator: SimulatorServer, clock: MovableClock
) -> None:
    """Content sends echo no body: two in the window could be either one."""
    content = {"content_sid": CONTENT_SID, "content_variables": {"1": "Ann"}}
    message_id, task = make_message(db, clock, "spring", **content)
    _, other = make_message(db, clock, "autumn", **content)
    sim_config(simulator, create_then_fail_with_500=1)
    assert run(deps, task) == SendResult(503, "outcome_unknown")
    # Another campaign's send to the number, also ambiguous, also unrecorded.
    sim_config(simulator, create_then_fail_with_500=1)
    assert run(deps, other) == SendResult(503, "outcome_unknown")

    clock.expire_leases()
    answer = run(deps, reconcile_task(db, message_id))

    assert answer == SendResult(200, "unreconciled:several_candidates")
    doc = message(db, message_id)
    assert status_of(doc["status_rank"]) is MessageStatus.FAILED
    assert doc["error_code"] == "unreconciled"
    assert "provider_sid" not in doc
    assert run(deps, task).outcome == "already_failed"  # final: never re-sent
    assert len(sends_to(simulator)) == 2
    campaign = Campaign.from_snapshot(
        db.collection("campaigns").document("spring").get()
    )
    summary = compute_summary(db, campaign, clock())
    assert [(f.code, f.count) for f in summary.failures] == [("unreconciled", 1)]
    assert summary.failures[0].meaning
    # Final, so the campaign can complete (its batches are all fanned out).
    assert is_finished(db, campaign, deps.core, clock())


# --- two same-text messages to one number reconciling at once ------------------


def forced_interleaving(
    monkeypatch: pytest.MonkeyPatch, parties: int
) -> threading.Barrier:
    """Every reconciler waits, its lookup done, until all reach their claim."""
    barrier = threading.Barrier(parties, timeout=20)
    original = sender_module.claim_sid
    waited: set[int] = set()

    def claim_after_all_looked(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(sender_module, "claim_sid", claim_after_all_looked)
    return barrier


def reconcile_at_once(deps: SenderDeps, tasks: list[SendTask]) -> list[SendResult]:
    results: list[SendResult | None] = [None] * len(tasks)

    def reconcile(index: int) -> None:
        results[index] = run(deps, tasks[index])

    threads = [threading.Thread(target=reconcile, args=(i,)) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def test_two_same_text_messages_reconciling_at_once_take_one_sid_each(
    db: Any,
    deps: SenderDeps,
    simulator: SimulatorServer,
    clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two campaigns send one text to one number; both sends reach Twilio and
    both answers are lost (timeouts). Both lookups see both sends and both pick the
    oldest: one claim wins, the other takes the second SID."""
    ids, tasks = zip(
        *(make_message(db, clock, name) for name in ("spring", "autumn")), strict=True
    )
    for task in tasks:
        send_timing_out(deps, simulator, task, reaches=True)
    clock.expire_leases()
    forced_interleaving(monkeypatch, parties=2)

    results = reconcile_at_once(deps, [reconcile_task(db, i) for i in ids])

    assert results == [SendResult(200, "reconciled_sent")] * 2
    sids = {message(db, i)["provider_sid"] for i in ids}
    assert sids == {sent["sid"] for sent in sends_to(simulator)}
    assert len(sids) == 2
    assert {sid_claim(db, sid)["message_id"] for sid in sids} == set(ids)  # type: ignore[index]


def test_two_same_text_messages_and_one_send_found_only_one_takes_it(
    db: Any,
    deps: SenderDeps,
    simulator: SimulatorServer,
    clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the first send reached Twilio. The other message must not take
    that SID: it is released and sent, so the number gets both messages."""
    (first, first_task), (second, second_task) = (
        make_message(db, clock, name) for name in ("spring", "autumn")
    )
    send_timing_out(deps, simulator, first_task, reaches=True)
    send_timing_out(deps, simulator, second_task, reaches=False)
    [only] = sends_to(simulator)
    clock.expire_leases()
    forced_interleaving(monkeypatch, parties=2)

    results = reconcile_at_once(
        deps, [reconcile_task(db, first), reconcile_task(db, second)]
    )

    assert sorted(r.outcome for r in results) == [
        "reconciled_not_sent",
        "reconciled_sent",
    ]
    holders = [i for i in (first, second) if status(db, i) is MessageStatus.SENT]
    assert len(holders) == 1
    assert message(db, holders[0])["provider_sid"] == only["sid"]
    [released] = [i for i in (first, second) if i not in holders]
    assert status(db, released) is MessageStatus.QUEUED
    assert run(deps, reconcile_task(db, released)) == SendResult(200, "sent")
    assert len(sends_to(simulator)) == 2
    assert message(db, released)["provider_sid"] != only["sid"]
