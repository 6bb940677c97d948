"""Templates API on the Firestore emulator: CRUD, previews and bad input."""

from datetime import timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

PHONE = "+14155550100"
CONTENT_SID = "HX" + "0123456789abcdef" * 2


def make_template(**overrides: Any) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": "welcome",
        "body": 'Hi {{ name | default: "there" }}, welcome to {{ city }}',
    }
    template.update(overrides)
    return template


def make_whatsapp_template(**overrides: Any) -> dict[str, Any]:
    whatsapp: dict[str, Any] = {
        "channel": "whatsapp",
        "content_sid": CONTENT_SID,
        "content_variables": {"1": "{{ name }}", "2": "{{ order.id }}"},
    }
    return make_template(**{**whatsapp, **overrides})


def create_template(api: Any, **fields: Any) -> dict[str, Any]:
    response = api("POST", "/v1/templates", json=make_template(**fields))
    assert response.status == 201, response.body
    body: dict[str, Any] = response.body
    return body


def create_draft_campaign(api: Any, template_id: str) -> dict[str, Any]:
    segment = api(
        "POST",
        "/v1/segments",
        json={
            "name": "in X",
            "definition": {"attribute": "city", "operator": "equals", "value": "X"},
        },
    )
    assert segment.status == 201, segment.body
    campaign = api(
        "POST",
        "/v1/campaigns",
        json={
            "name": "launch",
            "template_id": template_id,
            "segment_id": segment.body["id"],
        },
    )
    assert campaign.status == 201, campaign.body
    body: dict[str, Any] = campaign.body
    return body


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.body["error"]
    return error


# --- create and read ------------------------------------------------------------


def test_create_then_read_shows_variables_encoding_and_segments(api, clock):
    created = create_template(api)
    assert created["variables"] == ["city", "name"]
    assert created["channel"] == "sms"
    assert created["encoding"] == "GSM7"
    assert created["segments"] == 1
    written_at = clock.now.isoformat().replace("+00:00", "Z")
    assert created["created_at"] == created["updated_at"] == written_at
    read = api("GET", f"/v1/templates/{created['id']}")
    assert read.status == 200
    assert read.body == created


def test_variables_leave_out_what_the_template_defines_itself(api):
    created = create_template(
        api,
        body="{% assign greeting = 'Hi' %}{{ greeting }} {{ address.city }}: "
        "{% for item in items %}{{ item.sku }} {% endfor %}{{ now | date: '%Y' }}",
    )
    assert created["variables"] == ["address.city", "items"]


# (body, encoding, segments) as written, before any rendering
ENCODING_CASES = [
    pytest.param("a" * 160, "GSM7", 1, id="gsm7-single"),
    pytest.param("a" * 161, "GSM7", 2, id="gsm7-two-parts"),
    pytest.param("€" * 80, "GSM7", 1, id="gsm7-extension-counts-two"),
    pytest.param("€" * 81, "GSM7", 2, id="gsm7-extension-over"),
    pytest.param("ç" * 70, "UCS2", 1, id="ucs2-single"),
    pytest.param("Привет " * 10 + "!", "UCS2", 2, id="ucs2-two-parts"),
]


@pytest.mark.parametrize(("body", "encoding", "segments"), ENCODING_CASES)
def test_encoding_and_segments_of_the_body_as_written(api, body, encoding, segments):
    created = create_template(api, body=body)
    assert (created["encoding"], created["segments"]) == (encoding, segments)


def test_whatsapp_content_template_needs_no_body(api):
    created = create_template(api, **make_whatsapp_template(body="", name="shipped"))
    assert created["content_sid"] == CONTENT_SID
    assert created["content_variables"] == {"1": "{{ name }}", "2": "{{ order.id }}"}
    assert created["variables"] == ["name", "order.id"]


# --- syntax errors and bad input ------------------------------------------------


def test_a_template_that_does_not_parse_is_422_with_its_line(api, db):
    response = api(
        "POST", "/v1/templates", json=make_template(body="Hi\nthere {{ name ")
    )
    assert response.status == 422
    error = error_of(response)
    assert error["code"] == "template_syntax"
    assert error["details"] == [
        {"field": "body", "line": 2, "error": "expected '}}', found end of file"}
    ]
    assert list(db.collection("templates").stream()) == []


def test_an_unknown_filter_is_a_syntax_error(api):
    response = api(
        "POST", "/v1/templates", json=make_template(body="Hi\n\n{{ name | shout }}")
    )
    assert response.status == 422
    assert error_of(response)["details"][0]["line"] == 3


def test_a_content_variable_that_does_not_parse_names_its_placeholder(api):
    response = api(
        "POST",
        "/v1/templates",
        json=make_whatsapp_template(content_variables={"1": "{% if name %}"}),
    )
    assert response.status == 422
    detail = error_of(response)["details"][0]
    assert detail["field"] == "content_variables.1"
    assert detail["line"] == 1


# (request body, status, error code)
BAD_CREATES = [
    pytest.param(b"{not json", 400, "invalid_json", id="not-json"),
    pytest.param(b"", 400, "invalid_json", id="no-body"),
    pytest.param(b"[]", 422, "validation_failed", id="not-an-object"),
    pytest.param(
        make_template(colour="red"), 422, "validation_failed", id="unknown-field"
    ),
    pytest.param(
        make_template(body="a" * 4097), 422, "validation_failed", id="body-too-long"
    ),
    pytest.param(make_template(body=" "), 422, "validation_failed", id="blank-body"),
    pytest.param(make_template(name=""), 422, "validation_failed", id="no-name"),
    pytest.param(
        make_template(channel="email"), 422, "validation_failed", id="bad-channel"
    ),
    pytest.param(
        make_template(content_sid=CONTENT_SID),
        422,
        "validation_failed",
        id="content-sid-on-sms",
    ),
]


@pytest.mark.parametrize(("payload", "status", "code"), BAD_CREATES)
def test_bad_input_is_rejected_and_writes_nothing(api, db, payload, status, code):
    if isinstance(payload, bytes):
        response = api("POST", "/v1/templates", body=payload)
    else:
        response = api("POST", "/v1/templates", json=payload)
    assert response.status == status, response.body
    assert error_of(response)["code"] == code
    assert list(db.collection("templates").stream()) == []


@pytest.mark.parametrize("template_id", ["missing", "..", "__x__", "x" * 200])
@pytest.mark.parametrize(
    ("method", "suffix", "payload"),
    [
        ("GET", "", None),
        ("PUT", "", make_template()),
        ("DELETE", "", None),
        ("POST", "/render", {"attributes": {}}),
    ],
)
def test_an_unknown_id_is_404(api, template_id, method, suffix, payload):
    response = api(method, f"/v1/templates/{template_id}{suffix}", json=payload)
    assert response.status == 404, response.body
    assert error_of(response)["code"] == "not_found"


# --- replace --------------------------------------------------------------------


def test_put_replaces_fields_rederives_variables_and_keeps_created_at(api, clock):
    created = create_template(api, **make_whatsapp_template())
    clock.now += timedelta(hours=1)
    replaced = api(
        "PUT",
        f"/v1/templates/{created['id']}",
        json={"name": "renamed", "body": "Your code is {{ code }}"},
    )
    assert replaced.status == 200, replaced.body
    body = replaced.body
    assert body["name"] == "renamed"
    assert body["channel"] == "sms"
    assert body["content_sid"] is None
    assert body["content_variables"] is None
    assert body["variables"] == ["code"]
    assert body["created_at"] == created["created_at"]
    assert body["updated_at"] != created["updated_at"]
    assert api("GET", f"/v1/templates/{created['id']}").body == body


def test_put_with_a_syntax_error_changes_nothing(api):
    created = create_template(api)
    response = api(
        "PUT", f"/v1/templates/{created['id']}", json=make_template(body="{{ x")
    )
    assert response.status == 422
    assert error_of(response)["code"] == "template_syntax"
    assert api("GET", f"/v1/templates/{created['id']}").body == created


def test_put_with_unknown_fields_is_422(api):
    created = create_template(api)
    response = api(
        "PUT", f"/v1/templates/{created['id']}", json=make_template(id="other")
    )
    assert response.status == 422


# --- delete ---------------------------------------------------------------------


def test_delete_is_409_while_a_draft_campaign_uses_it_and_204_once_cancelled(api):
    template = create_template(api)
    campaign = create_draft_campaign(api, template["id"])
    in_use = api("DELETE", f"/v1/templates/{template['id']}")
    assert in_use.status == 409
    assert error_of(in_use)["code"] == "template_in_use"
    assert error_of(in_use)["details"] == [{"campaign_id": campaign["id"]}]
    assert api("GET", f"/v1/templates/{template['id']}").status == 200

    cancelled = api("POST", f"/v1/campaigns/{campaign['id']}/cancel")
    assert cancelled.status == 200, cancelled.body
    deleted = api("DELETE", f"/v1/templates/{template['id']}")
    assert deleted.status == 204
    assert api("GET", f"/v1/templates/{template['id']}").status == 404
    assert api("DELETE", f"/v1/templates/{template['id']}").status == 404


def test_campaigns_of_other_templates_do_not_block_a_delete(api):
    used = create_template(api, name="used")
    unused = create_template(api, name="unused")
    create_draft_campaign(api, used["id"])
    assert api("DELETE", f"/v1/templates/{unused['id']}").status == 204


# --- list -----------------------------------------------------------------------


def test_list_pages_through_every_template(api):
    ids = {create_template(api, name=f"t{n}")["id"] for n in range(5)}
    first = api("GET", "/v1/templates", query={"limit": "2"})
    assert first.status == 200
    assert len(first.body["items"]) == 2
    seen = [item["id"] for item in first.body["items"]]
    token = first.body["next_page_token"]
    while token:
        page = api("GET", "/v1/templates", query={"limit": "2", "page_token": token})
        assert page.status == 200
        seen.extend(item["id"] for item in page.body["items"])
        token = page.body["next_page_token"]
    assert sorted(seen) == sorted(ids)
    assert all("segments" in item for item in first.body["items"])


def test_list_rejects_a_bad_limit(api):
    assert api("GET", "/v1/templates", query={"limit": "501"}).status == 400
    assert api("GET", "/v1/templates", query={"limit": "x"}).status == 400


# --- render ---------------------------------------------------------------------


def render(api: Any, template_id: str, **payload: Any) -> Any:
    return api("POST", f"/v1/templates/{template_id}/render", json=payload)


def test_render_with_attributes(api):
    template = create_template(api)
    response = render(api, template["id"], attributes={"name": "Ann", "city": "Kandy"})
    assert response.status == 200, response.body
    assert response.body == {
        "body": "Hi Ann, welcome to Kandy",
        "encoding": "GSM7",
        "segments": 1,
        "characters": 24,
        "missing_variables": [],
    }


def test_render_lists_missing_variables(api):
    template = create_template(api, body="{{ name }} in {{ city }}: {{ code }}")
    response = render(api, template["id"], attributes={"name": "Ann", "city": " "})
    assert response.status == 200
    assert response.body["body"] == "Ann in : "
    assert response.body["missing_variables"] == ["city", "code"]


def test_render_counts_the_rendered_text(api):
    template = create_template(api, body="{{ greeting }} {{ name }}")
    response = render(
        api, template["id"], attributes={"greeting": "Привет", "name": "a" * 70}
    )
    assert response.body["encoding"] == "UCS2"
    assert response.body["characters"] == 77
    assert response.body["segments"] == 2


def test_render_for_a_stored_user_by_phone(api):
    user = api(
        "POST",
        "/v1/users",
        json={"phone": PHONE, "attributes": {"name": "Ann", "city": "Colombo"}},
    )
    assert user.status == 201, user.body
    template = create_template(api, body="Hi {{ name }} in {{ city }} ({{ phone }})")
    response = render(api, template["id"], phone="(415) 555-0100")
    assert response.status == 200, response.body
    assert response.body["body"] == f"Hi Ann in Colombo ({PHONE})"
    assert response.body["missing_variables"] == []


def test_render_with_attributes_takes_phone_from_them(api):
    template = create_template(api, body="Reply to {{ phone }}")
    with_phone = render(api, template["id"], attributes={"phone": PHONE})
    assert with_phone.body["body"] == f"Reply to {PHONE}"
    without = render(api, template["id"], attributes={})
    assert without.body["missing_variables"] == ["phone"]


def test_render_sees_the_triggering_event(api):
    template = create_template(
        api, body="Thanks {{ name }}, your {{ event.properties.total }} order"
    )
    response = render(
        api,
        template["id"],
        attributes={"name": "Ann"},
        event={"type": "order_placed", "properties": {"total": 120}},
    )
    assert response.body["body"] == "Thanks Ann, your 120 order"
    assert response.body["missing_variables"] == []


def test_render_of_a_whatsapp_template_gives_content_variables(api):
    template = create_template(
        api, **make_whatsapp_template(body="Hi {{ name }}, order {{ order.id }}")
    )
    response = render(api, template["id"], attributes={"name": "Ann"})
    assert response.status == 200, response.body
    assert response.body["content_variables"] == {"1": "Ann", "2": ""}
    assert response.body["body"] == "Hi Ann, order "
    assert response.body["missing_variables"] == ["order.id"]


# (payload, status, error code)
BAD_RENDERS = [
    pytest.param({"phone": "+14155550199"}, 404, "not_found", id="unknown-user"),
    pytest.param({"phone": "12"}, 422, "invalid_phone", id="invalid-phone"),
    pytest.param({}, 422, "validation_failed", id="no-recipient"),
    pytest.param(
        {"phone": PHONE, "attributes": {}},
        422,
        "validation_failed",
        id="both-recipients",
    ),
    pytest.param(
        {"attributes": {}, "extra": 1}, 422, "validation_failed", id="unknown-field"
    ),
    pytest.param({"attributes": []}, 422, "validation_failed", id="bad-attributes"),
    pytest.param({"phone": ""}, 422, "validation_failed", id="empty-phone"),
]


@pytest.mark.parametrize(("payload", "status", "code"), BAD_RENDERS)
def test_render_rejects_bad_input(api, payload, status, code):
    template = create_template(api)
    response = render(api, template["id"], **payload)
    assert response.status == status, response.body
    assert error_of(response)["code"] == code


def test_render_of_non_json_is_400(api):
    template = create_template(api)
    response = api("POST", f"/v1/templates/{template['id']}/render", body=b"nope")
    assert response.status == 400


def test_a_render_failure_is_422_not_500(api):
    template = create_template(api, body="{{ total | divided_by: count }}")
    response = render(api, template["id"], attributes={"total": 5, "count": 0})
    assert response.status == 422
    assert error_of(response)["code"] == "template_render"
