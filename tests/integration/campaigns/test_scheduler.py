"""Launching and the minute tick on the emulator.

Launch now or later; the tick launches due campaigns once, re-publishes a lost
launch, completes finished campaigns, sweeps stuck sends and finishes
cancellations.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest

from shared.campaigns.lifecycle import IllegalTransition, launch_campaign, transition
from shared.campaigns.replan import resume_held_messages
from shared.campaigns.scheduler import sweep_stuck_sends
from shared.campaigns.transitions import CampaignAction
from shared.delivery.messages import message_id_for
from shared.payloads import CampaignLaunch
from shared.platform.config import CoreSettings
from shared.platform.pubsub import Topic
from shared.platform.tasks import TaskQueueError, task_name_for
from shared.scheduler.tick import run_tick
from shared.store.campaigns import Campaign, CampaignSettings, CampaignStatus
from shared.store.messages import MessageStatus, rank_of, status_of

pytestmark = pytest.mark.integration

CAMPAIGN = "spring"
LAUNCH = "launch1"
SETTLE = timedelta(seconds=600)
S = MessageStatus
C = CampaignStatus


def core() -> CoreSettings:
    return CoreSettings(GCP_PROJECT="ese-test", SETTLE_SECONDS=str(SETTLE.seconds))


def make_campaign(
    db: Any,
    status: CampaignStatus = C.DRAFT,
    campaign_id: str = CAMPAIGN,
    **fields: Any,
) -> None:
    settings = {
        k: fields.pop(k) for k in list(fields) if k in CampaignSettings.model_fields
    }
    doc = CampaignSettings(
        **{
            "name": "Spring sale",
            "template_id": "greeting",
            "segment_id": "everyone",
            **settings,
        }
    ).model_dump(by_alias=True)
    db.collection("campaigns").document(campaign_id).set(
        {**doc, "status": status.value, **fields}
    )


def make_running(db: Any, now: datetime, batches: int = 1, done: int = 1) -> None:
    """A running campaign whose launch planned `batches`, `done` of them fanned out."""
    make_campaign(
        db,
        C.RUNNING,
        launch_id=LAUNCH,
        launched_at=now - timedelta(hours=1),
        batches_planned=batches,
    )
    reservations = (
        db.collection("campaigns")
        .document(CAMPAIGN)
        .collection("pacing")
        .document(LAUNCH)
        .collection("batches")
    )
    for n in range(batches):
        reservations.document(str(n)).set(
            {"begin": now, "segments": 1, "done": n < done}
        )


def make_message(
    db: Any, now: datetime, n: int, status: MessageStatus, **fields: Any
) -> str:
    phone = f"+1212555{n:04d}"
    message_id = message_id_for(CAMPAIGN, phone)
    db.collection("messages").document(message_id).set(
        {
            "campaign_id": CAMPAIGN,
            "phone": phone,
            "body": "Hi",
            "encoding": "GSM7",
            "segments": 1,
            "status_rank": rank_of(status),
            "generation": 0,
            "attempts": 0,
            "send_at": now - timedelta(hours=1),
            "audit": [],
            **fields,
        }
    )
    return message_id


def campaign_doc(db: Any, campaign_id: str = CAMPAIGN) -> dict[str, Any]:
    return db.collection("campaigns").document(campaign_id).get().to_dict()


def launches(publisher: Any) -> list[CampaignLaunch]:
    return [
        p for topic, p, _ in publisher.published if topic == Topic.CAMPAIGN_LAUNCHES
    ]


def tick(db: Any, publisher: Any, task_queue: Any, now: datetime) -> Any:
    return run_tick(db, publisher, task_queue, core(), now)


# --- launching -----------------------------------------------------------------


def test_launch_now_runs_and_publishes_the_launch(
    db: Any, clock: Any, publisher: Any
) -> None:
    make_campaign(db)
    campaign = launch_campaign(db, publisher, CAMPAIGN, clock.now)
    assert campaign.status is C.RUNNING
    doc = campaign_doc(db)
    assert (doc["status"], doc["launched_at"]) == ("RUNNING", clock.now)
    assert doc["launch_id"] == campaign.launch_id
    assert launches(publisher) == [
        CampaignLaunch(campaign_id=CAMPAIGN, launch_id=doc["launch_id"])
    ]


def test_launch_with_a_future_schedule_waits(
    db: Any, clock: Any, publisher: Any
) -> None:
    make_campaign(db)
    later = clock.now + timedelta(hours=2)
    campaign = launch_campaign(db, publisher, CAMPAIGN, clock.now, schedule_at=later)
    assert campaign.status is C.SCHEDULED
    doc = campaign_doc(db)
    assert (doc["status"], doc["schedule_at"]) == ("SCHEDULED", later)
    assert doc.get("launch_id") is None
    assert publisher.published == []


def test_a_schedule_set_on_the_campaign_is_honoured(
    db: Any, clock: Any, publisher: Any
) -> None:
    make_campaign(db, schedule_at=clock.now + timedelta(minutes=5))
    assert launch_campaign(db, publisher, CAMPAIGN, clock.now).status is C.SCHEDULED
    assert publisher.published == []


def test_a_schedule_in_the_past_launches_now(
    db: Any, clock: Any, publisher: Any
) -> None:
    make_campaign(db)
    earlier = clock.now - timedelta(minutes=1)
    campaign = launch_campaign(db, publisher, CAMPAIGN, clock.now, schedule_at=earlier)
    assert campaign.status is C.RUNNING
    assert len(launches(publisher)) == 1


def test_a_triggered_campaign_activates_without_a_launch(
    db: Any, clock: Any, publisher: Any
) -> None:
    make_campaign(db, trigger={"event": "order_shipped"}, segment_id=None)
    assert launch_campaign(db, publisher, CAMPAIGN, clock.now).status is C.ACTIVE
    assert publisher.published == []


def test_launching_twice_is_illegal_and_publishes_once(
    db: Any, clock: Any, publisher: Any
) -> None:
    make_campaign(db)
    launch_campaign(db, publisher, CAMPAIGN, clock.now)
    with pytest.raises(IllegalTransition) as raised:
        launch_campaign(db, publisher, CAMPAIGN, clock.now)
    assert raised.value.current is C.RUNNING
    assert len(launches(publisher)) == 1


def test_an_illegal_transition_changes_nothing(db: Any, clock: Any) -> None:
    make_campaign(db)
    before = db.collection("campaigns").document(CAMPAIGN).get()
    with pytest.raises(IllegalTransition) as raised:
        transition(db, CAMPAIGN, CampaignAction.PAUSE, clock.now)
    assert raised.value.current is C.DRAFT
    after = db.collection("campaigns").document(CAMPAIGN).get()
    assert after.update_time == before.update_time


@pytest.mark.parametrize("paused_from", [C.SCHEDULED, C.RUNNING])
def test_pause_and_resume_return_to_the_status_paused_from(
    db: Any, clock: Any, paused_from: CampaignStatus
) -> None:
    make_campaign(db, paused_from, launch_id=LAUNCH)
    paused = transition(db, CAMPAIGN, CampaignAction.PAUSE, clock.now)
    assert (paused.status, paused.paused_from) == (C.PAUSED, paused_from)
    resumed = transition(db, CAMPAIGN, CampaignAction.RESUME, clock.now)
    assert resumed.status is paused_from
    assert campaign_doc(db)["status"] == paused_from.value


# --- the tick: launches --------------------------------------------------------


def test_the_tick_launches_a_due_campaign_once(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_campaign(db)
    launch_campaign(
        db, publisher, CAMPAIGN, clock.now, schedule_at=clock.now + timedelta(minutes=5)
    )
    make_campaign(
        db, C.SCHEDULED, campaign_id="later", schedule_at=clock.now + timedelta(hours=1)
    )
    due = clock.now + timedelta(minutes=5)

    first = tick(db, publisher, task_queue, due)
    second = tick(db, publisher, task_queue, due + timedelta(minutes=1))

    assert (first.launched, second.launched) == ([CAMPAIGN], [])
    doc = campaign_doc(db)
    assert (doc["status"], doc["launched_at"]) == ("RUNNING", due)
    assert launches(publisher) == [
        CampaignLaunch(campaign_id=CAMPAIGN, launch_id=doc["launch_id"])
    ]
    assert campaign_doc(db, "later")["status"] == "SCHEDULED"


def test_a_launch_lost_before_evaluation_is_published_again(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_campaign(db, C.RUNNING, launch_id=LAUNCH, launched_at=clock.now)

    soon = tick(db, publisher, task_queue, clock.now + timedelta(minutes=1))
    late = tick(db, publisher, task_queue, clock.now + timedelta(minutes=3))

    assert (soon.relaunched, late.relaunched) == ([], [CAMPAIGN])
    assert launches(publisher) == [
        CampaignLaunch(campaign_id=CAMPAIGN, launch_id=LAUNCH)
    ]
    assert campaign_doc(db)["status"] == "RUNNING"


# --- the tick: completion ------------------------------------------------------


def test_a_campaign_whose_messages_are_all_final_completes(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_running(db, clock.now, batches=2, done=2)
    settled = clock.now - SETTLE - timedelta(seconds=1)
    make_message(db, clock.now, 1, S.DELIVERED, sent_at=settled)
    make_message(db, clock.now, 2, S.DELIVERED, sent_at=settled)
    make_message(db, clock.now, 3, S.SKIPPED, skip_reason="no_consent")
    make_message(db, clock.now, 4, S.FAILED, error_code="21211")
    make_message(db, clock.now, 5, S.SENT, sent_at=settled)

    report = tick(db, publisher, task_queue, clock.now)

    assert report.completed == [CAMPAIGN]
    doc = campaign_doc(db)
    assert (doc["status"], doc["completed_at"]) == ("COMPLETED", clock.now)
    assert doc["final_counts"] == {
        "QUEUED": 0,
        "SENDING": 0,
        "SENT": 1,
        "UNDELIVERED": 0,
        "FAILED": 1,
        "DELIVERED": 2,
        "READ": 0,
        "SKIPPED": 1,
    }
    # A completed campaign is left alone by the next tick.
    assert tick(db, publisher, task_queue, clock.now).completed == []


@pytest.mark.parametrize(
    ("status", "field", "offset"),
    [
        (S.QUEUED, None, None),
        # Claimed a moment ago; its lease is still running.
        (S.SENDING, "lease_until", timedelta(minutes=1)),
        # Sent 30 s ago: a delivery report may still come.
        (S.SENT, "sent_at", -timedelta(seconds=30)),
        # Ambiguous to the sender (no sent_at), reported sent by Twilio 30 s ago.
        (S.SENT, "sent_reported_at", -timedelta(seconds=30)),
    ],
    ids=["queued", "sending", "sent-unsettled", "sent-by-callback-unsettled"],
)
def test_a_campaign_with_an_unfinished_message_keeps_running(
    db: Any,
    clock: Any,
    publisher: Any,
    task_queue: Any,
    status: MessageStatus,
    field: str | None,
    offset: timedelta | None,
) -> None:
    make_running(db, clock.now)
    make_message(db, clock.now, 1, S.DELIVERED, sent_at=clock.now - timedelta(hours=1))
    extra = {field: clock.now + offset} if field and offset is not None else {}
    make_message(db, clock.now, 2, status, **extra)

    report = tick(db, publisher, task_queue, clock.now)

    assert report.completed == []
    assert campaign_doc(db)["status"] == "RUNNING"


def test_a_campaign_with_batches_still_to_fan_out_keeps_running(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_running(db, clock.now, batches=3, done=2)
    make_message(db, clock.now, 1, S.DELIVERED, sent_at=clock.now - timedelta(hours=1))
    assert tick(db, publisher, task_queue, clock.now).completed == []
    assert campaign_doc(db)["status"] == "RUNNING"


def test_the_tick_resumes_messages_held_after_a_resume(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_running(db, clock.now)
    held = make_message(db, clock.now, 1, S.QUEUED, held=True)

    report = tick(db, publisher, task_queue, clock.now)

    assert report.completed == []
    assert [t.body["message_id"] for t in task_queue.tasks] == [held]
    assert db.collection("messages").document(held).get().to_dict()["held"] is False


def test_the_tick_resumes_held_messages_of_an_active_triggered_campaign(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_campaign(db, C.ACTIVE, trigger={"event": "order_shipped"}, segment_id=None)
    held = make_message(db, clock.now, 1, S.QUEUED, held=True)

    tick(db, publisher, task_queue, clock.now)

    assert [t.body["message_id"] for t in task_queue.tasks] == [held]


# --- the tick: stuck sends and cancellations -----------------------------------


def test_an_expired_sending_lease_is_swept_into_a_reconcile_task(
    db: Any, clock: Any, task_queue: Any
) -> None:
    make_running(db, clock.now)
    stuck = make_message(
        db,
        clock.now,
        1,
        S.SENDING,
        attempts=1,
        generation=2,
        lease_until=clock.now - timedelta(seconds=1),
    )
    make_message(
        db,
        clock.now,
        2,
        S.SENDING,
        attempts=1,
        lease_until=clock.now + timedelta(minutes=1),
    )
    make_message(db, clock.now, 3, S.QUEUED)

    assert sweep_stuck_sends(db, task_queue, clock.now) == 1

    [task] = task_queue.tasks
    assert task.body == {"message_id": stuck, "reconcile": True}
    assert task.name == task_name_for(stuck, 2) + "-r1"
    assert task.schedule_time == clock.now
    # The same stuck message swept on the next tick is not enqueued twice.
    sweep_stuck_sends(db, task_queue, clock.now + timedelta(minutes=1))
    assert len(task_queue.tasks) == 1


def test_the_tick_sweeps_stuck_sends(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_running(db, clock.now)
    make_message(
        db, clock.now, 1, S.SENDING, lease_until=clock.now - timedelta(minutes=1)
    )
    assert tick(db, publisher, task_queue, clock.now).swept == 1


def test_the_tick_finishes_a_cancellation_the_request_could_not(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_campaign(db, C.CANCELLED, launch_id=LAUNCH, cancel_swept=False)
    queued = make_message(db, clock.now, 1, S.QUEUED)
    sent = make_message(db, clock.now, 2, S.SENT, sent_at=clock.now)

    tick(db, publisher, task_queue, clock.now)

    doc = db.collection("messages").document(queued).get().to_dict()
    assert (status_of(doc["status_rank"]), doc["skip_reason"]) == (
        S.SKIPPED,
        "campaign_cancelled",
    )
    sent_doc = db.collection("messages").document(sent).get().to_dict()
    assert status_of(sent_doc["status_rank"]) is S.SENT
    assert campaign_doc(db)["cancel_swept"] is True


def store_event(db: Any, event_id: str, received_at: datetime, status: str) -> None:
    from shared.events.ingest import event_doc, validate_event

    event = validate_event(
        {"event_id": event_id, "type": "order_shipped", "phone": "+14155550100"},
        received_at,
        "US",
    )
    doc = {**event_doc(event, received_at, timedelta(days=30)), "status": status}
    db.collection("events").document(event_id).set(doc)


def republished(publisher: Any) -> list[str]:
    found = [p for t, p, _ in publisher.published if t == Topic.EVENTS.value]
    publisher.published.clear()
    return [event.event_id for event in found]


def test_the_tick_republishes_events_stored_but_never_routed(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    stored = partial(store_event, db)
    stored("stranded", clock.now - timedelta(minutes=10), "received")
    stored("fresh", clock.now - timedelta(seconds=5), "received")
    stored("routed", clock.now - timedelta(minutes=10), "matched")

    report = tick(db, publisher, task_queue, clock.now)

    events = [p for t, p, _ in publisher.published if t == Topic.EVENTS.value]
    assert [e.event_id for e in events] == ["stranded"]
    assert report.republished_events == 1


def test_an_event_waiting_in_a_backlog_is_republished_once_per_interval(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    """Regression: every tick used to publish again each event older than two
    minutes and still unrouted, so a router backlog longer than that got one
    more copy of its oldest events per tick (up to a dozen per event in the fault
    suite's event burst), which lengthened the backlog further."""
    from shared.events.ingest import REPUBLISH_AFTER

    store_event(db, "queued", clock.now - timedelta(minutes=3), "received")

    assert republished_after_tick(db, publisher, task_queue, clock.now) == ["queued"]
    for seconds in (2, 30, 60, 119):
        later = clock.now + timedelta(seconds=seconds)
        assert republished_after_tick(db, publisher, task_queue, later) == []
    due = clock.now + REPUBLISH_AFTER
    assert republished_after_tick(db, publisher, task_queue, due) == ["queued"]


def republished_after_tick(
    db: Any, publisher: Any, task_queue: Any, now: datetime
) -> list[str]:
    tick(db, publisher, task_queue, now)
    return republished(publisher)


# --- the tick: stranded queued messages ------------------------------------------

STRANDED_AFTER = timedelta(
    seconds=CoreSettings.model_fields["stranded_queued_seconds"].default
)
PAST_THE_BUDGET = STRANDED_AFTER + timedelta(minutes=1)


def message_doc(db: Any, message_id: str) -> dict[str, Any]:
    return dict(db.collection("messages").document(message_id).get().to_dict())


def test_a_message_whose_send_task_ran_out_is_requeued_then_failed(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    """Its task exhausted its attempts: nothing else would ever move it."""
    make_running(db, clock.now)
    make_message(db, clock.now, 1, S.DELIVERED, sent_at=clock.now - timedelta(hours=5))
    stranded = make_message(
        db,
        clock.now,
        2,
        S.QUEUED,
        held=False,
        generation=1,
        send_at=clock.now - PAST_THE_BUDGET,
    )
    # Past its send time, but not past the queue's retry budget: left alone.
    waiting = make_message(db, clock.now, 3, S.QUEUED, held=False)

    report = tick(db, publisher, task_queue, clock.now)

    assert (report.stranded_requeued, report.stranded_failed) == (1, 0)
    [task] = task_queue.tasks
    assert task.name == task_name_for(stranded, 2)
    assert task.body["message_id"] == stranded
    assert task.schedule_time == clock.now
    doc = message_doc(db, stranded)
    assert (doc["status_rank"], doc["generation"], doc["requeues"]) == (
        rank_of(S.QUEUED),
        2,
        1,
    )
    assert doc["send_at"] == clock.now
    assert task.body["version"]  # the sender may claim from the task alone

    # The requeued task ran out too, twice: the message fails, the campaign ends.
    db.collection("messages").document(waiting).update(
        {"status_rank": rank_of(S.SKIPPED)}
    )
    later = clock.now + PAST_THE_BUDGET
    assert tick(db, publisher, task_queue, later).stranded_requeued == 1
    assert task_queue.tasks[-1].name == task_name_for(stranded, 3)
    last = later + PAST_THE_BUDGET
    assert tick(db, publisher, task_queue, last).stranded_failed == 1
    doc = message_doc(db, stranded)
    assert status_of(doc["status_rank"]) is S.FAILED
    assert doc["error_code"] == "send_attempts_exhausted"
    assert len(task_queue.tasks) == 2
    assert tick(db, publisher, task_queue, last).completed == [CAMPAIGN]
    assert campaign_doc(db)["final_counts"]["FAILED"] == 1


def test_held_messages_are_not_stranded(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    """A paused campaign's held messages wait for a resume, however long."""
    make_campaign(db, C.PAUSED, launch_id=LAUNCH, batches_planned=1)
    held = make_message(
        db, clock.now, 1, S.QUEUED, held=True, send_at=clock.now - PAST_THE_BUDGET
    )
    report = tick(db, publisher, task_queue, clock.now)
    assert (report.stranded_requeued, report.stranded_failed) == (0, 0)
    assert task_queue.tasks == []
    assert message_doc(db, held)["status_rank"] == rank_of(S.QUEUED)


class FailingTaskQueue:
    def enqueue(self, tasks: Any) -> Any:
        raise TaskQueueError("the queue is unreachable")


def test_messages_a_resume_could_not_enqueue_are_requeued(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    make_running(db, clock.now)
    held = make_message(db, clock.now, 1, S.QUEUED, held=True)
    campaign = Campaign.model_validate({**campaign_doc(db), "id": CAMPAIGN})
    with pytest.raises(TaskQueueError):
        resume_held_messages(db, FailingTaskQueue(), campaign, clock.now)
    assert message_doc(db, held)["held"] is False  # un-held, and no task

    report = tick(db, publisher, task_queue, clock.now + PAST_THE_BUDGET)

    assert report.stranded_requeued == 1
    assert [t.body["message_id"] for t in task_queue.tasks] == [held]


# --- the tick as named sweeps --------------------------------------------------


def test_a_failing_sweep_does_not_stop_the_sweeps_after_it(
    db: Any, clock: Any, publisher: Any
) -> None:
    """The queue is down, so the stuck-send sweep raises; the cancellation and
    event sweeps after it still run, and the report names the failed one."""
    make_message(
        db, clock.now, 1, S.SENDING, lease_until=clock.now - timedelta(minutes=1)
    )
    make_campaign(db, C.CANCELLED, launch_id=LAUNCH, cancel_swept=False)
    store_event(db, "stranded", clock.now - timedelta(minutes=10), "received")

    report = run_tick(db, publisher, FailingTaskQueue(), core(), clock.now)

    assert report.sweeps["stuck_sends"] == "failed"
    assert report.failed_sweeps == ["stuck_sends"]
    assert report.sweeps["finish_cancellations"] == "ok"
    assert campaign_doc(db)["cancel_swept"] is True
    assert report.republished_events == 1
    assert republished(publisher) == ["stranded"]


def test_the_tick_reports_every_sweep_by_name_in_order(
    db: Any, clock: Any, publisher: Any, task_queue: Any
) -> None:
    report = tick(db, publisher, task_queue, clock.now)

    assert list(report.sweeps.items()) == [
        ("launch_due", "ok"),
        ("check_running", "ok"),
        ("resume_held_active", "ok"),
        ("stuck_sends", "ok"),
        ("stranded_queued", "ok"),
        ("finish_cancellations", "ok"),
        ("republish_events", "ok"),
    ]
    assert report.failed_sweeps == []
