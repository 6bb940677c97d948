"""Triggered campaigns end to end: POST /v1/events → event_router → sender."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from shared.delivery.messages import message_id_for
from tests.e2e.conftest import Stack, wait_for

pytestmark = pytest.mark.e2e

ANN = "+14155550201"
BEN = "+14155550202"
NOBODY = "+14155550299"  # no user has this phone: probes send nothing
FINAL = {"DELIVERED", "UNDELIVERED", "FAILED", "SKIPPED", "READ"}


def event_type(name: str) -> str:
    """A type of its own per test: routers cache campaigns per type."""
    return f"e2e.{name}.{uuid.uuid4().hex[:8]}"


def add_user(e2e: Stack, phone: str, **fields: Any) -> None:
    body = {"phone": phone, "attributes": {"name": "Pat"}, "timezone": "UTC"}
    response = e2e.api("POST", "/v1/users", json={**body, **fields})
    assert response.status_code == 201, response.text


def triggered(
    e2e: Stack,
    kind: str,
    body: str = "Order {{ event.properties.order_id }} shipped",
    **settings: Any,
) -> str:
    template = e2e.api("POST", "/v1/templates", json={"name": "t", "body": body})
    assert template.status_code == 201, template.text
    campaign = e2e.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": f"on {kind}",
            "template_id": template.json()["id"],
            "trigger": {"event": kind, "where": settings.pop("where", None)},
            "quiet_hours": None,
            "rate_limit_mps": 50,
            **settings,
        },
    )
    assert campaign.status_code == 201, campaign.text
    campaign_id = str(campaign.json()["id"])
    launched = e2e.api("POST", f"/v1/campaigns/{campaign_id}/launch")
    assert launched.json()["status"] == "ACTIVE", launched.text
    return campaign_id


def post_events(e2e: Stack, events: Any) -> dict[str, Any]:
    response = e2e.api("POST", "/v1/events", json=events)
    assert response.status_code == 202, response.text
    return dict(response.json())


def shipped(kind: str, event_id: str, phone: str = ANN, **props: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "phone": phone,
        "properties": {"order_id": "A1", **props},
    }


def report(e2e: Stack, event_id: str) -> dict[str, Any]:
    response = e2e.api("GET", f"/v1/events/{event_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def routed(e2e: Stack, event_id: str) -> dict[str, Any]:
    """The event's report once the router has recorded it."""
    return dict(wait_for(lambda: (r := report(e2e, event_id))["routed_at"] and r))


def sends_to(e2e: Stack, phone: str) -> list[dict[str, Any]]:
    return [m for m in e2e.sent_messages() if m["to"] == phone]


def settled(e2e: Stack, event_id: str, count: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = report(e2e, event_id)
        statuses = [m["status"] for m in found["messages"]]
        return found if len(statuses) == count and set(statuses) <= FINAL else None

    return dict(wait_for(done, timeout=40))


def nothing_more_sent(e2e: Stack, kind: str, phone: str, expected: int) -> None:
    """Barrier, then check: a new matching event for `phone`, posted after
    everything else, is sent; besides it, `phone` got `expected` sends."""
    barrier = f"barrier-{uuid.uuid4().hex[:8]}"
    post_events(e2e, shipped(kind, barrier, phone=phone))
    settled(e2e, barrier, 1)
    assert len(sends_to(e2e, phone)) == expected + 1


_probes = itertools.count()


def router_sees(e2e: Stack, kind: str, campaign_id: str, reason: str) -> None:
    """Barrier: the router caches campaigns for a few seconds, so probe with
    events from a phone no user has until it reports the campaign's current
    state (ignored_paused when paused, unknown_user when active)."""

    def probe() -> bool:
        event_id = f"probe-{next(_probes)}"
        post_events(e2e, shipped(kind, event_id, phone=NOBODY))
        found = routed(e2e, event_id)
        return bool(
            found["not_matched"] == [{"campaign_id": campaign_id, "reason": reason}]
        )

    wait_for(probe, timeout=30, interval=0.5)


def test_an_event_matched_by_two_campaigns_sends_two_messages(e2e: Stack) -> None:
    kind = event_type("two")
    add_user(e2e, ANN)
    first = triggered(e2e, kind)
    second = triggered(
        e2e, kind, body="Thanks {{ name }}, order {{ event.properties.order_id }}"
    )
    post_events(e2e, shipped(kind, "two-1"))

    found = settled(e2e, "two-1", 2)
    assert found["status"] == "matched"
    assert {m["campaign_id"] for m in found["matched"]} == {first, second}
    assert {m["status"] for m in found["messages"]} == {"DELIVERED"}
    bodies = sorted(m["body"] for m in sends_to(e2e, ANN))
    assert bodies[0].startswith("Order A1 shipped")
    assert bodies[1].startswith("Thanks Pat, order A1")


def test_a_duplicate_event_id_sends_nothing_more(e2e: Stack) -> None:
    kind = event_type("dup")
    add_user(e2e, ANN)
    triggered(e2e, kind)
    post_events(e2e, shipped(kind, "dup-1"))
    settled(e2e, "dup-1", 1)
    again = post_events(e2e, shipped(kind, "dup-1"))
    assert again["accepted"] == 1
    assert again["duplicate_ids"] == ["dup-1"]
    nothing_more_sent(e2e, kind, ANN, expected=1)


def test_a_where_mismatch_sends_nothing(e2e: Stack) -> None:
    kind = event_type("where")
    add_user(e2e, ANN)
    big = triggered(
        e2e, kind, where={"attribute": "total", "operator": "gte", "value": 100}
    )
    post_events(e2e, shipped(kind, "small-1", total=20))
    found = routed(e2e, "small-1")
    assert found["status"] == "unmatched"
    assert found["not_matched"] == [{"campaign_id": big, "reason": "where_mismatch"}]
    post_events(e2e, shipped(kind, "big-1", total=120))
    settled(e2e, "big-1", 1)
    assert len(sends_to(e2e, ANN)) == 1


def test_an_unknown_phone_is_unmatched_and_creates_no_user(e2e: Stack) -> None:
    kind = event_type("unknown")
    campaign_id = triggered(e2e, kind)
    post_events(e2e, shipped(kind, "nobody-1", phone=BEN))
    found = routed(e2e, "nobody-1")
    assert found["not_matched"] == [
        {"campaign_id": campaign_id, "reason": "unknown_user"}
    ]
    assert e2e.api("GET", f"/v1/users/{BEN}").status_code == 404


def test_a_stopped_user_is_skipped_for_no_consent(e2e: Stack) -> None:
    kind = event_type("stop")
    add_user(e2e, ANN, consent_state="STOP")
    campaign_id = triggered(e2e, kind)
    post_events(e2e, shipped(kind, "stop-1"))
    [message] = settled(e2e, "stop-1", 1)["messages"]
    assert message["id"] == message_id_for(campaign_id, ANN, "stop-1")
    assert message["status"] == "SKIPPED"
    assert message["skip_reason"] == "no_consent"
    assert sends_to(e2e, ANN) == []


def test_quiet_hours_defer_the_message(e2e: Stack) -> None:
    kind = event_type("quiet")
    now = datetime.now(UTC)
    # An hour of margin each side, so the send cannot slip out of the window.
    window = {
        "start": (now - timedelta(hours=1)).strftime("%H:00"),
        "end": (now + timedelta(hours=2)).strftime("%H:00"),
    }
    add_user(e2e, ANN)
    campaign_id = triggered(e2e, kind, quiet_hours=window)
    post_events(e2e, shipped(kind, "quiet-1"))
    message_id = message_id_for(campaign_id, ANN, "quiet-1")

    def deferred() -> dict[str, Any] | None:
        response = e2e.api("GET", f"/v1/messages/{message_id}")
        if response.status_code != 200:
            return None
        found = dict(response.json())
        return found if any(a["outcome"] == "defer" for a in found["audit"]) else None

    message = wait_for(deferred)
    assert message["status"] == "QUEUED"
    assert datetime.fromisoformat(message["send_at"]) > now + timedelta(minutes=30)
    assert sends_to(e2e, ANN) == []


def test_a_paused_campaign_ignores_events_and_resume_does_not_replay(
    e2e: Stack,
) -> None:
    kind = event_type("pause")
    add_user(e2e, ANN)
    campaign_id = triggered(e2e, kind)
    post_events(e2e, shipped(kind, "before-pause"))
    settled(e2e, "before-pause", 1)

    paused = e2e.api("POST", f"/v1/campaigns/{campaign_id}/pause")
    assert paused.json()["status"] == "PAUSED"
    router_sees(e2e, kind, campaign_id, "ignored_paused")
    post_events(e2e, shipped(kind, "during-pause"))
    found = routed(e2e, "during-pause")
    assert found["not_matched"] == [
        {"campaign_id": campaign_id, "reason": "ignored_paused"}
    ]
    assert found["messages"] == []

    resumed = e2e.api("POST", f"/v1/campaigns/{campaign_id}/resume")
    assert resumed.json()["status"] == "ACTIVE"
    router_sees(e2e, kind, campaign_id, "unknown_user")
    # The event after the resume is sent; the one during the pause never is.
    nothing_more_sent(e2e, kind, ANN, expected=1)
    assert report(e2e, "during-pause")["messages"] == []


def test_a_malformed_event_in_a_batch_is_rejected_alone(e2e: Stack) -> None:
    kind = event_type("batch")
    add_user(e2e, ANN)
    add_user(e2e, BEN)
    triggered(e2e, kind)
    answer = post_events(
        e2e,
        [
            shipped(kind, "batch-ann"),
            {"type": kind, "phone": "not a phone"},
            {"type": "Not A Type", "phone": ANN},
            shipped(kind, "batch-ben", phone=BEN),
        ],
    )
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [1, 2]
    assert answer["event_ids"] == ["batch-ann", None, None, "batch-ben"]
    settled(e2e, "batch-ann", 1)
    settled(e2e, "batch-ben", 1)
    assert len(sends_to(e2e, ANN)) == len(sends_to(e2e, BEN)) == 1


def publish_event(e2e: Stack, payload: dict[str, Any]) -> None:
    url = (
        f"http://{e2e.endpoints['pubsub_emulator']}/v1/projects/"
        f"{e2e.endpoints['project']}/topics/events:publish"
    )
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    message = {"data": data, "attributes": {"type": payload["type"]}}
    response = requests.post(url, json={"messages": [message]}, timeout=10)
    response.raise_for_status()


def test_redelivery_of_an_events_message_is_harmless(e2e: Stack) -> None:
    kind = event_type("redeliver")
    add_user(e2e, ANN)
    triggered(e2e, kind)
    post_events(e2e, shipped(kind, "again-1"))
    first = settled(e2e, "again-1", 1)

    payload = {**shipped(kind, "again-1"), "occurred_at": first["occurred_at"]}
    publish_event(e2e, payload)
    wait_for(lambda: report(e2e, "again-1")["routed_at"] != first["routed_at"])
    again = report(e2e, "again-1")
    assert again["matched"] == first["matched"]
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
    nothing_more_sent(e2e, kind, ANN, expected=1)
