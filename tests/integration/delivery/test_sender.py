"""send_message on the Firestore emulator with a fake Twilio gateway.

Each test writes a campaign, a user and a message the way fan-out does, builds
the send task fan-out would enqueue, and runs it through the sender.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.delivery import sender as sender_module
from shared.delivery.gateway import (
    CONNECTION_OVERRIDES,
    LOOKUP_LIMIT,
    OutboundMessage,
    SendAccepted,
    TwilioSendError,
)
from shared.delivery.messages import message_id_for, send_task
from shared.delivery.pacing import RateGuard
from shared.delivery.receipts import apply_status_callback
from shared.delivery.sender import SenderDeps, SendResult, send_message
from shared.payloads import SendTaskBody, StatusCallback
from shared.platform.config import CoreSettings, TwilioSettings
from shared.platform.firestore import operations
from shared.platform.tasks import SendTask, task_name_for
from shared.store.campaigns import CampaignSettings, CampaignStatus, campaign_cache
from shared.store.messages import MessageStatus, rank_of, status_of
from shared.store.users import ConsentState, new_user, user_doc
from tests.conftest import SleepingClock

pytestmark = pytest.mark.integration

CAMPAIGN = "spring"
PHONE = "+12125550100"  # New York: 10:00 local at the clock's 15:00 UTC
MESSAGE_ID = message_id_for(CAMPAIGN, PHONE)
BODY = "Hi Ann, 20% off today\nReply STOP to opt out"
BASE_URL = "https://engine.example.com"
SERVICE_SID = "MG" + "a" * 32
PIPELINE_STEPS = [
    "idempotency",
    "campaign_state",
    "consent",
    "frequency_cap",
    "quiet_hours",
    "content",
    "whatsapp_window",
]


class FakeGateway:
    """The Twilio port: records sends, raises queued errors, answers lookups."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.failures: list[TwilioSendError] = []
        self.found: list[SendAccepted] = []
        self.lookups: list[tuple[str, str | None]] = []
        # Runs inside send(), after the claim and before the SENT write.
        self.during_send: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    def fail_next(self, code: int | None, http_status: int | None) -> None:
        self.failures.append(TwilioSendError("twilio said no", code, http_status))

    def next_sid(self) -> str:
        return f"SM{len(self.sent) + 1:032d}"

    def send(self, message: OutboundMessage) -> SendAccepted:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)
            sid = self.next_sid()
            if self.during_send:
                self.during_send(sid)
            self.sent.append(message)
        return SendAccepted(sid=sid, status="queued")

    def find_recent(self, to: str, from_number: str | None) -> list[SendAccepted]:
        self.lookups.append((to, from_number))
        return list(self.found)


# --- factories -----------------------------------------------------------------


def core(**env: str) -> CoreSettings:
    return CoreSettings(
        **{
            "GCP_PROJECT": "ese-test",
            "QUIET_HOURS_DEFAULT": "21:00-08:00",
            "GLOBAL_FREQUENCY_CAP": "",
            "SENDING_LEASE_SECONDS": "120",
            **env,
        }
    )


def twilio() -> TwilioSettings:
    return TwilioSettings(
        PUBLIC_BASE_URL=BASE_URL + "/",
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID,
    )


def make_campaign(
    db: Any, status: CampaignStatus = CampaignStatus.RUNNING, **settings: Any
) -> None:
    fields = CampaignSettings(
        name="Spring sale",
        template_id="greeting",
        segment_id="everyone",
        # High enough that the sender's per-process rate guard never waits.
        **{"rate_limit_mps": 100.0, **settings},
    ).model_dump(by_alias=True)
    db.collection("campaigns").document(CAMPAIGN).set(
        {**fields, "status": status.value, "launch_id": "launch1"}
    )


def make_user(
    db: Any,
    now: datetime,
    state: ConsentState = ConsentState.OPT_IN,
    timezone: str | None = "America/New_York",
    phone: str = PHONE,
) -> None:
    user = new_user(phone, {"name": "Ann"}, timezone, state, "api", now)
    db.collection("users").document(phone).set(user_doc(user))


def make_message(
    db: Any, now: datetime, message_id: str = MESSAGE_ID, **fields: Any
) -> SendTask:
    """Create the message as fan-out does; return the task fan-out would enqueue."""
    doc = {
        "campaign_id": CAMPAIGN,
        "phone": PHONE,
        "body": BODY,
        "encoding": "GSM7",
        "segments": 1,
        "channel": "sms",
        "status_rank": rank_of(MessageStatus.QUEUED),
        "generation": 0,
        "attempts": 0,
        "send_at": now,
        "created_at": now,
        "audit": [],
        **fields,
    }
    written = db.collection("messages").document(message_id).create(doc)
    return send_task(message_id, doc, written.update_time)


def message(db: Any, message_id: str = MESSAGE_ID) -> dict[str, Any]:
    return db.collection("messages").document(message_id).get().to_dict()


def status(db: Any, message_id: str = MESSAGE_ID) -> MessageStatus:
    return status_of(message(db, message_id)["status_rank"])


def steps(doc: dict[str, Any]) -> list[str]:
    return [entry["step"] for entry in doc["audit"]]


def run(deps: SenderDeps, task: SendTask) -> SendResult:
    return send_message(deps, SendTaskBody.model_validate(task.body))


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def deps(db: Any, gateway: FakeGateway, task_queue: Any, clock: Any) -> SenderDeps:
    return SenderDeps(
        db=db,
        gateway=gateway,  # type: ignore[arg-type]
        tasks=task_queue,
        core=core(),
        twilio=twilio(),
        campaigns=campaign_cache(db, 0.0),
        clock=clock,
    )


@pytest.fixture
def task(db: Any, clock: Any) -> SendTask:
    """A running campaign, an opted-in user in New York and a queued message."""
    make_campaign(db)
    make_user(db, clock.now)
    return make_message(db, clock.now)


# --- the lean path -------------------------------------------------------------


def test_the_fast_path_sends_once_and_records_sent(
    deps: SenderDeps, gateway: FakeGateway, task: SendTask, clock: Any
) -> None:
    before = operations.snapshot()
    assert run(deps, task) == SendResult(200, "sent")
    after = operations.snapshot()

    assert gateway.sent == [
        OutboundMessage(
            to=PHONE,
            body=BODY,
            status_callback=(
                f"{BASE_URL}/twilio/status?message_id={MESSAGE_ID}"
                f"#{CONNECTION_OVERRIDES}"
            ),
            messaging_service_sid=SERVICE_SID,
        )
    ]
    doc = message(deps.db)
    assert status_of(doc["status_rank"]) is MessageStatus.SENT
    assert doc["provider_sid"] == "SM" + "1".zfill(32)
    assert doc["sent_at"] == clock.now
    assert doc["attempts"] == 1
    assert doc["lease_until"] is None
    assert steps(doc) == [*PIPELINE_STEPS, "claim", "send"]
    assert {e["outcome"] for e in doc["audit"][: len(PIPELINE_STEPS)]} == {"pass"}
    # The message itself is not read: only the campaign and the user are.
    assert after.get("reads", 0) - before.get("reads", 0) == 2
    assert after.get("writes", 0) - before.get("writes", 0) == 2


def test_a_second_identical_task_sends_nothing(
    deps: SenderDeps, gateway: FakeGateway, task: SendTask
) -> None:
    run(deps, task)
    assert run(deps, task) == SendResult(200, "already_sent")
    assert len(gateway.sent) == 1


def test_two_concurrent_deliveries_of_one_task_send_once(
    deps: SenderDeps,
    gateway: FakeGateway,
    task: SendTask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forced interleaving: both deliveries have read the message and decided
    to send before either claims it; only one claim may win."""
    results: list[SendResult] = []
    both_decided = threading.Barrier(2, timeout=10)
    claims: list[str] = []
    update_if_unchanged = sender_module._update_if_unchanged

    def claim_together(deps: SenderDeps, handle: Any, fields: dict[str, Any]) -> Any:
        if "attempt_id" in fields and len(claims) < 2:
            claims.append(fields["attempt_id"])
            both_decided.wait()
        return update_if_unchanged(deps, handle, fields)

    monkeypatch.setattr(sender_module, "_update_if_unchanged", claim_together)

    def deliver() -> None:
        results.append(run(deps, task))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claims) == 2, "both deliveries reached the claim together"
    assert len(gateway.sent) == 1
    assert sorted(r.outcome for r in results).count("sent") == 1
    assert status(deps.db) is MessageStatus.SENT


def test_a_stale_version_falls_back_to_reading_the_message(
    deps: SenderDeps, gateway: FakeGateway, task: SendTask
) -> None:
    deps.db.collection("messages").document(MESSAGE_ID).update({"body": "Changed"})
    assert run(deps, task) == SendResult(200, "sent")
    assert [m.body for m in gateway.sent] == ["Changed"]


def test_a_campaign_sender_number_is_used(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    make_campaign(db, sender={"from": "+15005550006"})
    make_user(db, clock.now)
    run(deps, make_message(db, clock.now))
    [sent] = gateway.sent
    assert (sent.from_number, sent.messaging_service_sid) == ("+15005550006", None)


# --- compliance decisions ------------------------------------------------------


@pytest.mark.parametrize("state", [ConsentState.STOP, ConsentState.OPT_OUT, None])
def test_a_user_without_consent_is_skipped(
    db: Any,
    deps: SenderDeps,
    gateway: FakeGateway,
    clock: Any,
    state: ConsentState | None,
) -> None:
    make_campaign(db)
    if state is not None:
        make_user(db, clock.now, state)
    assert run(deps, make_message(db, clock.now)) == SendResult(
        200, "skipped:no_consent"
    )
    assert gateway.sent == []
    doc = message(db)
    assert status_of(doc["status_rank"]) is MessageStatus.SKIPPED
    assert doc["skip_reason"] == "no_consent"
    assert doc["audit"][-1]["step"] == "consent"


def test_a_paused_campaign_holds_the_message(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    make_campaign(db, CampaignStatus.PAUSED)
    make_user(db, clock.now)
    assert run(deps, make_message(db, clock.now)) == SendResult(200, "held")
    assert gateway.sent == []
    doc = message(db)
    assert doc["held"] is True
    assert status_of(doc["status_rank"]) is MessageStatus.QUEUED
    assert doc["audit"][-1]["outcome"] == "hold"


@pytest.mark.parametrize(
    ("campaign_status", "reason"),
    [
        (CampaignStatus.CANCELLED, "campaign_cancelled"),
        (CampaignStatus.FAILED, "campaign_failed"),
    ],
)
def test_a_cancelled_or_failed_campaign_skips_the_message(
    db: Any,
    deps: SenderDeps,
    gateway: FakeGateway,
    clock: Any,
    campaign_status: CampaignStatus,
    reason: str,
) -> None:
    make_campaign(db, campaign_status)
    make_user(db, clock.now)
    assert run(deps, make_message(db, clock.now)) == SendResult(
        200, f"skipped:{reason}"
    )
    assert gateway.sent == []
    doc = message(db)
    assert (status_of(doc["status_rank"]), doc["skip_reason"]) == (
        MessageStatus.SKIPPED,
        reason,
    )


def test_a_pause_after_fan_out_holds_even_on_the_fast_path(
    deps: SenderDeps, gateway: FakeGateway, task: SendTask
) -> None:
    deps.db.collection("campaigns").document(CAMPAIGN).update({"status": "PAUSED"})
    assert run(deps, task).outcome == "held"
    assert gateway.sent == []


def test_quiet_hours_defer_with_a_new_task_at_the_allowed_time(
    db: Any, deps: SenderDeps, gateway: FakeGateway, task_queue: Any, clock: Any
) -> None:
    make_campaign(db)
    # 15:00 UTC is midnight in Tokyo; sending is allowed again at 08:00 JST.
    make_user(db, clock.now, timezone="Asia/Tokyo")
    allowed = datetime.fromisoformat("2026-11-26T23:00:00+00:00")

    assert run(deps, make_message(db, clock.now)) == SendResult(200, "deferred")

    assert gateway.sent == []
    doc = message(db)
    assert status_of(doc["status_rank"]) is MessageStatus.QUEUED
    assert (doc["generation"], doc["send_at"]) == (1, allowed)
    assert doc["audit"][-1]["step"] == "quiet_hours"
    assert doc["audit"][-1]["until"] == allowed
    [deferred] = task_queue.tasks
    assert deferred.name == task_name_for(MESSAGE_ID, 1)
    assert deferred.schedule_time == allowed

    clock.now = allowed
    before = operations.snapshot()
    assert run(deps, deferred) == SendResult(200, "sent")
    # The deferred task carries a fresh version: the fast path still holds.
    assert operations.snapshot().get("reads", 0) - before.get("reads", 0) == 2
    assert len(gateway.sent) == 1


def test_a_campaign_without_quiet_hours_sends_at_night(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    make_campaign(db, quiet_hours=None)
    make_user(db, clock.now, timezone="Asia/Tokyo")
    assert run(deps, make_message(db, clock.now)).outcome == "sent"


def test_the_frequency_cap_counts_recent_sends_to_the_number(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    make_campaign(db, frequency_cap={"max_messages": 1, "per_hours": 24})
    make_user(db, clock.now)
    earlier = clock.now - timedelta(hours=3)
    make_message(
        db,
        earlier,
        message_id="autumn_12125550100",
        campaign_id="autumn",
        status_rank=rank_of(MessageStatus.DELIVERED),
        sent_at=earlier,
    )
    assert run(deps, make_message(db, clock.now)) == SendResult(
        200, "skipped:frequency_cap"
    )
    assert gateway.sent == []


def test_prohibited_content_is_skipped(
    db: Any, gateway: FakeGateway, deps: SenderDeps, clock: Any
) -> None:
    deps.core = core(PROHIBITED_PATTERNS=r"20%\s+off")
    make_campaign(db)
    make_user(db, clock.now)
    assert run(deps, make_message(db, clock.now)) == SendResult(
        200, "skipped:content_invalid"
    )
    assert gateway.sent == []
    assert "prohibited pattern" in message(db)["audit"][-1]["reason"]


# --- Twilio errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status"),
    [(None, 429), (20429, 429), (None, 503)],
    ids=["http-429", "20429", "http-503"],
)
def test_a_retriable_error_releases_the_claim_and_the_retry_sends_once(
    deps: SenderDeps,
    gateway: FakeGateway,
    task: SendTask,
    code: int | None,
    http_status: int,
) -> None:
    gateway.fail_next(code, http_status)
    assert run(deps, task) == SendResult(503, "retriable_error")
    doc = message(deps.db)
    assert status_of(doc["status_rank"]) is MessageStatus.QUEUED
    assert doc["lease_until"] is None
    assert doc["audit"][-1]["outcome"] == "retry"
    assert gateway.sent == []

    assert run(deps, task) == SendResult(200, "sent")
    assert len(gateway.sent) == 1
    doc = message(deps.db)
    assert status_of(doc["status_rank"]) is MessageStatus.SENT
    assert doc["attempts"] == 2


# --- the campaign's rate -------------------------------------------------------

SECOND_PHONE = "+12125550101"


def fake_guard() -> tuple[RateGuard, SleepingClock]:
    """A rate guard on a clock that moves only when the guard waits."""
    clock = SleepingClock(1000.0)

    def no_answer_comes(timeout: float) -> bool:
        clock.now += timeout
        return False

    return RateGuard(clock=clock, sleep=clock.sleep, wait=no_answer_comes), clock


@dataclasses.dataclass(frozen=True)
class TwoMessages:
    """Two queued messages of one campaign at 1 segment/s, sent by deps whose
    rate guard runs on `guard_clock`."""

    deps: SenderDeps
    guard_clock: SleepingClock
    first: SendTask
    second: SendTask
    second_id: str


def two_messages_at_one_per_second(
    db: Any, deps: SenderDeps, clock: Any
) -> TwoMessages:
    guard, guard_clock = fake_guard()
    make_campaign(db, rate_limit_mps=1.0)
    make_user(db, clock.now)
    make_user(db, clock.now, phone=SECOND_PHONE)
    first = make_message(db, clock.now)
    second_id = message_id_for(CAMPAIGN, SECOND_PHONE)
    second = make_message(db, clock.now, second_id, phone=SECOND_PHONE)
    guarded = dataclasses.replace(deps, rate_guard=guard)
    return TwoMessages(guarded, guard_clock, first, second, second_id)


def test_a_send_with_an_unknown_outcome_keeps_its_place_in_the_rate(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    """Twilio may still accept a send that timed out, so the next send of its
    campaign does not take its place within the rate: it is refused (and
    retried later by the queue), nothing sent."""
    two = two_messages_at_one_per_second(db, deps, clock)
    gateway.failures.append(
        TwilioSendError("read timed out", None, None, outcome_unknown=True)
    )
    assert run(two.deps, two.first) == SendResult(503, "outcome_unknown")

    assert run(two.deps, two.second) == SendResult(503, "retriable_error")
    assert gateway.sent == []
    doc = message(db, two.second_id)
    assert status_of(doc["status_rank"]) is MessageStatus.QUEUED
    assert doc["audit"][-1]["reason"].startswith("429")


def test_a_send_answered_frees_its_place_a_second_after_the_answer(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    two = two_messages_at_one_per_second(db, deps, clock)
    assert run(two.deps, two.first) == SendResult(200, "sent")
    assert run(two.deps, two.second) == SendResult(200, "sent")
    assert two.guard_clock.slept == [1.0]
    assert len(gateway.sent) == 2


def test_a_rate_backlog_is_retried_later_without_a_claim(
    db: Any, deps: SenderDeps, gateway: FakeGateway, task: SendTask
) -> None:
    """Sends of the campaign already spaced more than the sender waits ahead:
    the task is handed back before any write, so a backlog costs nothing."""
    guard = RateGuard(clock=lambda: 1000.0, sleep=lambda _s: None)
    for _ in range(8):
        slot = guard.acquire(CAMPAIGN, 1.0, 1, max_wait=1e9)
        assert slot is not None
        guard.finish(slot)
    assert guard.backlog(CAMPAIGN) == 8.0
    deps = dataclasses.replace(deps, rate_guard=guard)
    before = message(deps.db)
    assert run(deps, task) == SendResult(503, "rate_backlog")
    assert message(deps.db) == before
    assert gateway.sent == []


def test_a_permanent_error_fails_the_message_with_its_code(
    deps: SenderDeps, gateway: FakeGateway, task: SendTask
) -> None:
    gateway.fail_next(21211, 400)
    assert run(deps, task) == SendResult(200, "failed")
    doc = message(deps.db)
    assert status_of(doc["status_rank"]) is MessageStatus.FAILED
    assert doc["error_code"] == "21211"
    assert doc["error_message"] == "twilio said no"
    user = deps.db.collection("users").document(PHONE).get().to_dict()
    assert user["consent"]["state"] == "OPT_IN"
    # A redelivered task does not send it again.
    assert run(deps, task).outcome == "already_failed"
    assert gateway.sent == []


def test_21610_fails_the_message_and_stops_the_user(
    deps: SenderDeps, gateway: FakeGateway, task: SendTask
) -> None:
    gateway.fail_next(21610, 400)
    assert run(deps, task) == SendResult(200, "failed")
    doc = message(deps.db)
    assert (status_of(doc["status_rank"]), doc["error_code"]) == (
        MessageStatus.FAILED,
        "21610",
    )
    user_ref = deps.db.collection("users").document(PHONE)
    consent = user_ref.get().to_dict()["consent"]
    assert (consent["state"], consent["source"]) == ("STOP", "carrier_21610")
    events = [e.to_dict() for e in user_ref.collection("consent_events").stream()]
    assert [(e["from"], e["to"], e["source"]) for e in events] == [
        ("OPT_IN", "STOP", "carrier_21610")
    ]
    assert events[0]["evidence"] == MESSAGE_ID


# --- expired claims ------------------------------------------------------------


def stuck_message(
    db: Any, now: datetime, lease_left: timedelta, **fields: Any
) -> SendTask:
    """A message claimed earlier whose lease ends `lease_left` from now.

    Returns the message's original send task, whose version predates the claim.
    """
    make_campaign(db)
    make_user(db, now)
    task = make_message(db, now - timedelta(minutes=5), **fields)
    db.collection("messages").document(MESSAGE_ID).update(
        {
            "status_rank": rank_of(MessageStatus.SENDING),
            "attempts": 1,
            "attempt_id": "a1",
            "claimed_at": now - timedelta(minutes=4),
            "lease_until": now + lease_left,
        }
    )
    return task


def reconcile_task(db: Any) -> SendTask:
    """What the scheduler's sweep enqueues for a stuck message."""
    snapshot = db.collection("messages").document(MESSAGE_ID).get()
    return send_task(
        MESSAGE_ID, snapshot.to_dict(), None, reconcile=True, name_suffix="-r1"
    )


def test_a_live_lease_is_retried_later_without_sending(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    stuck_message(db, clock.now, timedelta(seconds=30))
    assert run(deps, reconcile_task(db)) == SendResult(503, "send_in_flight")
    assert gateway.sent == [] and gateway.lookups == []


def at_twilio(sid: str, body: str, created: datetime) -> SendAccepted:
    """A message Twilio lists for PHONE, sent through our Messaging Service."""
    return SendAccepted(
        sid=sid,
        status="delivered",
        body=body,
        to=PHONE,
        messaging_service_sid=SERVICE_SID,
        date_created=created,
    )


def test_an_expired_lease_found_at_twilio_is_recorded_sent_without_resending(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    original = stuck_message(db, clock.now, -timedelta(minutes=2))
    claimed = clock.now - timedelta(minutes=4)
    gateway.found = [
        at_twilio("SMother", "another message", claimed),
        at_twilio("SMbefore", BODY, claimed - timedelta(minutes=5)),
        at_twilio("SMfound", BODY, claimed + timedelta(seconds=1)),
    ]
    # The original task, redelivered, must not send blindly either.
    assert run(deps, original) == SendResult(200, "reconciled_sent")
    assert gateway.sent == []
    assert gateway.lookups == [(PHONE, None)]
    doc = message(db)
    assert status_of(doc["status_rank"]) is MessageStatus.SENT
    assert doc["provider_sid"] == "SMfound"
    assert run(deps, reconcile_task(db)).outcome == "already_sent"


def test_a_whatsapp_send_is_looked_up_and_matched_on_its_whatsapp_addresses(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    """Twilio lists a WhatsApp message under `whatsapp:` addresses: the lookup
    asks for them, and an SMS of the same text to the same number is not it."""
    original = stuck_message(db, clock.now, -timedelta(minutes=2), channel="whatsapp")
    created = clock.now - timedelta(minutes=4) + timedelta(seconds=1)
    sms_twin = at_twilio("SMsms", BODY, created)
    gateway.found = [
        sms_twin,
        dataclasses.replace(sms_twin, sid="SMwa", to=f"whatsapp:{PHONE}"),
    ]
    assert run(deps, original) == SendResult(200, "reconciled_sent")
    assert gateway.lookups == [(f"whatsapp:{PHONE}", None)]
    assert gateway.sent == []
    assert message(db)["provider_sid"] == "SMwa"


def test_a_send_found_at_twilio_that_another_message_holds_is_not_this_ones(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    """Two campaigns may send the same text to one number at once: the other
    campaign's send must not count as this message's."""
    stuck_message(db, clock.now, -timedelta(minutes=2))
    db.collection("messages").document("other-campaign-message").set(
        {"phone": PHONE, "body": BODY, "provider_sid": "SMtheirs"}
    )
    gateway.found = [at_twilio("SMtheirs", BODY, clock.now - timedelta(minutes=4))]
    task = reconcile_task(db)
    assert run(deps, task) == SendResult(503, "reconciled_not_sent")
    assert status(db) is MessageStatus.QUEUED
    assert "provider_sid" not in message(db)

    assert run(deps, task) == SendResult(200, "sent")
    assert len(gateway.sent) == 1
    assert message(db)["provider_sid"] != "SMtheirs"


def test_an_expired_lease_not_found_is_released_and_the_next_attempt_sends(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    stuck_message(db, clock.now, -timedelta(minutes=2))
    gateway.found = [at_twilio("SMother", "other", clock.now - timedelta(minutes=4))]
    task = reconcile_task(db)
    assert run(deps, task) == SendResult(503, "reconciled_not_sent")
    assert status(db) is MessageStatus.QUEUED
    assert gateway.sent == []

    assert run(deps, task) == SendResult(200, "sent")
    assert len(gateway.sent) == 1
    assert status(db) is MessageStatus.SENT


def test_a_lookup_page_full_of_the_window_is_unreconciled_not_resent(
    db: Any, deps: SenderDeps, gateway: FakeGateway, clock: Any
) -> None:
    """A full page that never reaches back past the claim may have left out
    this message's send: not found is not certain, so it is never re-sent."""
    stuck_message(db, clock.now, -timedelta(minutes=2))
    recent = clock.now - timedelta(seconds=30)
    gateway.found = [
        at_twilio(f"SM{i:032d}", "another text", recent) for i in range(LOOKUP_LIMIT)
    ]
    task = reconcile_task(db)

    assert run(deps, task) == SendResult(200, "unreconciled:lookup_truncated")
    doc = message(db)
    assert status_of(doc["status_rank"]) is MessageStatus.FAILED
    assert (doc["error_code"], doc["lease_until"]) == ("unreconciled", None)
    assert run(deps, task).outcome == "already_failed"
    assert gateway.sent == []


# --- status callbacks racing the send ------------------------------------------


@pytest.mark.parametrize(
    ("callback_status", "expected"),
    [
        ("delivered", MessageStatus.DELIVERED),
        ("undelivered", MessageStatus.UNDELIVERED),
    ],
)
def test_a_callback_that_outran_the_sent_write_is_never_lowered(
    deps: SenderDeps,
    gateway: FakeGateway,
    task: SendTask,
    clock: Any,
    callback_status: str,
    expected: MessageStatus,
) -> None:
    def callback_arrives(sid: str) -> None:
        callback = StatusCallback(
            params={"MessageSid": sid, "MessageStatus": callback_status, "To": PHONE},
            query={"message_id": MESSAGE_ID},
            received_at=clock.now,
        )
        apply_status_callback(deps.db, callback, clock.now)

    gateway.during_send = callback_arrives
    assert run(deps, task) == SendResult(200, "sent")
    doc = message(deps.db)
    assert status_of(doc["status_rank"]) is expected
    assert doc["provider_sid"] == "SM" + "1".zfill(32)
    assert doc["sent_at"] == clock.now
