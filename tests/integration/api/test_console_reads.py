"""Reads the operator console needs, added to the public API for every caller:
recent events, one contact's messages, a campaign's message for one phone, and
the render of a template not saved yet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.delivery.messages import message_id_for
from shared.store.events import EVENTS
from shared.store.messages import MessageStatus, rank_of

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
ANN = "+14155550100"
BOB = "+14155550101"


def add_event(db: Any, event_id: str, minutes_ago: int, **fields: Any) -> None:
    db.collection(EVENTS).document(event_id).set(
        {
            "type": "order_shipped",
            "phone": ANN,
            "properties": {"order_id": event_id},
            "received_at": NOW - timedelta(minutes=minutes_ago),
            "status": "matched",
            **fields,
        }
    )


def add_message(
    db: Any,
    campaign_id: str,
    phone: str,
    minutes_ago: int,
    status: MessageStatus = MessageStatus.DELIVERED,
) -> str:
    message_id = message_id_for(campaign_id, phone)
    created = NOW - timedelta(minutes=minutes_ago)
    db.collection("messages").document(message_id).set(
        {
            "campaign_id": campaign_id,
            "phone": phone,
            "body": f"hello from {campaign_id}",
            "encoding": "GSM-7",
            "segments": 1,
            "status_rank": rank_of(status),
            "send_at": created,
            "created_at": created,
        }
    )
    return message_id


def ok(response: Any) -> Any:
    assert response.status == 200, response.body
    return response.body


def test_recent_events_come_newest_first_with_masked_phones(db: Any, api: Any) -> None:
    add_event(db, "e-old", 30)
    add_event(
        db,
        "e-new",
        1,
        matched=[{"campaign_id": "c1", "message_id": "c1_x_e-new"}],
    )
    add_event(db, "e-mid", 10, status="unmatched")

    first = ok(api("GET", "/v1/events", query={"limit": "2"}))
    assert [e["event_id"] for e in first["items"]] == ["e-new", "e-mid"]
    assert first["items"][0]["phone"] == "+1415***0100"
    assert first["items"][0]["matched"] == [
        {"campaign_id": "c1", "message_id": "c1_x_e-new"}
    ]
    assert ANN not in str(first)
    rest = ok(
        api(
            "GET",
            "/v1/events",
            query={"limit": "2", "page_token": first["next_page_token"]},
        )
    )
    assert [e["event_id"] for e in rest["items"]] == ["e-old"]
    assert rest["next_page_token"] is None


def test_recent_events_refuse_a_forged_page_token(api: Any) -> None:
    response = api("GET", "/v1/events", query={"page_token": "bm90LWpzb24"})
    assert response.status == 400
    assert response.body["error"]["code"] == "invalid_page_token"


def test_a_contacts_messages_across_campaigns_newest_first(db: Any, api: Any) -> None:
    older = add_message(db, "spring", ANN, 60)
    newer = add_message(db, "summer", ANN, 5, MessageStatus.FAILED)
    add_message(db, "summer", BOB, 1)

    page = ok(api("GET", "/v1/users/%2B14155550100/messages"))
    assert [m["id"] for m in page["items"]] == [newer, older]
    assert page["items"][0]["status"] == "FAILED"
    assert ok(api("GET", "/v1/users/+14155550199/messages"))["items"] == []
    assert api("GET", "/v1/users/12/messages").status == 422


def test_campaign_messages_filter_by_phone_in_any_format(db: Any, api: Any) -> None:
    ann = add_message(db, "summer", ANN, 5)
    add_message(db, "summer", BOB, 4)
    add_message(db, "spring", ANN, 60)

    found = ok(
        api("GET", "/v1/campaigns/summer/messages", query={"phone": "(415) 555-0100"})
    )
    assert [m["id"] for m in found["items"]] == [ann]
    none = ok(
        api(
            "GET",
            "/v1/campaigns/summer/messages",
            query={"phone": ANN, "status": "FAILED"},
        )
    )
    assert none["items"] == []


def test_an_unsaved_template_renders_as_the_editor_types(api: Any) -> None:
    response = api(
        "POST",
        "/v1/templates/render",
        json={
            "template": {"body": "Hi {{ name }}, order {{ event.properties.id }} ✓"},
            "attributes": {"name": "Ann"},
            "event": {"properties": {"id": "A1"}},
        },
    )
    body = ok(response)
    assert body["body"] == "Hi Ann, order A1 ✓"
    assert body["encoding"] == "UCS2"
    assert body["characters"] == len("Hi Ann, order A1 ✓")
    assert body["missing_variables"] == []

    missing = ok(
        api(
            "POST",
            "/v1/templates/render",
            json={"template": {"body": "Hi {{ name }}"}, "attributes": {}},
        )
    )
    assert missing["missing_variables"] == ["name"]


def test_an_unsaved_template_that_does_not_parse_names_the_line(api: Any) -> None:
    response = api(
        "POST",
        "/v1/templates/render",
        json={"template": {"body": "Hi {{ name "}, "attributes": {}},
    )
    assert response.status == 422
    assert response.body["error"]["code"] == "template_syntax"


def test_the_new_reads_are_in_the_openapi_document(api: Any) -> None:
    paths = ok(api("GET", "/v1/openapi.json"))["paths"]
    assert "get" in paths["/v1/events"]
    assert "get" in paths["/v1/users/{phone}/messages"]
    assert "post" in paths["/v1/templates/render"]
    params = {
        p["name"]
        for p in paths["/v1/campaigns/{campaign_id}/messages"]["get"]["parameters"]
    }
    assert "phone" in params
