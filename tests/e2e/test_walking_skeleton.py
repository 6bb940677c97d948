"""One campaign through all the functions on the local stack, over HTTP."""

from __future__ import annotations

import pytest
import requests
from twilio.request_validator import RequestValidator

from shared.delivery.messages import message_id_for
from tests.e2e.conftest import Stack, wait_for

pytestmark = pytest.mark.e2e

PHONE = "+14155550100"
OTHER = "+14155550188"  # a sender who is no user


def create_campaign(e2e: Stack, body: str = "Hi {{ name }}") -> str:
    assert (
        e2e.api(
            "POST",
            "/v1/users",
            json={"phone": PHONE, "attributes": {"city": "Colombo", "name": "Ann"}},
        ).status_code
        == 201
    )
    template = e2e.api(
        "POST", "/v1/templates", json={"name": "hi", "body": body}
    ).json()
    segment = e2e.api(
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
    ).json()
    campaign = e2e.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": "demo",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "quiet_hours": None,
        },
    )
    assert campaign.status_code == 201, campaign.text
    return str(campaign.json()["id"])


def message_status(e2e: Stack, campaign_id: str) -> list[str]:
    items = e2e.api("GET", f"/v1/campaigns/{campaign_id}/messages").json()["items"]
    return [item["status"] for item in items]


def test_campaign_reaches_the_simulator_and_ends_delivered(e2e: Stack) -> None:
    campaign_id = create_campaign(e2e)
    launched = e2e.api("POST", f"/v1/campaigns/{campaign_id}/launch")
    assert launched.status_code == 202
    assert launched.json()["status"] == "RUNNING"

    sent = wait_for(e2e.sent_messages)
    assert [(m["to"], m["body"]) for m in sent] == [
        (PHONE, "Hi Ann\nReply STOP to opt out")
    ]
    assert wait_for(lambda: message_status(e2e, campaign_id) == ["DELIVERED"])
    message = e2e.api(
        "GET", f"/v1/messages/{message_id_for(campaign_id, '+14155550100')}"
    ).json()
    assert message["provider_sid"] == sent[0]["sid"]
    assert [entry["step"] for entry in message["audit"]][-2:] == ["claim", "send"]

    def completed() -> bool:
        e2e.tick()
        return (
            e2e.api("GET", f"/v1/campaigns/{campaign_id}").json()["status"]
            == "COMPLETED"
        )

    assert wait_for(completed, timeout=40, interval=1)


def test_inbound_stop_turns_consent_to_stop(e2e: Stack) -> None:
    create_campaign(e2e)
    answer = e2e.sim("POST", "/_sim/inbound", json={"from": PHONE, "body": "  stop "})
    assert answer["status"] == 200
    assert "<Response" in answer["body"]

    def consent_state() -> str:
        return str(e2e.api("GET", f"/v1/users/{PHONE}").json()["consent"]["state"])

    assert wait_for(lambda: consent_state() == "STOP")


def test_scheduled_campaign_is_launched_by_the_scheduler(e2e: Stack) -> None:
    from datetime import UTC, datetime, timedelta

    campaign_id = create_campaign(e2e)
    when = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    launched = e2e.api(
        "POST", f"/v1/campaigns/{campaign_id}/launch", json={"schedule_at": when}
    )
    assert launched.json()["status"] == "SCHEDULED"

    def launched_by_tick() -> bool:
        e2e.tick()
        return e2e.api("GET", f"/v1/campaigns/{campaign_id}").json()["status"] in (
            "RUNNING",
            "COMPLETED",
        )

    assert wait_for(launched_by_tick, timeout=20, interval=1)
    assert wait_for(e2e.sent_messages)


def test_bad_input_is_rejected_and_nothing_is_written(e2e: Stack) -> None:
    anonymous = requests.post(
        e2e.endpoints["api"] + "/v1/users", json={"phone": PHONE}, timeout=10
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    invalid = e2e.api("POST", "/v1/users", json={"phone": "not-a-phone"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "invalid_phone"
    assert e2e.api("GET", f"/v1/users/{PHONE}").status_code == 404

    url = e2e.endpoints["twilio_webhooks"] + "/twilio/inbound"
    params = {"From": PHONE, "Body": "STOP", "MessageSid": "SM" + "1" * 32}
    forged = requests.post(
        url, data=params, headers={"X-Twilio-Signature": "forged"}, timeout=10
    )
    assert forged.status_code == 403
    signature = RequestValidator(e2e.endpoints["twilio_auth_token"]).compute_signature(
        url, params
    )
    tampered = requests.post(
        url,
        data={**params, "Body": "START"},
        headers={"X-Twilio-Signature": signature},
        timeout=10,
    )
    assert tampered.status_code == 403
    # Barrier: a genuine inbound posted after them; once it is processed, the
    # forged ones would have been too (a STOP would also have created the user).
    genuine = e2e.sim("POST", "/_sim/inbound", json={"from": OTHER, "body": "hi"})
    assert genuine["status"] == 200

    def processed() -> bool:
        doc = e2e.firestore().collection("inbound").document(genuine["message_sid"])
        snapshot = doc.get()
        return snapshot.exists and bool((snapshot.to_dict() or {}).get("processed_at"))

    wait_for(processed)
    inbound_ids = {d.id for d in e2e.firestore().collection("inbound").stream()}
    assert params["MessageSid"] not in inbound_ids
    assert e2e.api("GET", f"/v1/users/{PHONE}").status_code == 404
