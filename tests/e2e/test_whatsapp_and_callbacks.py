"""WhatsApp through the strict simulator, and a status callback answered 503.

WhatsApp: both addresses carry `whatsapp:`; a free-form message goes only
inside the 24-hour window that the user's last inbound opened; an approved
content template goes at any time; a free-form message outside the window is
SKIPPED(`whatsapp_window_closed`) and never reaches Twilio (which would fail
it with 63016). The simulator reports `read` here, which maps to READ.

Callbacks: the simulator retries a callback only as the StatusCallback URL's
connection overrides allow, as Twilio does; the engine asks for retries on a
5xx, so a receipt answered 503 once still lands.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.delivery.messages import message_id_for
from tests.e2e.conftest import Stack, city_segment, wait_for

pytestmark = pytest.mark.e2e

WHATSAPP_SENDER = "whatsapp:+14155238886"
CONTENT_SID = "HX" + "e" * 32
INSIDE, OUTSIDE_FREE_FORM, OUTSIDE_TEMPLATE = (
    "+14155550171",
    "+14155550172",
    "+14155550173",
)


def add_user(e2e: Stack, phone: str, city: str) -> None:
    body = {"phone": phone, "attributes": {"city": city, "name": "Ann"}}
    response = e2e.api("POST", "/v1/users", json=body)
    assert response.status_code == 201, response.text


def template(e2e: Stack, **fields: Any) -> str:
    response = e2e.api("POST", "/v1/templates", json={"name": "wa", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def launch_campaign(e2e: Stack, city: str, template_id: str, **settings: Any) -> str:
    body = {
        "name": f"campaign {city}",
        "template_id": template_id,
        "segment_id": city_segment(e2e, city),
        "quiet_hours": None,
        **settings,
    }
    response = e2e.api("POST", "/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    campaign_id = str(response.json()["id"])
    launched = e2e.api("POST", f"/v1/campaigns/{campaign_id}/launch")
    assert launched.status_code == 202, launched.text
    return campaign_id


def message(e2e: Stack, campaign_id: str, phone: str) -> dict[str, Any]:
    response = e2e.api("GET", f"/v1/messages/{message_id_for(campaign_id, phone)}")
    return dict(response.json()) if response.status_code == 200 else {}


def final(e2e: Stack, campaign_id: str, phone: str, status: str) -> dict[str, Any]:
    found = message(e2e, campaign_id, phone)
    return found if found.get("status") == status else {}


def test_whatsapp_window_free_form_content_template_and_read(e2e: Stack) -> None:
    e2e.sim(
        "POST",
        "/_sim/config",
        json={"callback_statuses": ["queued", "sent", "delivered", "read"]},
    )
    for phone, city in (
        (INSIDE, "Freeform"),
        (OUTSIDE_FREE_FORM, "Freeform"),
        (OUTSIDE_TEMPLATE, "Templated"),
    ):
        add_user(e2e, phone, city)
    # The user inside the window wrote to the WhatsApp number a moment ago.
    answer = e2e.sim(
        "POST",
        "/_sim/inbound",
        json={"from": f"whatsapp:{INSIDE}", "to": WHATSAPP_SENDER, "body": "hi"},
    )
    assert answer["status"] == 200, answer
    wait_for(lambda: e2e.api("GET", f"/v1/users/{INSIDE}").json()["last_inbound_at"])

    sender = {"sender": {"from": WHATSAPP_SENDER}}
    free_form = template(e2e, channel="whatsapp", body="Hi {{ name }}, thanks!")
    content = template(
        e2e,
        channel="whatsapp",
        body="",
        content_sid=CONTENT_SID,
        content_variables={"1": "{{ name }}"},
    )
    chat = launch_campaign(e2e, "Freeform", free_form, **sender)
    notice = launch_campaign(e2e, "Templated", content, **sender)

    inside = wait_for(lambda: final(e2e, chat, INSIDE, "READ"), timeout=60)
    templated = wait_for(lambda: final(e2e, notice, OUTSIDE_TEMPLATE, "READ"), 60)
    skipped = wait_for(lambda: final(e2e, chat, OUTSIDE_FREE_FORM, "SKIPPED"), 60)

    assert skipped["skip_reason"] == "whatsapp_window_closed"
    assert {"step": "whatsapp_window", "outcome": "skip"}.items() <= (
        skipped["audit"][-1].items()
    )
    assert [r["params"]["MessageStatus"] for r in inside["receipts"]][-1] == "read"
    assert templated["content_sid"] == CONTENT_SID
    sent = {m["to"]: m for m in e2e.sent_messages()}
    assert set(sent) == {f"whatsapp:{INSIDE}", f"whatsapp:{OUTSIDE_TEMPLATE}"}
    assert {m["from"] for m in sent.values()} == {WHATSAPP_SENDER}
    assert sent[f"whatsapp:{INSIDE}"]["body"] == "Hi Ann, thanks!"
    assert sent[f"whatsapp:{INSIDE}"]["content_sid"] is None
    by_template = sent[f"whatsapp:{OUTSIDE_TEMPLATE}"]
    assert by_template["content_sid"] == CONTENT_SID
    assert by_template["content_variables"] == '{"1": "Ann"}'
    rejected = e2e.sim("GET", "/_sim/messages")["rejected"]
    assert rejected == []
    summary = e2e.api("GET", f"/v1/campaigns/{chat}/summary").json()
    assert summary["skips"] == {"whatsapp_window_closed": 1}


def test_a_status_callback_answered_503_once_still_lands(e2e: Stack) -> None:
    # One callback, and its first delivery attempt answered 503: only a retry
    # that the URL's connection overrides ask for can bring the receipt in.
    e2e.sim(
        "POST",
        "/_sim/config",
        json={"callback_statuses": ["delivered"], "callback_answer_503_next": 1},
    )
    add_user(e2e, "+14155550181", "Retryton")
    campaign_id = launch_campaign(e2e, "Retryton", template(e2e, body="Hi {{ name }}"))

    delivered = wait_for(
        lambda: final(e2e, campaign_id, "+14155550181", "DELIVERED"), timeout=60
    )

    assert [r["params"]["MessageStatus"] for r in delivered["receipts"]] == [
        "delivered"
    ]
    stats = e2e.sim("GET", "/_sim/stats")
    assert (stats["callbacks_answered_503"], stats["callbacks_retried"]) == (1, 1)
    assert "#" in e2e.sent_messages()[0]["status_callback"]
