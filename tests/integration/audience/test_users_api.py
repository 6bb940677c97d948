"""Users API on the Firestore emulator: create, list, read, merge, erase, consent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

PHONE = "+14155550100"


def new_user(api: Any, phone: str = PHONE, **fields: Any) -> Any:
    response = api("POST", "/v1/users", json={"phone": phone, **fields})
    assert response.status == 201, response.body
    return response.body


def history(api: Any, phone: str = PHONE, **query: str) -> Any:
    response = api("GET", f"/v1/users/{phone}/consent", query=query)
    assert response.status == 200, response.body
    return response.body


def test_create_normalises_the_phone_and_records_consent(api: Any) -> None:
    body = new_user(
        api,
        "whatsapp:(415) 555-0100",
        attributes={"name": "Ann", "age": 30},
        timezone="America/Los_Angeles",
    )
    assert body["phone"] == PHONE
    assert body["consent"]["state"] == "OPT_IN"
    assert body["suppressed"] is False
    events = history(api)["items"]
    assert [(e["from"], e["to"], e["source"]) for e in events] == [
        (None, "OPT_IN", "api")
    ]


def test_create_twice_is_a_conflict(api: Any) -> None:
    new_user(api)
    again = api("POST", "/v1/users", json={"phone": "+1 415 555 0100"})
    assert again.status == 409
    assert again.body["error"]["code"] == "already_exists"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "12"}, "phone"),
        ({"phone": "sms:+999"}, "phone"),
        ({"phone": PHONE, "nickname": "x"}, "nickname"),
        ({"phone": PHONE, "timezone": "Mars/Olympus"}, "timezone"),
        ({"phone": PHONE, "timezone": "../../etc/passwd"}, "timezone"),
        ({"phone": PHONE, "consent_state": "MAYBE"}, "consent_state"),
        ({"phone": PHONE, "attributes": {"a.b": 1}}, "attributes"),
        ({"phone": PHONE, "attributes": {"n": 2**70}}, "attributes"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    api: Any, db: Any, body: dict[str, Any], field: str
) -> None:
    response = api("POST", "/v1/users", json=body)
    assert response.status == 422, response.body
    details = response.body["error"]["details"]
    assert any(d["field"].startswith(field) for d in details), details
    assert list(db.collection("users").stream()) == []


def test_path_phones_may_be_url_encoded_or_national(api: Any) -> None:
    new_user(api)
    for path_phone in (PHONE, "%2B14155550100", "4155550100"):
        response = api("GET", f"/v1/users/{path_phone}")
        assert response.status == 200, (path_phone, response.body)
        assert response.body["phone"] == PHONE
    assert api("GET", "/v1/users/+14155550199").status == 404
    assert api("GET", "/v1/users/abc").status == 422


def test_patch_merges_attributes_and_null_deletes(api: Any, clock: Any) -> None:
    new_user(api, attributes={"name": "Ann", "city": "Kandy", "tier": "gold"})
    patched = api(
        "PATCH",
        f"/v1/users/{PHONE}",
        json={"attributes": {"city": "Colombo", "tier": None, "age": 41}},
    )
    assert patched.status == 200, patched.body
    expected = {"name": "Ann", "city": "Colombo", "age": 41}
    assert patched.body["attributes"] == expected
    assert api("GET", f"/v1/users/{PHONE}").body["attributes"] == expected
    zone = api("PATCH", f"/v1/users/{PHONE}", json={"timezone": "Asia/Colombo"})
    assert zone.body["timezone"] == "Asia/Colombo"
    assert zone.body["attributes"] == expected


def test_patch_rejects_unknown_fields_and_unknown_users(api: Any) -> None:
    new_user(api)
    unknown = api("PATCH", f"/v1/users/{PHONE}", json={"consent_state": "STOP"})
    assert unknown.status == 422
    bad_zone = api("PATCH", f"/v1/users/{PHONE}", json={"timezone": "Nowhere"})
    assert bad_zone.status == 422
    missing = api("PATCH", "/v1/users/+14155550199", json={"attributes": {"a": 1}})
    assert missing.status == 404


def test_list_filters_by_consent_and_pages(api: Any) -> None:
    phones = [f"+1415555{n:04d}" for n in range(101, 108)]
    for index, phone in enumerate(phones):
        state = "STOP" if index % 3 == 0 else "OPT_IN"
        new_user(api, phone, consent_state=state)
    seen: list[str] = []
    token = None
    while True:
        query = {"limit": "2", "consent_state": "OPT_IN"}
        if token:
            query["page_token"] = token
        page = api("GET", "/v1/users", query=query)
        assert page.status == 200, page.body
        seen += [item["phone"] for item in page.body["items"]]
        token = page.body["next_page_token"]
        if not token:
            break
    assert seen == [p for i, p in enumerate(phones) if i % 3 != 0]
    assert api("GET", "/v1/users", query={"consent_state": "x"}).status == 400
    assert api("GET", "/v1/users", query={"limit": "501"}).status == 400


def test_consent_changes_are_recorded_newest_first_and_paged(
    api: Any, clock: Any
) -> None:
    new_user(api)
    for state in ("STOP", "OPT_IN", "OPT_OUT"):
        clock.now += timedelta(minutes=1)
        response = api(
            "PUT",
            f"/v1/users/{PHONE}/consent",
            json={"state": state, "source": "support", "evidence": f"ticket-{state}"},
        )
        assert response.status == 200, response.body
        assert response.body["consent"]["state"] == state
    first = history(api, limit="2")
    second = history(api, limit="2", page_token=first["next_page_token"])
    assert second["next_page_token"] is None
    events = first["items"] + second["items"]
    assert [e["to"] for e in events] == ["OPT_OUT", "OPT_IN", "STOP", "OPT_IN"]
    assert events[0]["evidence"] == "ticket-OPT_OUT"
    assert events[0]["source"] == "support"
    bad = api("PUT", f"/v1/users/{PHONE}/consent", json={"state": "NO"})
    assert bad.status == 422
    missing = api("PUT", "/v1/users/+14155550199/consent", json={"state": "STOP"})
    assert missing.status == 404


def test_delete_erases_an_opted_in_user_and_its_history(api: Any, db: Any) -> None:
    new_user(api, attributes={"name": "Ann"})
    erased = api("DELETE", f"/v1/users/{PHONE}")
    assert erased.status == 200
    assert erased.body["erased"]["users"] == 1
    assert erased.body["erased"]["consent_events"] == 1
    assert erased.body["suppressed"] is False
    assert PHONE not in erased.body["phone"]
    assert api("GET", f"/v1/users/{PHONE}").status == 404
    assert list(db.collection("users").document(PHONE).collections()) == []
    assert list(db.collection("suppressions").stream()) == []
    assert api("DELETE", f"/v1/users/{PHONE}").status == 404


def test_delete_of_a_stopped_user_keeps_only_a_keyed_suppression_entry(
    api: Any, db: Any
) -> None:
    new_user(api, attributes={"name": "Ann"}, consent_state="STOP")
    erased = api("DELETE", f"/v1/users/{PHONE}")
    assert erased.status == 200 and erased.body["suppressed"] is True
    assert not db.collection("users").document(PHONE).get().exists
    [entry] = list(db.collection("suppressions").stream())
    assert PHONE[1:] not in entry.id and PHONE[1:] not in str(entry.to_dict())
    assert entry.to_dict()["state"] == "STOP"
    assert api("GET", f"/v1/users/{PHONE}").status == 404

    recreated = api(
        "POST",
        "/v1/users",
        json={"phone": PHONE, "attributes": {"name": "Ann"}, "consent_state": "OPT_IN"},
    )
    assert recreated.status == 201, recreated.body
    assert recreated.body["consent"]["state"] == "STOP"
    assert [(e["to"], e["source"]) for e in history(api)["items"]] == [
        ("STOP", "suppression")
    ]


def test_an_opted_out_erased_number_is_not_opted_in_by_post(
    api: Any, clock: Any
) -> None:
    new_user(api, consent_state="OPT_OUT")
    api("DELETE", f"/v1/users/{PHONE}")
    clock.now += timedelta(minutes=1)
    again = new_user(api, consent_state="OPT_IN")
    assert again["consent"]["state"] == "OPT_OUT"
    stricter = api("DELETE", f"/v1/users/{PHONE}")
    assert stricter.status == 200
    stopped = new_user(api, consent_state="STOP")
    assert stopped["consent"]["state"] == "STOP"
    assert [e["to"] for e in history(api)["items"]] == ["STOP", "OPT_OUT"]
