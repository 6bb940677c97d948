"""Bulk changes to unsent messages on the emulator: resume held, skip queued."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import permutations
from typing import Any

import pytest

from shared.campaigns.fanout import reserve_send_window
from shared.campaigns.lifecycle import transition
from shared.campaigns.replan import resume_held_messages, skip_queued_messages
from shared.campaigns.transitions import CampaignAction
from shared.delivery.gateway import OutboundMessage, SendAccepted
from shared.delivery.messages import encode_version, message_id_for, send_task
from shared.delivery.pacing import plan_offsets
from shared.delivery.sender import SenderDeps, send_message
from shared.payloads import RecipientBatch, SendTaskBody
from shared.platform.config import CoreSettings, TwilioSettings
from shared.platform.tasks import SendTask, task_name_for
from shared.store.campaigns import (
    Campaign,
    CampaignSettings,
    CampaignStatus,
    campaign_cache,
)
from shared.store.messages import MessageStatus, rank_of, status_of
from shared.store.users import ConsentState, new_user, user_doc

pytestmark = pytest.mark.integration

CAMPAIGN = "spring"
LAUNCH = "launch1"
S = MessageStatus


class FakeGateway:
    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> SendAccepted:
        self.sent.append(message)
        return SendAccepted(sid=f"SM{len(self.sent):032d}", status="queued")

    def find_recent(self, to: str, from_number: str | None) -> list[SendAccepted]:
        return []


# --- factories -----------------------------------------------------------------


def make_campaign(
    db: Any,
    status: CampaignStatus = CampaignStatus.RUNNING,
    campaign_id: str = CAMPAIGN,
    **settings: Any,
) -> Campaign:
    fields = CampaignSettings(
        name="Spring sale",
        template_id="greeting",
        segment_id="everyone",
        **{"rate_limit_mps": 2.0, "quiet_hours": None, **settings},
    ).model_dump(by_alias=True)
    doc = {**fields, "status": status.value, "launch_id": LAUNCH}
    db.collection("campaigns").document(campaign_id).set(doc)
    return Campaign.model_validate({**doc, "id": campaign_id})


def phone(n: int) -> str:
    return f"+1212555{n:04d}"


def make_message(
    db: Any,
    now: datetime,
    n: int,
    status: MessageStatus = S.QUEUED,
    campaign_id: str = CAMPAIGN,
    **fields: Any,
) -> SendTask:
    """A message as fan-out leaves it; returns the task fan-out would enqueue."""
    message_id = message_id_for(campaign_id, phone(n))
    doc = {
        "campaign_id": campaign_id,
        "phone": phone(n),
        "body": f"Hi {n}",
        "encoding": "GSM7",
        "segments": 1,
        "channel": "sms",
        "status_rank": rank_of(status),
        "generation": 0,
        "attempts": 0,
        "send_at": now,
        "audit": [],
        **fields,
    }
    written = db.collection("messages").document(message_id).create(doc)
    return send_task(message_id, doc, written.update_time)


def snapshot(db: Any, n: int, campaign_id: str = CAMPAIGN) -> Any:
    return (
        db.collection("messages").document(message_id_for(campaign_id, phone(n))).get()
    )


# --- resume_held_messages ------------------------------------------------------


def test_held_messages_are_replanned_with_a_new_generation_and_new_tasks(
    db: Any, clock: Any, task_queue: Any
) -> None:
    campaign = make_campaign(db)
    make_message(db, clock.now, 1, held=True)
    make_message(db, clock.now, 2, held=True, generation=1)
    make_message(db, clock.now, 3, held=True, segments=2)

    resumed = resume_held_messages(db, task_queue, campaign, clock.now)

    assert resumed == 3
    snaps = {n: snapshot(db, n) for n in (1, 2, 3)}
    docs = {n: s.to_dict() for n, s in snaps.items()}
    assert all(d["held"] is False for d in docs.values())
    assert [docs[n]["generation"] for n in (1, 2, 3)] == [1, 2, 1]
    times = sorted(d["send_at"] for d in docs.values())
    assert times[0] >= clock.now
    # Planned at 2 segments per second from the first slot, in page order.
    gaps = sorted((t - times[0]).total_seconds() for t in times)
    plans = [plan_offsets(list(order), 2.0)[0] for order in permutations([1, 1, 2])]
    assert any(gaps == pytest.approx(plan) for plan in plans)
    by_id = {t.body["message_id"]: t for t in task_queue.tasks}
    assert len(by_id) == 3
    for n, snap in snaps.items():
        task = by_id[snap.id]
        assert task.name == task_name_for(snap.id, docs[n]["generation"])
        assert task.schedule_time == docs[n]["send_at"]
        assert task.body["version"] == encode_version(snap.update_time)
        assert task.body["message"]["generation"] == docs[n]["generation"]


def test_only_held_queued_messages_of_the_campaign_are_resumed(
    db: Any, clock: Any, task_queue: Any
) -> None:
    campaign = make_campaign(db)
    make_campaign(db, campaign_id="autumn")
    make_message(db, clock.now, 1, held=True)
    make_message(db, clock.now, 2)  # queued, not held: its task is still pending
    make_message(db, clock.now, 3, S.SENT, held=True)
    make_message(db, clock.now, 4, held=True, campaign_id="autumn")
    untouched = {n: snapshot(db, n).update_time for n in (2, 3)}

    assert resume_held_messages(db, task_queue, campaign, clock.now) == 1

    assert [t.body["message_id"] for t in task_queue.tasks] == [
        message_id_for(CAMPAIGN, phone(1))
    ]
    assert {n: snapshot(db, n).update_time for n in (2, 3)} == untouched
    assert snapshot(db, 4, "autumn").to_dict()["held"] is True


def test_resumed_sends_never_overlap_the_launchs_reservations(
    db: Any, clock: Any, task_queue: Any
) -> None:
    campaign = make_campaign(db)
    batch = RecipientBatch(
        campaign_id=CAMPAIGN, launch_id=LAUNCH, batch_no=0, phones=[]
    )
    # The launch's fan-out reserved 600 segments: 300 s at 2 per second.
    begin = reserve_send_window(db, campaign, batch, 600, clock.now)
    make_message(db, clock.now, 1, held=True)

    resume_held_messages(db, task_queue, campaign, clock.now)

    assert snapshot(db, 1).to_dict()["send_at"] >= begin + timedelta(seconds=300)


def test_nothing_held_nothing_resumed(db: Any, clock: Any, task_queue: Any) -> None:
    campaign = make_campaign(db)
    make_message(db, clock.now, 1)
    assert resume_held_messages(db, task_queue, campaign, clock.now) == 0
    assert task_queue.tasks == []


def sender(db: Any, task_queue: Any, clock: Any, gateway: FakeGateway) -> SenderDeps:
    return SenderDeps(
        db=db,
        gateway=gateway,  # type: ignore[arg-type]
        tasks=task_queue,
        core=CoreSettings(GCP_PROJECT="ese-test"),
        twilio=TwilioSettings(
            PUBLIC_BASE_URL="https://engine.example.com",
            TWILIO_ACCOUNT_SID="AC" + "0" * 32,
            TWILIO_MESSAGING_SERVICE_SID="MG" + "a" * 32,
        ),
        campaigns=campaign_cache(db, 0.0),
        clock=clock,
    )


def make_user(db: Any, now: datetime, n: int) -> None:
    user = new_user(phone(n), {}, "UTC", ConsentState.OPT_IN, "api", now)
    db.collection("users").document(phone(n)).set(user_doc(user))


def test_pause_holds_and_resume_sends_each_message_once(
    db: Any, clock: Any, task_queue: Any
) -> None:
    gateway = FakeGateway()
    deps = sender(db, task_queue, clock, gateway)
    make_campaign(db, rate_limit_mps=100.0)
    make_user(db, clock.now, 1)
    original = make_message(db, clock.now, 1)
    transition(db, CAMPAIGN, CampaignAction.PAUSE, clock.now)

    assert send_message(deps, SendTaskBody.model_validate(original.body)).outcome == (
        "held"
    )
    resumed = transition(db, CAMPAIGN, CampaignAction.RESUME, clock.now)
    assert resumed.status is CampaignStatus.RUNNING
    assert resume_held_messages(db, task_queue, resumed, clock.now) == 1

    [replanned] = task_queue.tasks
    clock.now = replanned.schedule_time
    result = send_message(deps, SendTaskBody.model_validate(replanned.body))
    assert result.outcome == "sent"
    # A late redelivery of the original task sends nothing more.
    late = send_message(deps, SendTaskBody.model_validate(original.body))
    assert late.outcome == "already_sent"
    assert len(gateway.sent) == 1


# --- skip_queued_messages ------------------------------------------------------


def test_skip_queued_skips_queued_messages_only(db: Any, clock: Any) -> None:
    make_campaign(db, CampaignStatus.CANCELLED)
    make_campaign(db, campaign_id="autumn")
    make_message(db, clock.now, 1)
    make_message(db, clock.now, 2, held=True)
    make_message(db, clock.now, 3, S.SENDING)
    make_message(db, clock.now, 4, S.SENT)
    make_message(db, clock.now, 5, S.DELIVERED)
    make_message(db, clock.now, 6, campaign_id="autumn")
    untouched = {n: snapshot(db, n).update_time for n in (3, 4, 5)}

    outcome = skip_queued_messages(
        db, CAMPAIGN, "campaign_cancelled", clock.now, budget_s=20
    )

    assert (outcome.changed, outcome.finished) == (2, True)
    for n in (1, 2):
        doc = snapshot(db, n).to_dict()
        assert status_of(doc["status_rank"]) is S.SKIPPED
        assert doc["skip_reason"] == "campaign_cancelled"
        assert doc["held"] is False
        assert doc["skipped_at"] == clock.now
        assert doc["audit"][-1] == {
            "step": "campaign_state",
            "outcome": "skip",
            "reason": "campaign_cancelled",
            "at": clock.now,
        }
    assert {n: snapshot(db, n).update_time for n in (3, 4, 5)} == untouched
    assert [status_of(snapshot(db, n).to_dict()["status_rank"]) for n in (3, 4, 5)] == [
        S.SENDING,
        S.SENT,
        S.DELIVERED,
    ]
    other = snapshot(db, 6, "autumn").to_dict()
    assert status_of(other["status_rank"]) is S.QUEUED


def test_a_pending_task_of_a_skipped_message_sends_nothing(
    db: Any, clock: Any, task_queue: Any
) -> None:
    gateway = FakeGateway()
    make_campaign(db, rate_limit_mps=100.0)
    make_user(db, clock.now, 1)
    task = make_message(db, clock.now, 1)
    transition(db, CAMPAIGN, CampaignAction.CANCEL, clock.now)
    skip_queued_messages(db, CAMPAIGN, "campaign_cancelled", clock.now, budget_s=20)

    deps = sender(db, task_queue, clock, gateway)
    result = send_message(deps, SendTaskBody.model_validate(task.body))

    assert result.outcome == "already_skipped"
    assert gateway.sent == []
    assert snapshot(db, 1).to_dict()["skip_reason"] == "campaign_cancelled"


def test_skip_queued_with_nothing_queued_is_finished(db: Any, clock: Any) -> None:
    make_campaign(db, CampaignStatus.CANCELLED)
    make_message(db, clock.now, 1, S.SENT)
    outcome = skip_queued_messages(db, CAMPAIGN, "campaign_cancelled", clock.now, 20)
    assert (outcome.changed, outcome.finished) == (0, True)
