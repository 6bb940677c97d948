"""Twilio webhooks on the local stack: signed by the simulator, end to end.

Status callbacks go simulator → twilio_webhooks → Firestore (or, without a
message id or when that write fails, → Pub/Sub → receipt_updater → Firestore);
inbound messages go simulator → twilio_webhooks → Pub/Sub → inbound_processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from twilio.request_validator import RequestValidator

from shared.delivery.messages import message_id_for
from tests.e2e.conftest import Stack, wait_for

pytestmark = pytest.mark.e2e

PHONES = ["+14155550101", "+14155550102", "+14155550103"]
KNOWN = PHONES[0]


def add_user(e2e: Stack, phone: str) -> None:
    response = e2e.api(
        "POST", "/v1/users", json={"phone": phone, "attributes": {"group": "hooks"}}
    )
    assert response.status_code == 201, response.text


def launch_campaign(e2e: Stack, phones: list[str]) -> str:
    for phone in phones:
        add_user(e2e, phone)
    template = e2e.api("POST", "/v1/templates", json={"name": "t", "body": "Hi"}).json()
    segment = e2e.api(
        "POST",
        "/v1/segments",
        json={
            "name": "hooks",
            "definition": {
                "attribute": "group",
                "operator": "equals",
                "value": "hooks",
            },
        },
    ).json()
    campaign = e2e.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": "webhooks",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "quiet_hours": None,
        },
    ).json()
    assert e2e.api("POST", f"/v1/campaigns/{campaign['id']}/launch").status_code == 202
    return str(campaign["id"])


def message_id(campaign_id: str, phone: str) -> str:
    return message_id_for(campaign_id, phone)


def message(e2e: Stack, campaign_id: str, phone: str) -> dict[str, Any]:
    response = e2e.api("GET", f"/v1/messages/{message_id(campaign_id, phone)}")
    return dict(response.json())


def receipt_statuses(msg: dict[str, Any]) -> list[str]:
    return [r["params"]["MessageStatus"] for r in msg.get("receipts") or []]


def statuses_seen(e2e: Stack, campaign_id: str, phone: str) -> list[str]:
    return receipt_statuses(message(e2e, campaign_id, phone))


def post_callback(e2e: Stack, sid: str, status: str, **extra: Any) -> None:
    answer = e2e.sim(
        "POST", "/_sim/callbacks", json={"sid": sid, "status": status, **extra}
    )
    assert answer["status"] == 204, answer


def post_inbound(e2e: Stack, body: str, sender: str = KNOWN, **extra: Any) -> str:
    answer = e2e.sim(
        "POST", "/_sim/inbound", json={"from": sender, "body": body, **extra}
    )
    assert answer["status"] == 200, answer
    assert "<Response/>" in answer["body"]
    return str(answer["message_sid"])


def inbound_doc(e2e: Stack, sid: str) -> dict[str, Any] | None:
    snapshot = e2e.firestore().collection("inbound").document(sid).get()
    return snapshot.to_dict() if snapshot.exists else None


def processed(e2e: Stack, sid: str) -> dict[str, Any] | None:
    doc = inbound_doc(e2e, sid)
    return doc if doc and doc.get("processed_at") else None


def consent(e2e: Stack, phone: str = KNOWN) -> str | None:
    response = e2e.api("GET", f"/v1/users/{phone}")
    return response.json()["consent"]["state"] if response.status_code == 200 else None


def keyword_events(e2e: Stack, phone: str = KNOWN) -> list[dict[str, Any]]:
    """The user's consent history written by inbound keywords, oldest first."""
    ref = e2e.firestore().collection("users").document(phone)
    events = [e.to_dict() for e in ref.collection("consent_events").stream()]
    return sorted(
        (e for e in events if e["source"] == "keyword"), key=lambda e: e["at"]
    )


def function_log(e2e: Stack, name: str) -> Path:
    """Where the stack writes a function's log."""
    return Path(e2e.endpoints["state_dir"]) / "logs" / f"{name}.log"


def log_count(e2e: Stack, name: str, text: str) -> int:
    path = function_log(e2e, name)
    return path.read_text(errors="replace").count(text) if path.exists() else 0


# --- status callbacks ------------------------------------------------------------


def test_out_of_order_and_duplicate_callbacks_never_move_a_status_back(
    e2e: Stack,
) -> None:
    # Only `queued` comes by itself; the test posts every other callback.
    e2e.sim("POST", "/_sim/config", json={"callback_statuses": ["queued"]})
    campaign_id = launch_campaign(e2e, PHONES)
    sent = wait_for(lambda: len(e2e.sent_messages()) == 3 and e2e.sent_messages())
    sid_of = {m["to"]: m["sid"] for m in sent}
    for phone in PHONES:
        wait_for(lambda p=phone: statuses_seen(e2e, campaign_id, p))

    # (phone, first callback, its extra fields, the late one, the final status)
    pairs = [
        (PHONES[0], "delivered", {}, "sending", "DELIVERED"),
        (PHONES[1], "sent", {}, "queued", "SENT"),
        (PHONES[2], "undelivered", {"error_code": 30003}, "delivered", "DELIVERED"),
    ]
    for phone, first, extra, _, _ in pairs:
        post_callback(e2e, sid_of[phone], first, **extra)
    for phone, first, _, late, _ in pairs:
        wait_for(lambda p=phone, s=first: s in statuses_seen(e2e, campaign_id, p))
        post_callback(e2e, sid_of[phone], late)
        post_callback(e2e, sid_of[phone], late)  # a duplicate, answered alike
    for phone, first, _, late, final in pairs:
        wait_for(lambda p=phone, s=late: s in statuses_seen(e2e, campaign_id, p))
        msg = message(e2e, campaign_id, phone)
        assert msg["status"] == final, (phone, msg)
        assert msg["provider_sid"] == sid_of[phone]
        assert sorted(receipt_statuses(msg)) == sorted({"queued", first, late})
    assert message(e2e, campaign_id, PHONES[2])["error_code"] == "30003"


def test_simulated_reordered_duplicated_callbacks_end_delivered(e2e: Stack) -> None:
    e2e.sim(
        "POST",
        "/_sim/config",
        json={"reorder_callbacks": True, "duplicate_callbacks": True},
    )
    campaign_id = launch_campaign(e2e, [KNOWN])
    wait_for(lambda: e2e.sim("GET", "/_sim/stats")["callbacks_sent"] == 6)
    msg = wait_for(
        lambda: (
            (m := message(e2e, campaign_id, KNOWN))
            and len(receipt_statuses(m)) == 3
            and m
        )
    )
    assert msg["status"] == "DELIVERED"
    assert sorted(receipt_statuses(msg)) == ["delivered", "queued", "sent"]


def test_forged_tampered_and_unsigned_webhooks_change_nothing(e2e: Stack) -> None:
    add_user(e2e, KNOWN)
    base = e2e.endpoints["twilio_webhooks"]
    validator = RequestValidator(e2e.endpoints["twilio_auth_token"])
    inbound = {
        "From": KNOWN,
        "To": "+15005550006",
        "Body": "STOP",
        "MessageSid": "SMforged1",
    }
    status = {"MessageSid": "SMforged2", "MessageStatus": "delivered", "To": KNOWN}
    status_url = f"{base}/twilio/status?message_id=x_1"
    attempts = [
        (f"{base}/twilio/inbound", inbound, "forged"),
        (f"{base}/twilio/inbound", inbound, None),
        (
            f"{base}/twilio/inbound",
            {**inbound, "Body": "START"},
            validator.compute_signature(f"{base}/twilio/inbound", inbound),
        ),
        (
            f"{base}/twilio/inbound",
            inbound,
            validator.compute_signature(
                "https://elsewhere.example/twilio/inbound", inbound
            ),
        ),
        (
            status_url,
            status,
            validator.compute_signature(f"{base}/twilio/status", status),
        ),
        (
            status_url,
            {**status, "MessageStatus": "failed"},
            validator.compute_signature(status_url, status),
        ),
    ]
    for url, params, signature in attempts:
        headers = {"X-Twilio-Signature": signature} if signature else {}
        answer = requests.post(url, data=params, headers=headers, timeout=10)
        assert answer.status_code == 403, (url, params)
    assert requests.get(f"{base}/twilio/status", timeout=10).status_code == 405

    # Genuine messages afterwards, on both paths: once they are stored, the
    # forged ones would have been too. Assertions are about this test's own
    # ids only: a late callback of an earlier test may land at any time.
    barrier = post_inbound(e2e, "hello")
    barrier_status = {"MessageSid": "SMbarrier2", "MessageStatus": "delivered"}
    genuine = requests.post(
        f"{base}/twilio/status",
        data=barrier_status,
        headers={
            "X-Twilio-Signature": validator.compute_signature(
                f"{base}/twilio/status", barrier_status
            )
        },
        timeout=10,
    )
    assert genuine.status_code == 204, genuine.text
    wait_for(lambda: processed(e2e, barrier))
    wait_for(lambda: receipts_of(e2e, "SMbarrier2"))
    inbound_ids = {d.id for d in e2e.firestore().collection("inbound").stream()}
    assert barrier in inbound_ids
    assert "SMforged1" not in inbound_ids
    assert receipts_of(e2e, "SMforged2") == []
    assert consent(e2e) == "OPT_IN"


def receipts_of(e2e: Stack, sid: str) -> list[dict[str, Any]]:
    """Stored unmatched status callbacks of one MessageSid."""
    from google.cloud import firestore

    query = (
        e2e.firestore()
        .collection("receipts")
        .where(filter=firestore.FieldFilter("params.MessageSid", "==", sid))
    )
    return [d.to_dict() or {} for d in query.stream()]


# --- inbound -----------------------------------------------------------------------


def test_keywords_change_consent_and_everything_is_stored(e2e: Stack) -> None:
    add_user(e2e, KNOWN)
    expectations = [
        ("  stop ", "STOP", "STOP"),
        ("Stop please", "REPLY", "STOP"),
        ("sTaRt", "START", "OPT_IN"),
        ("HELP", "HELP", "OPT_IN"),
        ("Unsubscribe", "STOP", "STOP"),
        ("yes", "START", "OPT_IN"),
    ]
    sids = []
    for body, classification, state in expectations:
        sid = post_inbound(e2e, body)
        doc = wait_for(lambda s=sid: processed(e2e, s))
        assert doc["classification"] == classification, body
        assert consent(e2e) == state, body
        sids.append(sid)
    events = keyword_events(e2e)
    assert [(e["to"], e["evidence"]) for e in events] == [
        ("STOP", sids[0]),
        ("OPT_IN", sids[2]),
        ("STOP", sids[4]),
        ("OPT_IN", sids[5]),
    ]
    user = e2e.api("GET", f"/v1/users/{KNOWN}").json()
    assert user["last_inbound_at"]
    assert e2e.sent_messages() == []  # HELP and confirmations are off here


def test_opt_out_type_wins_over_the_body(e2e: Stack) -> None:
    add_user(e2e, KNOWN)
    sid = post_inbound(e2e, "Arrêt", opt_out_type="STOP")
    assert wait_for(lambda: processed(e2e, sid))["classification"] == "STOP"
    assert consent(e2e) == "STOP"


def test_unknown_senders(e2e: Stack) -> None:
    stopper, chatter = PHONES[1], PHONES[2]
    stop_sid = post_inbound(e2e, "STOP", sender=stopper)
    chat_sid = post_inbound(e2e, "hello there", sender=chatter)
    wait_for(lambda: processed(e2e, stop_sid) and processed(e2e, chat_sid))
    assert consent(e2e, stopper) == "STOP"
    assert [e["evidence"] for e in keyword_events(e2e, stopper)] == [stop_sid]
    assert consent(e2e, chatter) is None
    assert inbound_doc(e2e, chat_sid)["classification"] == "REPLY"


def test_a_redelivered_inbound_is_harmless(e2e: Stack) -> None:
    add_user(e2e, KNOWN)
    ignored = "inbound redelivery ignored"
    before = log_count(e2e, "inbound_processor", ignored)
    sid = "SM" + "d" * 32
    assert post_inbound(e2e, "STOP", message_sid=sid) == sid
    wait_for(lambda: processed(e2e, sid))
    assert post_inbound(e2e, "STOP", message_sid=sid) == sid
    wait_for(lambda: log_count(e2e, "inbound_processor", ignored) > before)
    assert len(keyword_events(e2e)) == 1
    assert [d.id for d in e2e.firestore().collection("inbound").stream()] == [sid]
