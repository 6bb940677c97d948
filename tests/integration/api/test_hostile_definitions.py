"""Segment definitions and templates built to exhaust the engine: very deep,
very long or recursive. Each is rejected at its limit with a 4xx in the error
format, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.integration

COLOMBO = {"attribute": "city", "operator": "equals", "value": "Colombo"}


def nested_not(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = COLOMBO
    for _ in range(depth):
        node = {"not": node}
    return node


def nested_groups(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = COLOMBO
    for _ in range(depth):
        node = {"logic": "AND", "conditions": [node, COLOMBO]}
    return node


SEGMENTS = {
    "not-six-deep": nested_not(6),
    "not-500-deep": nested_not(500),
    "groups-200-deep": nested_groups(200),
    "a-million-conditions": {"logic": "OR", "conditions": [COLOMBO] * 1_000_000},
    "a-huge-in-list": {"attribute": "city", "operator": "in", "value": ["x"] * 100_000},
    "a-1501-byte-value": {"attribute": "city", "operator": "gte", "value": "é" * 751},
    "a-long-item": {"attribute": "city", "operator": "in", "value": ["x" * 1501]},
    "a-megabyte-value": {
        "attribute": "city",
        "operator": "equals",
        "value": "x" * 2**20,
    },
    "a-megabyte-field": {"attribute": "a." * 2**19, "operator": "exists"},
    "a-self-reference": {"segment": "self"},
}


def stored(db: Any, collection: str) -> int:
    return len(list(db.collection(collection).select([]).stream()))


@pytest.mark.parametrize("definition", SEGMENTS.values(), ids=SEGMENTS.keys())
def test_hostile_segment_definitions_are_rejected_and_nothing_is_stored(
    api: Any, db: Any, definition: dict[str, Any]
) -> None:
    created = api("POST", "/v1/segments", json={"name": "x", "definition": definition})
    preview = api("POST", "/v1/segments/preview", json={"definition": definition})
    for response in (created, preview):
        assert response.status == 422, response.body
        assert response.body["error"]["code"] == "invalid_segment"
    assert stored(db, "segments") == 0


def test_json_nested_past_the_parser_is_a_400(api: Any, db: Any) -> None:
    depth = 100_000
    body = '{"name": "x", "definition": ' + '{"not": ' * depth + "1" + "}" * depth
    response = api(
        "POST",
        "/v1/segments",
        body=(body + "}").encode(),
    )
    assert response.status == 400
    assert response.body["error"]["code"] == "invalid_json"
    assert stored(db, "segments") == 0


def _deep(opening: str, closing: str, depth: int) -> str:
    return opening * depth + "x" + closing * depth


TEMPLATES = {
    "deep-if": _deep("{% if a %}", "{% endif %}", 300),
    "deep-for": _deep("{% for i in (1..2) %}", "{% endfor %}", 200),
    "recursive-include": "{% include 'welcome' %}",
    "recursive-render": "{% render 'welcome' %}",
    "huge-range": "{{ (1..100000000000) | join: ',' }}",
    "a-megabyte-body": "x" * 2**20,
}


@pytest.mark.parametrize("body", TEMPLATES.values(), ids=TEMPLATES.keys())
def test_hostile_templates_are_rejected_and_nothing_is_stored(
    api: Any, db: Any, body: str
) -> None:
    kept = api("POST", "/v1/templates", json={"name": "k", "body": "Hi"}).body
    response = api("POST", "/v1/templates", json={"name": "welcome", "body": body})
    assert response.status == 422, response.body
    assert set(response.body["error"]) >= {"code", "message"}
    replaced = api(
        "PUT", f"/v1/templates/{kept['id']}", json={"name": "k", "body": body}
    )
    assert replaced.status == 422, replaced.body
    assert api("GET", f"/v1/templates/{kept['id']}").body["body"] == "Hi"
    assert stored(db, "templates") == 1


def test_a_range_sized_by_contact_data_is_stopped_at_render(api: Any) -> None:
    created = api(
        "POST",
        "/v1/templates",
        json={"name": "count", "body": "{{ (1..n) | join: ',' }}"},
    )
    assert created.status == 201, created.body
    rendered = api(
        "POST",
        f"/v1/templates/{created.body['id']}/render",
        json={"attributes": {"n": 10**11}},
    )
    assert rendered.status == 422, rendered.body
    assert "range longer than 1000 items" in json.dumps(rendered.body)
