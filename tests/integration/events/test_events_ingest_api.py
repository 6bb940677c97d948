"""POST and GET /v1/events on the Firestore emulator (Pub/Sub recorded)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from shared.delivery.messages import message_id_for
from shared.events.router import route_event
from shared.store.events import EVENTS
from tests.integration.events.factories import PHONE, add_user, triggered_campaign


def ann_id(campaign_id: str, event_id: str) -> str:
    """The id of the message an event for +14155550100 causes."""
    return message_id_for(campaign_id, "+14155550100", event_id)


pytestmark = pytest.mark.integration


def event(**fields: Any) -> dict[str, Any]:
    return {"type": "order.shipped", "phone": PHONE, **fields}


def stored(db: Any, event_id: str) -> dict[str, Any]:
    snapshot = db.collection(EVENTS).document(event_id).get()
    assert snapshot.exists, event_id
    return dict(snapshot.to_dict())


def published_ids(publisher: Any) -> list[str]:
    return [payload.event_id for _, payload, _ in publisher.published]


def test_one_event_is_stored_and_published_with_its_type(
    api: Any, db: Any, publisher: Any, clock: Any
) -> None:
    response = api("POST", "/v1/events", json=event(properties={"order_id": "A1"}))
    assert response.status == 202, response.body
    assert response.body["accepted"] == 1
    assert response.body["rejected"] == []
    [event_id] = response.body["event_ids"]
    doc = stored(db, event_id)
    assert doc["status"] == "received"
    assert doc["properties"] == {"order_id": "A1"}
    assert doc["received_at"] == clock.now
    assert doc["occurred_at"] == clock.now
    assert doc["expire_at"] == clock.now + timedelta(days=30)
    [(topic, payload, attributes)] = publisher.published
    assert topic == "events"
    assert attributes == {"type": "order.shipped"}
    assert payload.event_id == event_id
    assert payload.phone == PHONE


def test_a_malformed_event_is_rejected_alone(api: Any, publisher: Any) -> None:
    batch = [
        event(event_id="e1"),
        event(event_id="e2", phone="not a phone"),
        event(event_id="e3", type="cart.abandoned"),
    ]
    response = api("POST", "/v1/events", json=batch)
    assert response.status == 202
    assert response.body["accepted"] == 2
    assert response.body["event_ids"] == ["e1", None, "e3"]
    [rejection] = response.body["rejected"]
    assert rejection["index"] == 1
    assert rejection["error"].startswith("phone:")
    assert sorted(published_ids(publisher)) == ["e1", "e3"]
    types = sorted(attributes["type"] for _, _, attributes in publisher.published)
    assert types == ["cart.abandoned", "order.shipped"]


def test_ndjson_with_an_unreadable_line(api: Any, publisher: Any) -> None:
    lines = [json.dumps(event(event_id="n1")), "{oops", json.dumps(event())]
    response = api(
        "POST",
        "/v1/events",
        body="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status == 202
    assert response.body["accepted"] == 2
    assert [r["index"] for r in response.body["rejected"]] == [1]
    assert len(publisher.published) == 2


def test_a_duplicate_is_accepted_and_not_published_again(
    api: Any, db: Any, publisher: Any, router: Any, clock: Any
) -> None:
    first = api("POST", "/v1/events", json=event(event_id="dup-1"))
    assert first.body["duplicates"] == 0
    route_event(router(), publisher.published[0][1], clock())
    again = api("POST", "/v1/events", json=[event(event_id="dup-1"), event()])
    assert again.status == 202
    assert again.body["accepted"] == 2
    assert again.body["duplicate_ids"] == ["dup-1"]
    assert published_ids(publisher).count("dup-1") == 1
    assert stored(db, "dup-1")["status"] == "unmatched"


def test_an_id_repeated_in_one_request_is_stored_once(api: Any, publisher: Any) -> None:
    batch = [event(event_id="r1"), event(event_id="r1", properties={"x": 1})]
    response = api("POST", "/v1/events", json=batch)
    assert response.body["accepted"] == 2
    assert response.body["duplicate_ids"] == ["r1"]
    assert published_ids(publisher) == ["r1"]
    assert publisher.published[0][1].properties == {}


class FailingPublisher:
    def __init__(self) -> None:
        self.calls = 0

    def publish(self, topic: Any, payload: Any, **attributes: str) -> None:
        self.publish_many(topic, [payload], **attributes)

    def publish_many(self, topic: Any, payloads: Any, **attributes: str) -> None:
        self.calls += 1
        raise TimeoutError("pubsub unavailable")


def test_a_failed_publish_is_a_503_and_the_retry_publishes(
    api: Any, db: Any, publisher: Any
) -> None:
    context = api.context
    working, context.publisher = context.publisher, FailingPublisher()
    failed = api(
        "POST", "/v1/events", json=[event(event_id="p1"), event(event_id="p2")]
    )
    assert failed.status == 503
    assert failed.body["error"]["code"] == "unavailable"
    # Stored, unpublished: the retry finds them never routed and publishes them.
    assert stored(db, "p1")["status"] == "received"
    context.publisher = working
    retried = api(
        "POST", "/v1/events", json=[event(event_id="p1"), event(event_id="p2")]
    )
    assert retried.status == 202
    assert retried.body["duplicate_ids"] == ["p1", "p2"]
    assert sorted(published_ids(publisher)) == ["p1", "p2"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"this is not json", "application/json", 400, "invalid_body"),
        (b"", "application/json", 400, "invalid_body"),
        (b"42", "application/json", 400, "invalid_body"),
        (
            json.dumps([{"type": "a", "phone": PHONE}] * 501).encode(),
            "application/json",
            413,
            "too_many_events",
        ),
    ],
)
def test_bodies_without_acceptable_events(
    api: Any,
    publisher: Any,
    body: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    response = api(
        "POST", "/v1/events", body=body, headers={"Content-Type": content_type}
    )
    assert response.status == status, response.body
    assert response.body["error"]["code"] == code
    assert publisher.published == []


def test_posting_needs_the_api_key(api: Any) -> None:
    assert api("POST", "/v1/events", json=event(), key=None).status == 401


def test_get_shows_the_event_its_campaigns_and_messages(
    api: Any, publisher: Any, router: Any, clock: Any
) -> None:
    add_user(api)
    matched = triggered_campaign(api)
    big = triggered_campaign(
        api, where={"attribute": "total", "operator": "gte", "value": 100}
    )
    paused = triggered_campaign(api)
    assert api("POST", f"/v1/campaigns/{paused}/pause").status == 200
    api("POST", "/v1/events", json=event(event_id="g1", properties={"order_id": "A1"}))
    route_event(router(), publisher.published[0][1], clock())

    report = api("GET", "/v1/events/g1")
    assert report.status == 200
    body = report.body
    assert body["event_id"] == "g1"
    assert body["status"] == "matched"
    assert body["properties"] == {"order_id": "A1"}
    assert body["matched"] == [
        {
            "campaign_id": matched,
            "message_id": ann_id(matched, "g1"),
        }
    ]
    reasons = {m["campaign_id"]: m["reason"] for m in body["not_matched"]}
    assert reasons == {big: "where_mismatch", paused: "ignored_paused"}
    assert body["messages"] == [
        {
            "id": ann_id(matched, "g1"),
            "campaign_id": matched,
            "status": "QUEUED",
            "skip_reason": None,
        }
    ]
    assert api("GET", "/v1/events/nope").status == 404


def test_a_campaign_trigger_is_validated_at_creation(api: Any) -> None:
    template = api("POST", "/v1/templates", json={"name": "t", "body": "Hi"})
    base = {"name": "c", "template_id": template.body["id"]}
    bad_where = api(
        "POST",
        "/v1/campaigns",
        json={
            **base,
            "trigger": {
                "event": "order.shipped",
                "where": {"not": {"attribute": "total", "operator": "gte"}},
            },
        },
    )
    assert bad_where.status == 422
    assert bad_where.body["error"]["details"] == [
        {"path": "trigger.where.not.value", "error": "gte needs a value"}
    ]
    bad_type = api(
        "POST", "/v1/campaigns", json={**base, "trigger": {"event": "Order Shipped"}}
    )
    assert bad_type.status == 422
    assert bad_type.body["error"]["details"][0]["path"] == "trigger.event"
