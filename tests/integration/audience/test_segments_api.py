"""Segments API on the Firestore emulator: CRUD, 422 paths, previews, deletes."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

COLOMBO = {"attribute": "city", "operator": "equals", "value": "Colombo"}


def new_segment(api: Any, definition: dict[str, Any] = COLOMBO, name: str = "s") -> Any:
    response = api(
        "POST", "/v1/segments", json={"name": name, "definition": definition}
    )
    assert response.status == 201, response.body
    return response.body


def add_users(api: Any, *users: tuple[str, str, str]) -> None:
    for phone, city, state in users:
        response = api(
            "POST",
            "/v1/users",
            json={"phone": phone, "attributes": {"city": city}, "consent_state": state},
        )
        assert response.status == 201, response.body


def test_crud(api: Any) -> None:
    created = new_segment(api)
    path = f"/v1/segments/{created['id']}"
    assert api("GET", path).body == created
    replaced = api(
        "PUT",
        path,
        json={"name": "kandy", "definition": {**COLOMBO, "value": "Kandy"}},
    )
    assert replaced.status == 200, replaced.body
    assert api("GET", path).body["definition"]["value"] == "Kandy"
    assert api("GET", path).body["name"] == "kandy"
    assert api("DELETE", path).status == 204
    assert api("GET", path).status == 404
    assert api("DELETE", path).status == 404
    assert api("PUT", path, json={"name": "x", "definition": COLOMBO}).status == 404


def test_list_pages(api: Any) -> None:
    ids = {new_segment(api, name=f"s{i}")["id"] for i in range(5)}
    first = api("GET", "/v1/segments", query={"limit": "3"}).body
    second = api(
        "GET",
        "/v1/segments",
        query={"limit": "3", "page_token": first["next_page_token"]},
    ).body
    assert second["next_page_token"] is None
    assert {s["id"] for s in first["items"] + second["items"]} == ids


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_bad_definition_is_422_with_its_path(api: Any, method: str) -> None:
    definition = {
        "logic": "AND",
        "conditions": [COLOMBO, {"attribute": "age", "operator": "between"}],
    }
    path = "/v1/segments"
    if method == "PUT":
        path = f"/v1/segments/{new_segment(api)['id']}"
    response = api(method, path, json={"name": "bad", "definition": definition})
    assert response.status == 422
    assert response.body["error"]["code"] == "invalid_segment"
    assert response.body["error"]["details"][0]["path"] == "$.conditions[1].operator"
    unknown = api(method, path, json={"name": "x", "definition": COLOMBO, "y": 1})
    assert unknown.status == 422


def test_preview_counts_eligible_and_masks_the_sample(api: Any) -> None:
    add_users(
        api,
        ("+94771234571", "Colombo", "OPT_IN"),
        ("+94771234572", "Colombo", "STOP"),
        ("+94771234573", "Kandy", "OPT_IN"),
        ("+94771234574", "Colombo", "OPT_OUT"),
    )
    stored = new_segment(api)
    for path, body in (
        (f"/v1/segments/{stored['id']}/preview", None),
        ("/v1/segments/preview", {"definition": COLOMBO}),
    ):
        response = api("POST", path, json=body)
        assert response.status == 200, response.body
        assert response.body["count"] == 3
        assert response.body["eligible"] == 1
        sample = response.body["sample"]
        assert {s["phone"] for s in sample} == {
            "+9477***4571",
            "+9477***4572",
            "+9477***4574",
        }
    bad = api(
        "POST",
        "/v1/segments/preview",
        json={"definition": {"not": {"attribute": "city"}}},
    )
    assert bad.status == 422
    assert bad.body["error"]["details"][0]["path"] == "$.not.operator"
    assert api("POST", "/v1/segments/nope/preview").status == 404


def test_the_sample_holds_at_most_ten(api: Any) -> None:
    add_users(
        api, *((f"+1415555{n:04d}", "Colombo", "OPT_IN") for n in range(100, 112))
    )
    response = api("POST", "/v1/segments/preview", json={"definition": COLOMBO})
    assert (response.body["count"], len(response.body["sample"])) == (12, 10)


@pytest.mark.parametrize(
    ("status", "deletable"),
    [
        ("DRAFT", False),
        ("RUNNING", False),
        ("PAUSED", False),
        ("COMPLETED", True),
        ("CANCELLED", True),
        ("FAILED", True),
    ],
)
def test_delete_is_409_while_a_live_campaign_uses_the_segment(
    api: Any, db: Any, status: str, deletable: bool
) -> None:
    segment = new_segment(api)
    db.collection("campaigns").document("c1").set(
        {"name": "c", "segment_id": segment["id"], "status": status}
    )
    db.collection("campaigns").document("c2").set(
        {"name": "other", "segment_id": "another", "status": "RUNNING"}
    )
    response = api("DELETE", f"/v1/segments/{segment['id']}")
    if deletable:
        assert response.status == 204
        return
    assert response.status == 409
    assert response.body["error"]["details"] == [
        {"campaign_id": "c1", "status": status}
    ]
    assert api("GET", f"/v1/segments/{segment['id']}").status == 200


def test_a_stored_definition_that_no_longer_validates_is_422(api: Any, db: Any) -> None:
    db.collection("segments").document("old").set(
        {
            "name": "old",
            "definition": {
                "attribute": "country",
                "operator": "equals",
                "value": "Sri Lanka",
            },
        }
    )
    response = api("POST", "/v1/segments/old/preview")
    assert response.status == 422
    assert response.body["error"]["details"][0]["path"] == "$.value"
