"""Posted events: reading the body, validating each event, campaign triggers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.audience.segments import SegmentDefinitionError
from shared.events.ingest import (
    MAX_EVENTS_PER_REQUEST,
    MAX_PROPERTIES_BYTES,
    EventBodyError,
    InvalidEvent,
    TooManyEvents,
    UnreadableLine,
    parse_event_body,
    validate_event,
    validate_trigger,
)
from shared.store.campaigns import Trigger

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def event(**fields: Any) -> dict[str, Any]:
    return {"type": "order.shipped", "phone": "+14155550100", **fields}


def ndjson(*events: Any) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in events) + b"\n"


# ---------------------------------------------------------------- the body


def test_one_object_is_a_batch_of_one() -> None:
    assert parse_event_body(json.dumps(event()).encode(), "application/json") == [
        event()
    ]


def test_a_list_is_a_batch() -> None:
    body = json.dumps([event(), event(type="cart.abandoned")]).encode()
    assert len(parse_event_body(body, "application/json")) == 2


def test_ndjson_by_content_type_and_by_sniffing() -> None:
    body = ndjson(event(), event(), event())
    assert len(parse_event_body(body, "application/x-ndjson")) == 3
    assert len(parse_event_body(body, "application/json")) == 3
    assert len(parse_event_body(body, "")) == 3


def test_an_unreadable_ndjson_line_is_kept_in_its_place() -> None:
    body = ndjson(event()) + b"{not json\n" + ndjson(event())
    items = parse_event_body(body, "application/x-ndjson")
    assert isinstance(items[1], UnreadableLine)
    assert len(items) == 3


@pytest.mark.parametrize(
    "body", [b"not json", b"{broken", b'"a string"', b"42", b"[]", b"   "]
)
def test_a_body_without_events_is_a_400(body: bytes) -> None:
    with pytest.raises(EventBodyError):
        parse_event_body(body, "application/json")


def test_more_than_500_events_is_too_many() -> None:
    body = json.dumps([event()] * (MAX_EVENTS_PER_REQUEST + 1)).encode()
    with pytest.raises(TooManyEvents):
        parse_event_body(body, "application/json")
    full = json.dumps([event()] * MAX_EVENTS_PER_REQUEST).encode()
    assert len(parse_event_body(full, "application/json")) == MAX_EVENTS_PER_REQUEST


# ---------------------------------------------------------------- one event


def test_a_minimal_event_gets_an_id_and_occurred_at_now() -> None:
    parsed = validate_event(event(phone="(415) 555-0100"), NOW, "US")
    assert parsed.phone == "+14155550100"
    assert parsed.occurred_at == NOW
    assert parsed.properties == {}
    assert len(parsed.event_id) == 32


def test_given_fields_are_kept() -> None:
    parsed = validate_event(
        event(
            event_id="ord-1:shipped",
            properties={"order_id": "A1", "total": 120.5, "items": [{"sku": "x"}]},
            occurred_at="2026-11-26T14:00:00Z",
        ),
        NOW,
        "US",
    )
    assert parsed.event_id == "ord-1:shipped"
    assert parsed.properties["total"] == 120.5
    assert parsed.occurred_at == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def test_a_naive_occurred_at_is_utc() -> None:
    parsed = validate_event(event(occurred_at="2026-11-26T09:30:00"), NOW, "US")
    assert parsed.occurred_at == datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"type": None}, "type: required"),
        ({"type": "Order Shipped"}, "type:"),
        ({"type": "9lives"}, "type:"),
        ({"type": "a" * 65}, "type:"),
        ({"phone": None}, "phone: required"),
        ({"phone": "12"}, "phone:"),
        ({"phone": "+1415555010"}, "phone:"),
        ({"event_id": "a/b"}, "event_id:"),
        ({"event_id": ""}, "event_id:"),
        ({"event_id": "__x__"}, "event_id:"),
        ({"event_id": 7}, "event_id:"),
        ({"properties": [1, 2]}, "properties: must be a JSON object"),
        ({"properties": {"a.b": 1}}, "properties:"),
        ({"occurred_at": "yesterday"}, "occurred_at:"),
        ({"occurred_at": 1700000000}, "occurred_at:"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_invalid_events_name_their_field(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidEvent, match=error.replace("(", r"\(")):
        validate_event(event(**fields), NOW, "US")


def test_properties_may_be_16_kb_serialized_and_no_more() -> None:
    room = MAX_PROPERTIES_BYTES - len(json.dumps({"p": ""}, separators=(",", ":")))
    validate_event(event(properties={"p": "x" * room}), NOW, "US")
    with pytest.raises(InvalidEvent, match="bytes serialized"):
        validate_event(event(properties={"p": "x" * (room + 1)}), NOW, "US")


def test_a_non_object_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="JSON object"):
        validate_event(["type"], NOW, "US")


def test_an_unreadable_line_is_rejected_with_its_error() -> None:
    with pytest.raises(InvalidEvent, match="line is not JSON"):
        validate_event(UnreadableLine("line is not JSON"), NOW, "US")


# ---------------------------------------------------------------- triggers


def test_a_trigger_with_a_valid_where_passes() -> None:
    validate_trigger(
        Trigger(
            event="order.shipped",
            where={"attribute": "total", "operator": "gte", "value": 100},
        )
    )


def test_a_trigger_where_error_names_its_path() -> None:
    where = {
        "logic": "AND",
        "conditions": [{"attribute": "total", "operator": "bigger", "value": 1}],
    }
    with pytest.raises(SegmentDefinitionError) as raised:
        validate_trigger(Trigger(event="order.shipped", where=where))
    assert raised.value.path == "trigger.where.conditions[0].operator"


def test_a_trigger_event_ingestion_would_refuse_is_invalid() -> None:
    with pytest.raises(SegmentDefinitionError) as raised:
        validate_trigger(Trigger(event="Order Shipped"))
    assert raised.value.path == "trigger.event"
