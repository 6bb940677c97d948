"""Fan-out and launch evaluation on the Firestore emulator.

A recipient batch becomes rendered messages with deterministic ids, paced send
times and one deterministically named send task each; a redelivered batch adds
nothing. Batches reserve non-overlapping sending intervals on the launch's
pacing cursor.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.campaigns.dry_run import dry_run
from shared.campaigns.evaluation import BATCH_SIZE, evaluate_launch
from shared.campaigns.fanout import FANOUT_LEAD, fan_out_batch, reserve_send_window
from shared.campaigns.scheduler import sweep_stranded_queued
from shared.delivery.messages import encode_version, message_id_for
from shared.delivery.pacing import LATENCY_ALLOWANCE
from shared.payloads import BatchRecipient, CampaignLaunch, RecipientBatch
from shared.platform.config import CoreSettings
from shared.platform.pubsub import Topic
from shared.platform.tasks import task_name_for
from shared.store.campaigns import Campaign, CampaignSettings, CampaignStatus
from shared.store.messages import MessageStatus, rank_of
from shared.store.templates import get_template
from shared.store.users import ConsentState, new_user, user_doc
from tests.conftest import RecordingTaskQueue

pytestmark = pytest.mark.integration

CAMPAIGN = "spring"
LAUNCH = "launch1"
TEMPLATE = "greeting"
PHONES = [f"+1212555{n:04d}" for n in range(100, 104)]
QUEUED = rank_of(MessageStatus.QUEUED)
ONE_SECOND = timedelta(seconds=1)
# How much the first slot of a launch is set after the fan-out's `now`.
LEAD = FANOUT_LEAD
# Plans keep to the rate less the latency allowance (shared/delivery/pacing.py).
STRETCH = 1 + LATENCY_ALLOWANCE


# --- factories -----------------------------------------------------------------


def core(footer: bool = False) -> CoreSettings:
    return CoreSettings(GCP_PROJECT="ese-test", ADD_OPT_OUT_FOOTER=footer)


def make_user(
    db: Any,
    phone: str,
    now: datetime,
    state: ConsentState = ConsentState.OPT_IN,
    **attributes: Any,
) -> None:
    user = new_user(phone, attributes, None, state, "api", now)
    db.collection("users").document(phone).set(user_doc(user))


def make_template(
    db: Any, body: str = "Hi {{ name }}", template_id: str = TEMPLATE
) -> None:
    db.collection("templates").document(template_id).set(
        {"name": template_id, "channel": "sms", "body": body, "variables": ["name"]}
    )


def make_campaign(
    db: Any,
    now: datetime,
    status: CampaignStatus = CampaignStatus.RUNNING,
    campaign_id: str = CAMPAIGN,
    **settings: Any,
) -> Campaign:
    fields = CampaignSettings(
        name="Spring sale",
        template_id=TEMPLATE,
        segment_id="everyone",
        **{"rate_limit_mps": 2.0, **settings},
    ).model_dump(by_alias=True)
    doc = {**fields, "status": status.value, "launch_id": LAUNCH, "launched_at": now}
    db.collection("campaigns").document(campaign_id).set(doc)
    return Campaign.model_validate({**doc, "id": campaign_id})


def make_audience(db: Any, now: datetime, names: list[str] | None = None) -> None:
    for phone, name in zip(PHONES, names or ["Ann", "Bob", "Cid", "Dee"], strict=True):
        make_user(db, phone, now, name=name)


def batch(
    phones: list[str] = PHONES,
    batch_no: int = 0,
    launch_id: str = LAUNCH,
    recipients: list[BatchRecipient] | None = None,
) -> RecipientBatch:
    return RecipientBatch(
        campaign_id=CAMPAIGN,
        launch_id=launch_id,
        batch_no=batch_no,
        phones=phones,
        recipients=recipients,
    )


def messages_by_id(db: Any) -> dict[str, Any]:
    return {s.id: s for s in db.collection("messages").stream()}


def most_in_one_second(times: list[datetime]) -> int:
    ordered = sorted(times)
    return max(
        (bisect_left(ordered, t + ONE_SECOND) - i for i, t in enumerate(ordered)),
        default=0,
    )


@pytest.fixture
def ready(db: Any, clock: Any) -> Any:
    """A running campaign, its template and four opted-in users with names."""
    make_template(db)
    make_audience(db, clock.now)
    make_campaign(db, clock.now)
    return db


# --- fan-out -------------------------------------------------------------------


def test_a_batch_becomes_messages_with_deterministic_ids_and_paced_times(
    ready: Any, clock: Any, task_queue: Any
) -> None:
    result = fan_out_batch(ready, task_queue, batch(), core(), clock.now)
    assert (result.created, result.existing, result.enqueued, result.skipped) == (
        4,
        0,
        4,
        0,
    )
    docs = messages_by_id(ready)
    assert set(docs) == {message_id_for(CAMPAIGN, p) for p in PHONES}
    names = ["Ann", "Bob", "Cid", "Dee"]
    for i, (phone, name) in enumerate(zip(PHONES, names, strict=True)):
        doc = docs[message_id_for(CAMPAIGN, phone)].to_dict()
        assert doc["phone"] == phone
        assert doc["body"] == f"Hi {name}"
        assert doc["status_rank"] == QUEUED
        assert doc["generation"] == 0
        assert (doc["encoding"], doc["segments"]) == ("GSM7", 1)
        # Back to back at 2 segments per second, in the batch's order.
        assert doc["send_at"] == clock.now + LEAD + timedelta(seconds=i * STRETCH / 2)


def test_each_sendable_message_gets_one_named_task_carrying_it_and_its_version(
    ready: Any, clock: Any, task_queue: Any
) -> None:
    fan_out_batch(ready, task_queue, batch(), core(), clock.now)
    docs = messages_by_id(ready)
    assert len(task_queue.tasks) == len(PHONES)
    for task in task_queue.tasks:
        snapshot = docs[task.body["message_id"]]
        doc = snapshot.to_dict()
        assert task.name == task_name_for(snapshot.id, 0)
        assert task.schedule_time == doc["send_at"]
        assert task.body["version"] == encode_version(snapshot.update_time)
        carried = task.body["message"]
        assert (carried["phone"], carried["body"], carried["campaign_id"]) == (
            doc["phone"],
            doc["body"],
            CAMPAIGN,
        )
        assert carried["generation"] == 0
        assert datetime.fromisoformat(carried["send_at"]) == doc["send_at"]
    assert len({t.name for t in task_queue.tasks}) == len(PHONES)


def test_a_redelivered_batch_creates_nothing_and_enqueues_no_new_task(
    ready: Any, clock: Any, task_queue: Any
) -> None:
    fan_out_batch(ready, task_queue, batch(), core(), clock.now)
    before = {i: (s.update_time, s.to_dict()) for i, s in messages_by_id(ready).items()}
    names = set(task_queue.names)
    clock.now += timedelta(minutes=5)

    again = fan_out_batch(ready, task_queue, batch(), core(), clock.now)

    assert (again.created, again.existing, again.enqueued) == (0, len(PHONES), 0)
    assert task_queue.names == names
    after = {i: (s.update_time, s.to_dict()) for i, s in messages_by_id(ready).items()}
    assert after == before


def test_a_redelivery_after_a_lost_enqueue_repeats_the_same_task_names(
    ready: Any, clock: Any, task_queue: Any
) -> None:
    fan_out_batch(ready, task_queue, batch(), core(), clock.now)
    # One message was sent meanwhile; it must not be enqueued again.
    sent_id = message_id_for(CAMPAIGN, PHONES[0])
    ready.collection("messages").document(sent_id).update(
        {"status_rank": rank_of(MessageStatus.SENT)}
    )
    fresh = type(task_queue)()  # as if the first enqueue never happened

    fan_out_batch(ready, fresh, batch(), core(), clock.now)

    first = {t.body["message_id"]: t.name for t in task_queue.tasks}
    assert {t.body["message_id"]: t.name for t in fresh.tasks} == {
        i: n for i, n in first.items() if i != sent_id
    }


def test_a_missing_variable_skips_the_message_without_a_task_or_a_slot(
    db: Any, clock: Any, task_queue: Any
) -> None:
    make_template(db)
    make_campaign(db, clock.now)
    make_user(db, PHONES[0], clock.now, name="Ann")
    make_user(db, PHONES[1], clock.now)  # no name
    make_user(db, PHONES[2], clock.now, name="Cid")

    result = fan_out_batch(db, task_queue, batch(PHONES[:3]), core(), clock.now)

    assert (result.created, result.enqueued, result.skipped) == (3, 2, 1)
    skipped = db.collection("messages").document(message_id_for(CAMPAIGN, PHONES[1]))
    doc = skipped.get().to_dict()
    assert doc["status_rank"] == rank_of(MessageStatus.SKIPPED)
    assert doc["skip_reason"] == "missing_variable"
    assert doc["audit"][0]["step"] == "render"
    assert "name" in doc["audit"][0]["reason"]
    assert skipped.id not in {t.body["message_id"] for t in task_queue.tasks}
    # The skipped recipient uses no sending time: Cid follows Ann directly.
    third = db.collection("messages").document(message_id_for(CAMPAIGN, PHONES[2]))
    slot = timedelta(seconds=STRETCH / 2)
    assert third.get().to_dict()["send_at"] == clock.now + LEAD + slot


def test_a_default_filter_covers_a_missing_variable(
    db: Any, clock: Any, task_queue: Any
) -> None:
    make_template(db, 'Hi {{ name | default: "there" }}')
    make_campaign(db, clock.now)
    make_user(db, PHONES[0], clock.now)
    fan_out_batch(db, task_queue, batch(PHONES[:1]), core(), clock.now)
    doc = (
        db.collection("messages")
        .document(message_id_for(CAMPAIGN, PHONES[0]))
        .get()
        .to_dict()
    )
    assert (doc["body"], doc["status_rank"]) == ("Hi there", QUEUED)
    assert len(task_queue.tasks) == 1


@pytest.mark.parametrize(
    ("status", "launch_id", "reason"),
    [
        (CampaignStatus.CANCELLED, LAUNCH, "campaign_cancelled"),
        (CampaignStatus.RUNNING, "an-older-launch", "stale_or_unknown_campaign"),
    ],
)
def test_a_cancelled_or_stale_launch_fans_out_nothing(
    db: Any,
    clock: Any,
    task_queue: Any,
    status: CampaignStatus,
    launch_id: str,
    reason: str,
) -> None:
    make_template(db)
    make_audience(db, clock.now)
    make_campaign(db, clock.now, status=status)
    result = fan_out_batch(
        db, task_queue, batch(launch_id=launch_id), core(), clock.now
    )
    assert result.reason == reason
    assert result.created == 0
    assert messages_by_id(db) == {}
    assert task_queue.tasks == []


def test_the_recipients_a_batch_carries_are_used_as_they_are(
    db: Any, clock: Any, task_queue: Any
) -> None:
    # No user documents: fan-out must not need to read them.
    make_template(db)
    make_campaign(db, clock.now)
    recipients = [BatchRecipient(phone=PHONES[0], attributes={"name": "Eve"})]
    fan_out_batch(
        db, task_queue, batch(PHONES[:1], recipients=recipients), core(), clock.now
    )
    [task] = task_queue.tasks
    assert task.body["message"]["body"] == "Hi Eve"


def test_the_opt_out_footer_is_added_and_counted_in_the_segments(
    ready: Any, clock: Any, task_queue: Any
) -> None:
    fan_out_batch(ready, task_queue, batch(PHONES[:1]), core(footer=True), clock.now)
    doc = messages_by_id(ready)[message_id_for(CAMPAIGN, PHONES[0])].to_dict()
    assert doc["body"] == "Hi Ann\nReply STOP to opt out"
    assert doc["segments"] == 1


def test_long_messages_take_as_many_slots_as_segments(
    db: Any, clock: Any, task_queue: Any
) -> None:
    # 200 GSM-7 characters travel as two segments.
    make_template(db, "{{ name }}" + "x" * 197)
    make_campaign(db, clock.now)
    make_audience(db, clock.now)
    fan_out_batch(db, task_queue, batch(PHONES[:3]), core(), clock.now)
    times = [
        messages_by_id(db)[message_id_for(CAMPAIGN, p)].to_dict()["send_at"]
        for p in PHONES[:3]
    ]
    offsets = [(t - clock.now - LEAD).total_seconds() for t in times]
    assert offsets == pytest.approx([0.0, STRETCH, 2 * STRETCH])


def test_two_batches_share_the_rate_without_overlapping(
    db: Any, clock: Any, task_queue: Any
) -> None:
    make_template(db)
    make_campaign(db, clock.now, rate_limit_mps=4.0)
    phones = [f"+1212555{n:04d}" for n in range(200, 214)]
    for phone in phones:
        make_user(db, phone, clock.now, name="Ann")
    fan_out_batch(db, task_queue, batch(phones[:7], batch_no=0), core(), clock.now)
    fan_out_batch(db, task_queue, batch(phones[7:], batch_no=1), core(), clock.now)
    docs = messages_by_id(db)
    first = [docs[message_id_for(CAMPAIGN, p)].to_dict()["send_at"] for p in phones[:7]]
    second = [
        docs[message_id_for(CAMPAIGN, p)].to_dict()["send_at"] for p in phones[7:]
    ]
    assert min(second) == max(first) + timedelta(seconds=STRETCH / 4)
    assert most_in_one_second(first + second) == 4


def test_a_fanned_out_batch_is_marked_done_for_the_scheduler(
    ready: Any, clock: Any, task_queue: Any
) -> None:
    fan_out_batch(ready, task_queue, batch(batch_no=4), core(), clock.now)
    reservation = (
        ready.collection("campaigns")
        .document(CAMPAIGN)
        .collection("pacing")
        .document(LAUNCH)
        .collection("batches")
        .document("4")
        .get()
        .to_dict()
    )
    assert reservation["done"] is True
    assert reservation["segments"] == len(PHONES)


# --- pacing reservations -------------------------------------------------------


def test_reservations_of_two_batches_never_overlap(db: Any, clock: Any) -> None:
    campaign = make_campaign(db, clock.now, rate_limit_mps=5.0)
    first = reserve_send_window(db, campaign, batch(batch_no=0), 10, clock.now)
    second = reserve_send_window(db, campaign, batch(batch_no=1), 5, clock.now)
    assert first == clock.now + LEAD
    assert second == first + timedelta(seconds=2 * STRETCH)  # 10 segments at 5/s


def test_a_redelivered_batch_reuses_its_reservation(db: Any, clock: Any) -> None:
    campaign = make_campaign(db, clock.now, rate_limit_mps=5.0)
    first = reserve_send_window(db, campaign, batch(batch_no=0), 10, clock.now)
    later = clock.now + timedelta(minutes=1)
    again = reserve_send_window(db, campaign, batch(batch_no=0), 10, later)
    assert again == first
    # ...and it did not move the cursor: the next batch follows the first one.
    nxt = reserve_send_window(db, campaign, batch(batch_no=1), 5, clock.now)
    assert nxt == first + timedelta(seconds=2 * STRETCH)


def test_a_reservation_never_starts_in_the_past(db: Any, clock: Any) -> None:
    campaign = make_campaign(db, clock.now, rate_limit_mps=5.0)
    reserve_send_window(db, campaign, batch(batch_no=0), 5, clock.now)
    later = clock.now + timedelta(minutes=10)
    assert (
        reserve_send_window(db, campaign, batch(batch_no=1), 5, later) == later + LEAD
    )


def test_parallel_reservations_never_overlap(db: Any, clock: Any) -> None:
    campaign = make_campaign(db, clock.now, rate_limit_mps=10.0)
    sizes = {n: 5 + 3 * n for n in range(3)}
    begins: dict[int, datetime] = {}
    errors: list[BaseException] = []

    def reserve(batch_no: int) -> None:
        # A transaction that loses the contention raises; Pub/Sub would then
        # redeliver the batch, which is what the retries stand for.
        for _ in range(10):
            try:
                begins[batch_no] = reserve_send_window(
                    db, campaign, batch(batch_no=batch_no), sizes[batch_no], clock.now
                )
                return
            except ValueError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=reserve, args=(n,)) for n in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(begins) == set(sizes), errors
    intervals = sorted(
        (begins[n], begins[n] + timedelta(seconds=sizes[n] * STRETCH / 10))
        for n in sizes
    )
    for (_, end), (begin, _) in zip(intervals, intervals[1:], strict=False):
        assert begin >= end
    # Back to back from the first slot: no gap either.
    assert intervals[0][0] == clock.now + LEAD
    total = timedelta(seconds=sum(sizes.values()) * STRETCH / 10)
    assert intervals[-1][1] == clock.now + LEAD + total


# --- launch evaluation ---------------------------------------------------------


def make_many_users(db: Any, now: datetime, count: int) -> list[str]:
    phones = [f"+1415555{n:04d}" for n in range(count)]
    writer = db.bulk_writer()
    for phone in phones:
        user = new_user(
            phone, {"city": "Colombo"}, None, ConsentState.OPT_IN, "api", now
        )
        writer.set(db.collection("users").document(phone), user_doc(user))
    writer.close()
    return phones


def test_a_launch_is_published_in_batches_of_at_most_500_once(
    db: Any, clock: Any, publisher: Any
) -> None:
    phones = make_many_users(db, clock.now, 1_100)
    db.collection("segments").document("everyone").set(
        {
            "name": "Colombo",
            "definition": {
                "attribute": "city",
                "operator": "equals",
                "value": "Colombo",
            },
        }
    )
    make_template(db)
    make_campaign(db, clock.now)
    launch = CampaignLaunch(campaign_id=CAMPAIGN, launch_id=LAUNCH)

    result = evaluate_launch(db, publisher, launch, clock.now)

    assert (result.evaluated, result.batches, result.recipients) == (True, 3, 1_100)
    batches = [p for topic, p, _ in publisher.published]
    assert {t for t, _, _ in publisher.published} == {str(Topic.RECIPIENT_BATCHES)}
    assert all(len(b.phones) <= BATCH_SIZE for b in batches)
    assert sorted(b.batch_no for b in batches) == [0, 1, 2]
    assert all((b.campaign_id, b.launch_id) == (CAMPAIGN, LAUNCH) for b in batches)
    published = [p for b in batches for p in b.phones]
    assert sorted(published) == sorted(phones)
    assert all(b.recipients and len(b.recipients) == len(b.phones) for b in batches)
    doc = db.collection("campaigns").document(CAMPAIGN).get().to_dict()
    assert (doc["batches_planned"], doc["recipients_planned"]) == (3, 1_100)

    again = evaluate_launch(db, publisher, launch, clock.now)

    assert (again.evaluated, again.reason) == (False, "already_evaluated")
    assert len(publisher.published) == 3


def test_a_smaller_batch_size_splits_the_launch_into_more_batches(
    db: Any, clock: Any, publisher: Any
) -> None:
    phones = make_many_users(db, clock.now, 20)
    db.collection("segments").document("everyone").set(
        {
            "name": "Colombo",
            "definition": {
                "attribute": "city",
                "operator": "equals",
                "value": "Colombo",
            },
        }
    )
    make_template(db)
    make_campaign(db, clock.now)
    launch = CampaignLaunch(campaign_id=CAMPAIGN, launch_id=LAUNCH)

    result = evaluate_launch(db, publisher, launch, clock.now, batch_size=7)

    assert (result.batches, result.recipients) == (3, 20)
    batches = sorted((p for _, p, _ in publisher.published), key=lambda b: b.batch_no)
    assert [len(b.phones) for b in batches] == [7, 7, 6]
    assert sorted(p for b in batches for p in b.phones) == sorted(phones)


@pytest.mark.parametrize(
    ("definition", "reason"),
    [
        pytest.param(None, "segment_not_found", id="segment-deleted"),
        pytest.param(
            {"attribute": "city", "operator": "between", "value": 1},
            "invalid_segment: $.operator",
            id="stored-before-a-rule-tightened",
        ),
    ],
)
@pytest.mark.parametrize("status", [CampaignStatus.RUNNING, CampaignStatus.PAUSED])
def test_a_segment_that_cannot_be_evaluated_fails_the_campaign_with_its_reason(
    db: Any,
    clock: Any,
    publisher: Any,
    definition: dict[str, Any] | None,
    reason: str,
    status: CampaignStatus,
) -> None:
    make_campaign(db, clock.now, status=status)
    if definition is not None:
        db.collection("segments").document("everyone").set({"definition": definition})
    launch = CampaignLaunch(campaign_id=CAMPAIGN, launch_id=LAUNCH)

    result = evaluate_launch(db, publisher, launch, clock.now)
    again = evaluate_launch(db, publisher, launch, clock.now)

    assert not result.evaluated and result.reason and reason in result.reason
    assert again.reason == "campaign_failed"
    doc = db.collection("campaigns").document(CAMPAIGN).get().to_dict()
    assert doc["status"] == "FAILED"
    assert reason in doc["failure_reason"]
    assert publisher.published == []


def test_a_stale_launch_publishes_nothing(db: Any, clock: Any, publisher: Any) -> None:
    make_campaign(db, clock.now)
    stale = CampaignLaunch(campaign_id=CAMPAIGN, launch_id="older")
    assert evaluate_launch(db, publisher, stale, clock.now).reason == "stale_launch"
    assert publisher.published == []


# --- dry run -------------------------------------------------------------------


def test_a_dry_run_counts_what_a_launch_would_do_and_writes_nothing(
    db: Any, clock: Any
) -> None:
    make_template(db)
    campaign = make_campaign(db, clock.now, quiet_hours=None, rate_limit_mps=2.0)
    make_user(db, PHONES[0], clock.now, city="Colombo", name="Ann")
    make_user(db, PHONES[1], clock.now, city="Colombo", name="B" + "o" * 170)
    make_user(db, PHONES[2], clock.now, ConsentState.STOP, city="Colombo", name="Cid")
    make_user(db, PHONES[3], clock.now, city="Colombo")  # no name
    make_user(db, "+12125550199", clock.now, city="Kandy", name="Eve")
    template = get_template(db, TEMPLATE)
    assert template is not None
    everyone_in_colombo = {
        "attribute": "city",
        "operator": "equals",
        "value": "Colombo",
    }

    report = dry_run(db, campaign, template, everyone_in_colombo, core(), clock.now)

    assert report["targeted"] == 4
    assert report["eligible"] == 2
    assert report["skips"] == {"no_consent": 1, "missing_variable": 1}
    assert report["total_segments"] == 3  # "Hi Bo…o" is 174 characters: 2 segments
    assert report["estimated_duration_seconds"] == 1.5
    assert messages_by_id(db) == {}


# --- render failures: one recipient's data, never the batch ----------------------

SCORE_TEMPLATE = (
    "Hi {{ name }}, score {{ 100 | divided_by: n }}"
    '{% for item in items %}{% endfor %}{{ note | default: "" }}'
)
# Each breaks the render for its recipient alone: a division by zero, a list
# past the loop limit, an attribute past the output limit.
BAD_DATA = {
    "divided_by_zero": {"n": 0},
    "list_past_the_loop_limit": {"items": list(range(1001))},
    "oversized_attribute": {"note": "x" * 70_000},
}


def score_recipients(bad: dict[str, Any]) -> list[BatchRecipient]:
    good = {"name": "Ann", "n": 4, "items": [1, 2]}
    return [
        BatchRecipient(phone=PHONES[0], attributes=good),
        BatchRecipient(phone=PHONES[1], attributes={**good, "name": "Bob", **bad}),
        BatchRecipient(phone=PHONES[2], attributes={**good, "name": "Cid"}),
    ]


@pytest.mark.parametrize("bad", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_a_render_failure_skips_only_that_recipient(
    db: Any, clock: Any, task_queue: Any, bad: dict[str, Any]
) -> None:
    make_template(db, SCORE_TEMPLATE)
    make_campaign(db, clock.now)
    recipients = score_recipients(bad)
    phones = [r.phone for r in recipients]

    result = fan_out_batch(
        db, task_queue, batch(phones, recipients=recipients), core(), clock.now
    )

    assert (result.created, result.enqueued, result.skipped) == (3, 2, 1)
    docs = messages_by_id(db)
    failed = docs[message_id_for(CAMPAIGN, PHONES[1])].to_dict()
    assert failed["status_rank"] == rank_of(MessageStatus.SKIPPED)
    assert failed["skip_reason"] == "render_failed"
    assert failed["audit"][0]["step"] == "render"
    first = docs[message_id_for(CAMPAIGN, PHONES[0])].to_dict()
    assert (first["body"], first["status_rank"]) == ("Hi Ann, score 25", QUEUED)
    assert {t.body["message_id"] for t in task_queue.tasks} == {
        message_id_for(CAMPAIGN, PHONES[0]),
        message_id_for(CAMPAIGN, PHONES[2]),
    }
    # The batch is done, so the scheduler can complete the campaign.
    pacing = db.collection("campaigns").document(CAMPAIGN).collection("pacing")
    reservation = pacing.document(LAUNCH).collection("batches").document("0").get()
    assert reservation.to_dict()["done"] is True


@pytest.mark.parametrize("bad", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_a_dry_run_counts_a_render_failure_as_a_skip(
    db: Any, clock: Any, bad: dict[str, Any]
) -> None:
    make_template(db, SCORE_TEMPLATE)
    campaign = make_campaign(db, clock.now, quiet_hours=None)
    for recipient in score_recipients(bad):
        make_user(db, recipient.phone, clock.now, **recipient.attributes)
    template = get_template(db, TEMPLATE)
    assert template is not None
    everyone = {"attribute": "n", "operator": "exists"}

    report = dry_run(db, campaign, template, everyone, core(), clock.now)

    assert (report["targeted"], report["eligible"]) == (3, 2)
    assert report["skips"] == {"render_failed": 1}


def test_fanned_out_messages_are_found_by_the_stranded_sweep(
    ready: Any, clock: Any, task_queue: Any
) -> None:
    """Fan-out stores `held: false`, the field the sweep's query needs."""
    fan_out_batch(ready, task_queue, batch(), core(), clock.now)
    lost = RecordingTaskQueue()  # as if every first task had run out
    later = clock.now + timedelta(seconds=core().stranded_queued_seconds + 60)

    requeued, _ = sweep_stranded_queued(ready, lost, core(), later)

    assert requeued == len(PHONES)
    assert {t.body["message_id"] for t in lost.tasks} == {
        message_id_for(CAMPAIGN, phone) for phone in PHONES
    }
