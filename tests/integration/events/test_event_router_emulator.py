"""The event router on the Firestore emulator: matching, messages, redelivery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.delivery.messages import message_id_for
from shared.delivery.pacing import LATENCY_ALLOWANCE
from shared.events.router import route_event
from shared.payloads import IngestedEvent
from shared.store.events import EVENTS
from shared.store.messages import MessageStatus, rank_of
from tests.integration.events.factories import (
    PHONE,
    add_segment,
    add_user,
    triggered_campaign,
)


def ann_id(campaign_id: str, event_id: str) -> str:
    """The id of the message an event for +14155550100 causes."""
    return message_id_for(campaign_id, "+14155550100", event_id)


pytestmark = pytest.mark.integration


def event(clock: Any, event_id: str = "e1", **fields: Any) -> IngestedEvent:
    return IngestedEvent(
        **{
            "event_id": event_id,
            "type": "order.shipped",
            "phone": PHONE,
            "properties": {"order_id": "A1"},
            "occurred_at": clock.now,
            **fields,
        }
    )


def message(db: Any, message_id: str) -> dict[str, Any]:
    snapshot = db.collection("messages").document(message_id).get()
    assert snapshot.exists, message_id
    return dict(snapshot.to_dict())


def message_count(db: Any) -> int:
    return len(list(db.collection("messages").stream()))


def event_doc(db: Any, event_id: str) -> dict[str, Any]:
    return dict(db.collection(EVENTS).document(event_id).get().to_dict() or {})


def test_an_event_matched_by_two_campaigns_plans_two_messages(
    api: Any, db: Any, router: Any, task_queue: Any, clock: Any
) -> None:
    add_user(api)
    first, second = triggered_campaign(api), triggered_campaign(api)
    outcome = route_event(router(), event(clock), clock())
    assert outcome.enqueued == 2
    ids = {ann_id(first, "e1"), ann_id(second, "e1")}
    assert {m.message_id for m in outcome.matched} == ids
    doc = message(db, ann_id(first, "e1"))
    assert doc["body"].startswith("Order A1 shipped, Pat")
    assert doc["event_id"] == "e1"
    assert doc["status_rank"] == rank_of(MessageStatus.QUEUED)
    assert doc["send_at"] == clock.now
    tasks = {t.body["message_id"]: t for t in task_queue.tasks}
    assert set(tasks) == ids
    assert tasks[ann_id(first, "e1")].body["message"]["event_id"] == "e1"
    assert tasks[ann_id(first, "e1")].body["version"]
    recorded = event_doc(db, "e1")
    assert recorded["status"] == "matched"
    assert {m["message_id"] for m in recorded["matched"]} == ids
    assert recorded["not_matched"] == []


def test_redelivery_creates_and_enqueues_nothing_more(
    api: Any, db: Any, router: Any, task_queue: Any, clock: Any
) -> None:
    add_user(api)
    campaign_id = triggered_campaign(api)
    route_event(router(), event(clock), clock())
    again = route_event(router(), event(clock), clock())
    assert again.enqueued == 0
    assert len(task_queue.tasks) == 1
    assert message_count(db) == 1
    assert event_doc(db, "e1")["matched"] == [
        {"campaign_id": campaign_id, "message_id": ann_id(campaign_id, "e1")}
    ]
    # Once the message left QUEUED, a redelivery does not even try to enqueue.
    db.collection("messages").document(ann_id(campaign_id, "e1")).update(
        {"status_rank": rank_of(MessageStatus.SENT)}
    )
    task_queue.names.clear()
    assert route_event(router(), event(clock), clock()).enqueued == 0


def test_an_unknown_phone_is_unmatched_and_no_user_is_created(
    api: Any, db: Any, router: Any, task_queue: Any, clock: Any
) -> None:
    campaign_id = triggered_campaign(api)
    outcome = route_event(router(), event(clock, phone="+14155550199"), clock())
    assert outcome.status.value == "unmatched"
    recorded = event_doc(db, "e1")
    assert recorded["not_matched"] == [
        {"campaign_id": campaign_id, "reason": "unknown_user"}
    ]
    assert not db.collection("users").document("+14155550199").get().exists
    assert message_count(db) == 0
    assert task_queue.tasks == []


def test_the_segment_is_checked_against_the_user(
    api: Any, db: Any, router: Any, clock: Any
) -> None:
    add_user(api)
    colombo = add_segment(
        api, {"attribute": "city", "operator": "equals", "value": "Colombo"}
    )
    kandy = add_segment(
        api, {"attribute": "city", "operator": "equals", "value": "Kandy"}
    )
    inside = triggered_campaign(api, segment_id=colombo)
    outside = triggered_campaign(api, segment_id=kandy)
    outcome = route_event(router(), event(clock), clock())
    assert [m.campaign_id for m in outcome.matched] == [inside]
    assert [(m.campaign_id, m.reason) for m in outcome.not_matched] == [
        (outside, "segment_mismatch")
    ]


def test_where_and_pause_are_decided_without_reading_the_user(
    api: Any, db: Any, router: Any, clock: Any
) -> None:
    # No user exists: had the router read it, the reason would be unknown_user.
    big = triggered_campaign(
        api, where={"attribute": "total", "operator": "gte", "value": 100}
    )
    paused = triggered_campaign(api)
    api("POST", f"/v1/campaigns/{paused}/pause")
    outcome = route_event(router(), event(clock, properties={"total": 5}), clock())
    reasons = {m.campaign_id: m.reason for m in outcome.not_matched}
    assert reasons == {big: "where_mismatch", paused: "ignored_paused"}


def test_draft_and_cancelled_campaigns_are_not_considered(
    api: Any, db: Any, router: Any, clock: Any
) -> None:
    add_user(api)
    triggered_campaign(api, launch=False)
    cancelled = triggered_campaign(api)
    api("POST", f"/v1/campaigns/{cancelled}/cancel")
    other_type = triggered_campaign(api, event="cart.abandoned")
    outcome = route_event(router(), event(clock), clock())
    assert outcome.matched == [] and outcome.not_matched == []
    assert other_type not in str(event_doc(db, "e1"))


def test_a_missing_variable_skips_at_render_and_enqueues_nothing(
    api: Any, db: Any, router: Any, task_queue: Any, clock: Any
) -> None:
    add_user(api)
    campaign_id = triggered_campaign(api, body="Your code {{ event.properties.code }}")
    outcome = route_event(router(), event(clock), clock())
    assert outcome.enqueued == 0
    doc = message(db, ann_id(campaign_id, "e1"))
    assert doc["status_rank"] == rank_of(MessageStatus.SKIPPED)
    assert doc["skip_reason"] == "missing_variable"
    assert task_queue.tasks == []


def test_sends_of_one_campaign_are_paced_at_its_rate(
    api: Any, db: Any, router: Any, clock: Any
) -> None:
    add_user(api)
    campaign_id = triggered_campaign(api, rate_limit_mps=2)
    instance = router()
    for n in range(4):
        route_event(instance, event(clock, event_id=f"e{n}"), clock())
    send_at = [message(db, ann_id(campaign_id, f"e{n}"))["send_at"] for n in range(4)]
    # At the planned rate: the rate less the latency allowance.
    step = 0.5 * (1 + LATENCY_ALLOWANCE)
    assert send_at == [clock.now + timedelta(seconds=step * n) for n in range(4)]


def test_triggered_lifecycle_and_resume_re_enqueues_held_messages(
    api: Any, db: Any, router: Any, task_queue: Any, clock: Any
) -> None:
    add_user(api)
    campaign_id = triggered_campaign(api, launch=False)
    assert api("POST", f"/v1/campaigns/{campaign_id}/resume").status == 409
    assert api("POST", f"/v1/campaigns/{campaign_id}/launch").body["status"] == (
        "ACTIVE"
    )
    route_event(router(), event(clock), clock())
    message_id = ann_id(campaign_id, "e1")
    paused = api("POST", f"/v1/campaigns/{campaign_id}/pause")
    assert paused.body["status"] == "PAUSED"
    # What the sender does with a message whose time comes during the pause.
    db.collection("messages").document(message_id).update({"held": True})

    resumed = api("POST", f"/v1/campaigns/{campaign_id}/resume")
    assert resumed.body["status"] == "ACTIVE"
    assert resumed.body["resumed_messages"] == 1
    assert message(db, message_id)["held"] is False
    assert [t.name.endswith("-g1") for t in task_queue.tasks] == [False, True]

    cancelled = api("POST", f"/v1/campaigns/{campaign_id}/cancel")
    assert cancelled.body["status"] == "CANCELLED"
    assert api("POST", f"/v1/campaigns/{campaign_id}/resume").status == 409


def test_an_event_published_without_its_document_still_gets_a_record(
    api: Any, db: Any, router: Any, clock: Any
) -> None:
    add_user(api)
    triggered_campaign(api)
    route_event(router(), event(clock, event_id="direct-1"), clock())
    recorded = event_doc(db, "direct-1")
    assert recorded["status"] == "matched"
    assert recorded["routed_at"] == clock.now


EVENT_TEMPLATE = (
    "Order {{ event.properties.order_id }} ({{ event.type }}, {{ event.event_id }},"
    " {{ event.occurred_at | date: '%Y-%m-%d' }}) shipped"
)


def test_the_template_sees_the_event_as_design_gives_it(
    api: Any, db: Any, router: Any, task_queue: Any, clock: Any
) -> None:
    add_user(api)
    campaign_id = triggered_campaign(api, body=EVENT_TEMPLATE)
    outcome = route_event(router(), event(clock), clock())
    doc = message(db, ann_id(campaign_id, "e1"))
    assert doc.get("skip_reason") is None, doc.get("audit")
    assert doc["body"].startswith("Order A1 (order.shipped, e1, 2026-11-26) shipped")
    assert outcome.enqueued == 1


def test_a_preview_that_renders_is_a_send_that_renders(
    api: Any, db: Any, router: Any, clock: Any
) -> None:
    add_user(api)
    campaign_id = triggered_campaign(api, body=EVENT_TEMPLATE)
    template_id = api("GET", f"/v1/campaigns/{campaign_id}").body["template_id"]
    preview = api(
        "POST",
        f"/v1/templates/{template_id}/render",
        json={
            "phone": PHONE,
            "event": {
                "event_id": "e1",
                "type": "order.shipped",
                "occurred_at": clock.now.isoformat(),
                "properties": {"order_id": "A1"},
            },
        },
    )
    assert preview.status == 200, preview.body
    assert preview.body["missing_variables"] == []
    route_event(router(), event(clock), clock())
    sent = message(db, ann_id(campaign_id, "e1"))
    assert sent["body"].startswith(preview.body["body"])


def test_a_render_failure_skips_that_message_as_render_failed(
    api: Any, db: Any, router: Any, task_queue: Any, clock: Any
) -> None:
    add_user(api)
    campaign_id = triggered_campaign(
        api, body="Score {{ 100 | divided_by: event.properties.n }}"
    )
    outcome = route_event(router(), event(clock, properties={"n": 0}), clock())
    assert outcome.enqueued == 0
    assert [m.campaign_id for m in outcome.matched] == [campaign_id]
    doc = message(db, ann_id(campaign_id, "e1"))
    assert doc["status_rank"] == rank_of(MessageStatus.SKIPPED)
    assert doc["skip_reason"] == "render_failed"
    assert task_queue.tasks == []
    assert event_doc(db, "e1")["status"] == "matched"


def test_a_preview_refuses_the_event_flattened(api: Any, clock: Any) -> None:
    """Properties at the event's top level would preview what never sends."""
    add_user(api)
    campaign_id = triggered_campaign(api, body=EVENT_TEMPLATE)
    template_id = api("GET", f"/v1/campaigns/{campaign_id}").body["template_id"]
    preview = api(
        "POST",
        f"/v1/templates/{template_id}/render",
        json={"phone": PHONE, "event": {"order_id": "A1"}},
    )
    assert preview.status == 422, preview.body
    assert preview.body["error"]["details"][0]["field"] == "event.order_id"
