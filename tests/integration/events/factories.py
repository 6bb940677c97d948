"""Factories for the events tests: users and triggered campaigns via the API."""

from __future__ import annotations

from typing import Any

PHONE = "+14155550100"


def add_user(api: Any, phone: str = PHONE, **fields: Any) -> None:
    body = {"phone": phone, "attributes": {"name": "Pat", "city": "Colombo"}}
    response = api("POST", "/v1/users", json={**body, **fields})
    assert response.status == 201, response.body


def triggered_campaign(
    api: Any,
    event: str = "order.shipped",
    body: str = "Order {{ event.properties.order_id }} shipped, {{ name }}",
    launch: bool = True,
    where: dict[str, Any] | None = None,
    **settings: Any,
) -> str:
    template = api("POST", "/v1/templates", json={"name": "t", "body": body})
    assert template.status == 201, template.body
    created = api(
        "POST",
        "/v1/campaigns",
        json={
            "name": f"on {event}",
            "template_id": template.body["id"],
            "trigger": {"event": event, "where": where},
            "quiet_hours": None,
            **settings,
        },
    )
    assert created.status == 201, created.body
    campaign_id = str(created.body["id"])
    if launch:
        launched = api("POST", f"/v1/campaigns/{campaign_id}/launch")
        assert launched.status == 202, launched.body
        assert launched.body["status"] == "ACTIVE"
    return campaign_id


def add_segment(api: Any, definition: dict[str, Any]) -> str:
    response = api("POST", "/v1/segments", json={"name": "s", "definition": definition})
    assert response.status == 201, response.body
    return str(response.body["id"])
