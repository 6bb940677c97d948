"""Hostile request bodies and credentials: each is a 4xx, never a 500.

Over-deep JSON goes to every route that reads a body, in each place a nested
value can sit (the whole body, or one field of an otherwise valid body), at a
depth Python's JSON decoder accepts (each route's validation answers it) and at
one where the decoder recurses out (400, and nothing is stored).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.api.app import api_router

pytestmark = pytest.mark.integration

PHONE = "+14155550100"
# Imports are left out: an accepted import file legitimately makes a report.
COLLECTIONS = ("users", "templates", "segments", "campaigns", "events")
# Lifecycle actions that take no body (pause, resume, ...) ignore one.
BODILESS = re.compile(r"/(pause|resume|cancel|dry-run)$")
PARSED_DEPTH = 900  # the decoder takes it; validation must refuse it
TOO_DEEP = 100_000  # the decoder recurses out
DEPTHS = (PARSED_DEPTH, TOO_DEEP)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def field_nested(depth: int) -> str:
    """A body whose one field is nested, so only code after parsing meets it."""
    deep = nested(depth)
    return f'{{"type": "t", "phone": "{PHONE}", "properties": {{"x": {deep}}}}}'


def attributes_nested(depth: int) -> str:
    deep = "{" + '"a": {' * depth + "}" * depth + "}"
    return f'{{"phone": "{PHONE}", "attributes": {deep}}}'


def footprint(db: Any) -> dict[str, int]:
    return {
        name: len(list(db.collection(name).list_documents())) for name in COLLECTIONS
    }


@pytest.fixture
def resources(api: Any) -> dict[str, str]:
    """One of each resource, so that every route reaches its body."""
    user = api("POST", "/v1/users", json={"phone": PHONE, "attributes": {"n": 1}})
    template = api("POST", "/v1/templates", json={"name": "t", "body": "Hi"})
    segment = api(
        "POST",
        "/v1/segments",
        json={
            "name": "s",
            "definition": {"attribute": "n", "operator": "equals", "value": 1},
        },
    )
    campaign = api(
        "POST",
        "/v1/campaigns",
        json={
            "name": "c",
            "template_id": template.body["id"],
            "segment_id": segment.body["id"],
        },
    )
    for response in (user, template, segment, campaign):
        assert response.status == 201, response.body
    return {
        "phone": PHONE,
        "template_id": template.body["id"],
        "segment_id": segment.body["id"],
        "campaign_id": campaign.body["id"],
    }


def body_routes() -> list[tuple[str, str]]:
    return sorted(
        (route.method, route.pattern)
        for route in api_router().routes
        if route.method in {"POST", "PUT", "PATCH"}
    )


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(("method", "pattern"), body_routes())
def test_over_deep_json_is_a_400_on_every_body_route(
    api: Any,
    db: Any,
    resources: dict[str, str],
    method: str,
    pattern: str,
    depth: int,
) -> None:
    path = pattern.format(**resources)
    before = footprint(db)
    for body in (nested(depth), field_nested(depth), attributes_nested(depth)):
        response = api(method, path, body=body.encode())
        # Routes that take no body (pause, dry-run, ...) may ignore it; none
        # may fail on it.
        assert response.status < 500, (method, path, response.body)
        if response.status >= 400:
            assert set(response.body) == {"error"}
            if (
                depth == TOO_DEEP
                and body == nested(depth)
                and not BODILESS.search(path)
            ):
                assert response.status == 400, (method, path, response.body)
    assert footprint(db) == before


def test_an_over_deep_event_property_rejects_that_event(api: Any) -> None:
    response = api("POST", "/v1/events", body=field_nested(PARSED_DEPTH).encode())
    assert response.status == 202, response.body
    assert response.body["accepted"] == 0
    assert "deeper" in response.body["rejected"][0]["error"]


def test_an_over_deep_ndjson_line_rejects_that_line(api: Any) -> None:
    good = f'{{"type": "t", "phone": "{PHONE}"}}'
    body = "\n".join([good, nested(TOO_DEEP), good]).encode()
    response = api(
        "POST",
        "/v1/events",
        body=body,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status == 202, response.body
    assert response.body["accepted"] == 2
    assert response.body["rejected"] == [
        {"index": 1, "error": "line is nested too deeply"}
    ]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer t\u00e9st-key",  # non-ASCII: hmac.compare_digest refuses str
        "Bearer \u2603",
        "Bearer \x00",
        "Bearer",
        "Basic dGVzdA==",
        "bearer  ",
    ],
)
def test_malformed_credentials_are_a_401(api: Any, header: str) -> None:
    response = api("GET", "/v1/users", headers={"Authorization": header}, key=None)
    assert response.status == 401, response.body
    assert response.body["error"]["code"] == "unauthenticated"
    assert response.headers.get("WWW-Authenticate") == "Bearer"
