"""The walking-skeleton API path on the Firestore emulator."""

import pytest
from google.api_core import exceptions as gexc
from google.cloud.firestore_v1 import batch

pytestmark = pytest.mark.integration


def test_create_user_template_segment_campaign_and_launch(api, publisher):
    user = api(
        "POST",
        "/v1/users",
        json={
            "phone": "+14155550100",
            "attributes": {"city": "Colombo", "name": "Ann"},
        },
    )
    assert user.status == 201, user.body
    assert user.body["phone"] == "+14155550100"
    template = api(
        "POST", "/v1/templates", json={"name": "hi", "body": "Hi {{ name }}"}
    )
    assert template.status == 201, template.body
    segment = api(
        "POST",
        "/v1/segments",
        json={
            "name": "colombo",
            "definition": {
                "attribute": "city",
                "operator": "equals",
                "value": "Colombo",
            },
        },
    )
    assert segment.status == 201, segment.body
    campaign = api(
        "POST",
        "/v1/campaigns",
        json={
            "name": "c",
            "template_id": template.body["id"],
            "segment_id": segment.body["id"],
        },
    )
    assert campaign.status == 201, campaign.body
    assert campaign.body["status"] == "DRAFT"
    launched = api("POST", f"/v1/campaigns/{campaign.body['id']}/launch")
    assert launched.status == 202, launched.body
    assert launched.body["status"] == "RUNNING"
    assert [p[0] for p in publisher.published] == ["campaign-launches"]
    again = api("POST", f"/v1/campaigns/{campaign.body['id']}/launch")
    assert again.status == 409
    assert again.body["error"]["details"] == [{"current_status": "RUNNING"}]


def test_bad_input_answers_with_error_format_and_writes_nothing(api, db):
    assert api("GET", "/v1/users/+14155550100", key=None).status == 401
    assert api("GET", "/v1/users/+14155550100", key="wrong").status == 401
    bad = api("POST", "/v1/users", json={"phone": "12"})
    assert bad.status == 422
    assert bad.body["error"]["code"] == "invalid_phone"
    assert list(db.collection("users").stream()) == []
    broken = api("POST", "/v1/users", body=b"{not json")
    assert broken.status == 400
    assert broken.body["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("error", [gexc.Aborted, gexc.ServiceUnavailable])
def test_a_transient_datastore_error_is_a_503_to_retry(api, db, monkeypatch, error):
    def refuse(self, *args, **kwargs):
        raise error("contention")

    monkeypatch.setattr(batch.WriteBatch, "commit", refuse)
    refused = api("POST", "/v1/templates", json={"name": "hi", "body": "Hi"})
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.body["error"]["code"] == "unavailable"
    monkeypatch.undo()
    retried = api("POST", "/v1/templates", json={"name": "hi", "body": "Hi"})
    assert retried.status == 201
    assert len(list(db.collection("templates").stream())) == 1
