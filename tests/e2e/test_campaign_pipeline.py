"""The campaign pipeline end to end: lifecycle, pacing, compliance, retries."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.delivery.messages import message_id_for
from tests.e2e.conftest import Stack, city_segment, wait_for

pytestmark = pytest.mark.e2e


def add_users(e2e: Stack, phones: list[str], city: str, **extra: Any) -> None:
    for phone in phones:
        body = {"phone": phone, "attributes": {"city": city, "name": "Pat"}, **extra}
        response = e2e.api("POST", "/v1/users", json=body)
        assert response.status_code == 201, response.text


def campaign_for(e2e: Stack, city: str, **settings: Any) -> str:
    template = e2e.api(
        "POST", "/v1/templates", json={"name": "t", "body": "Hi {{ name }}"}
    )
    body = {
        "name": f"campaign {city}",
        "template_id": template.json()["id"],
        "segment_id": city_segment(e2e, city),
        "quiet_hours": None,
        **settings,
    }
    response = e2e.api("POST", "/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def launch(e2e: Stack, campaign_id: str) -> None:
    response = e2e.api("POST", f"/v1/campaigns/{campaign_id}/launch")
    assert response.status_code == 202, response.text


def messages(e2e: Stack, campaign_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        query = {"limit": "500", **({"page_token": token} if token else {})}
        page = e2e.api("GET", f"/v1/campaigns/{campaign_id}/messages", params=query)
        items += page.json()["items"]
        token = page.json()["next_page_token"]
        if not token:
            return items


def statuses(e2e: Stack, campaign_id: str) -> dict[str, str]:
    return {m["phone"]: m["status"] for m in messages(e2e, campaign_id)}


def sends_per_phone(e2e: Stack) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in e2e.sent_messages():
        counts[message["to"]] = counts.get(message["to"], 0) + 1
    return counts


def phones(count: int, first: int = 0) -> list[str]:
    return [f"+1415555{first + i:04d}" for i in range(count)]


FINAL = {"DELIVERED", "UNDELIVERED", "FAILED", "SKIPPED", "READ"}


def all_final(e2e: Stack, campaign_id: str, count: int) -> bool:
    found = statuses(e2e, campaign_id)
    return len(found) == count and set(found.values()) <= FINAL


def test_pause_holds_and_resume_sends_the_rest_once(e2e: Stack) -> None:
    recipients = phones(12)
    add_users(e2e, recipients, "Pauseville")
    campaign_id = campaign_for(e2e, "Pauseville", rate_limit_mps=2)
    launch(e2e, campaign_id)
    wait_for(lambda: len(e2e.sent_messages()) >= 2, timeout=20)
    paused = e2e.api("POST", f"/v1/campaigns/{campaign_id}/pause")
    assert paused.json()["status"] == "PAUSED"
    sent_at_pause = len(e2e.sent_messages())
    # Within the 2 s campaign cache a send or two may still go out; then none.
    wait_for(lambda: sum(m["held"] for m in messages(e2e, campaign_id)) > 0, timeout=20)
    settled = len(e2e.sent_messages())
    assert settled <= sent_at_pause + 4
    assert e2e.api("POST", f"/v1/campaigns/{campaign_id}/pause").status_code == 409

    resumed = e2e.api("POST", f"/v1/campaigns/{campaign_id}/resume")
    assert resumed.json()["status"] == "RUNNING"
    assert wait_for(lambda: all_final(e2e, campaign_id, 12), timeout=60)
    assert sends_per_phone(e2e) == {phone: 1 for phone in recipients}


def test_cancel_skips_every_unsent_message(e2e: Stack) -> None:
    recipients = phones(20)
    add_users(e2e, recipients, "Cancelton")
    campaign_id = campaign_for(e2e, "Cancelton", rate_limit_mps=2)
    launch(e2e, campaign_id)
    wait_for(lambda: len(e2e.sent_messages()) >= 2, timeout=20)
    cancelled = e2e.api("POST", f"/v1/campaigns/{campaign_id}/cancel")
    assert cancelled.json()["status"] == "CANCELLED"
    assert e2e.api("POST", f"/v1/campaigns/{campaign_id}/resume").status_code == 409

    assert wait_for(lambda: all_final(e2e, campaign_id, 20), timeout=40)
    found = messages(e2e, campaign_id)
    skipped = [m for m in found if m["status"] == "SKIPPED"]
    assert skipped, "a cancel during the send skips the rest"
    assert {m["skip_reason"] for m in skipped} == {"campaign_cancelled"}
    sent = sends_per_phone(e2e)
    assert set(sent.values()) == {1}
    assert len(sent) + len(skipped) == 20


def test_stop_between_fan_out_and_send_stops_that_send(e2e: Stack) -> None:
    recipients = phones(6)
    add_users(e2e, recipients, "Stopford")
    campaign_id = campaign_for(e2e, "Stopford", rate_limit_mps=1)
    launch(e2e, campaign_id)
    last = recipients[-1]
    wait_for(lambda: last in statuses(e2e, campaign_id), timeout=20)
    answer = e2e.sim("POST", "/_sim/inbound", json={"from": last, "body": "STOP"})
    assert answer["status"] == 200
    assert wait_for(lambda: all_final(e2e, campaign_id, 6), timeout=40)
    message = e2e.api("GET", f"/v1/messages/{message_id_for(campaign_id, last)}").json()
    assert message["status"] == "SKIPPED"
    assert message["skip_reason"] == "no_consent"
    assert last not in sends_per_phone(e2e)


def test_quiet_hours_defer_one_zone_and_send_the_other(e2e: Stack) -> None:
    # An injected clock: every function's `now` starts at the top of the
    # current hour (never ahead of the real clock, on which sends are
    # scheduled) and runs on from there, so the window cannot turn mid-test.
    if e2e.faults_file is None:
        pytest.skip("the stack in ESE_ENDPOINTS has no injectable clock")
    real = datetime.now(UTC)
    top = real.replace(minute=0, second=0, microsecond=0)
    e2e.set_faults("quiet-hours", clock_offset_seconds=(top - real).total_seconds())
    window = {
        "start": top.strftime("%H:%M"),
        "end": (top + timedelta(hours=1)).strftime("%H:%M"),
    }
    add_users(e2e, ["+14155550111"], "Zones", timezone="UTC")
    add_users(e2e, ["+14155550122"], "Zones", timezone="Asia/Tokyo")  # UTC+9
    campaign_id = campaign_for(e2e, "Zones", quiet_hours=window)
    launch(e2e, campaign_id)
    wait_for(lambda: statuses(e2e, campaign_id).get("+14155550122") == "DELIVERED")

    def deferral() -> list[dict[str, Any]]:
        found = e2e.api(
            "GET", f"/v1/messages/{message_id_for(campaign_id, '+14155550111')}"
        ).json()
        return [a for a in found["audit"] if a["outcome"] == "defer"]

    deferred = wait_for(deferral)
    quiet = e2e.api(
        "GET", f"/v1/messages/{message_id_for(campaign_id, '+14155550111')}"
    ).json()
    assert quiet["status"] == "QUEUED"
    # Deferred to the window's end, on the injected clock.
    assert datetime.fromisoformat(quiet["send_at"]) == top + timedelta(hours=1)
    assert "UTC" in deferred[0]["reason"]
    assert "+14155550111" not in sends_per_phone(e2e)


def test_magic_numbers_fail_with_their_codes_and_21610_stops_the_user(
    e2e: Stack,
) -> None:
    add_users(e2e, ["+15005550001", "+15005550004", "+14155550133"], "Magic")
    campaign_id = campaign_for(e2e, "Magic")
    launch(e2e, campaign_id)
    assert wait_for(lambda: all_final(e2e, campaign_id, 3))
    found = {m["phone"]: m for m in messages(e2e, campaign_id)}
    assert found["+15005550001"]["status"] == "FAILED"
    assert found["+15005550001"]["error_code"] == "21211"
    assert found["+15005550004"]["error_code"] == "21610"
    assert found["+14155550133"]["status"] == "DELIVERED"
    user = e2e.api("GET", "/v1/users/+15005550004").json()
    assert user["consent"]["state"] == "STOP"
    history = e2e.api("GET", "/v1/users/+15005550004/consent").json()
    sources = [h["source"] for h in history.get("items", history.get("history", []))]
    assert "carrier_21610" in sources


def test_twilio_429s_are_retried_and_each_message_goes_out_once(e2e: Stack) -> None:
    recipients = phones(5, first=100)
    add_users(e2e, recipients, "Throttled")
    e2e.sim("POST", "/_sim/config", json={"fail_next_with_429": 4})
    campaign_id = campaign_for(e2e, "Throttled", rate_limit_mps=50)
    launch(e2e, campaign_id)
    assert wait_for(lambda: all_final(e2e, campaign_id, 5), timeout=60)
    assert sends_per_phone(e2e) == {phone: 1 for phone in recipients}
    rejected = e2e.sim("GET", "/_sim/messages")["rejected"]
    assert len(rejected) == 4
    assert set(statuses(e2e, campaign_id).values()) == {"DELIVERED"}


def publish(e2e: Stack, topic: str, payload: dict[str, Any]) -> None:
    url = (
        f"http://{e2e.endpoints['pubsub_emulator']}/v1/projects/"
        f"{e2e.endpoints['project']}/topics/{topic}:publish"
    )
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    response = requests.post(url, json={"messages": [{"data": data}]}, timeout=10)
    response.raise_for_status()


def test_duplicate_launches_batches_and_task_retries_send_nothing_twice(
    e2e: Stack,
) -> None:
    recipients = phones(4, first=200)
    add_users(e2e, recipients, "Dupes")
    campaign_id = campaign_for(e2e, "Dupes", rate_limit_mps=50)
    launch(e2e, campaign_id)
    assert wait_for(lambda: all_final(e2e, campaign_id, 4))
    campaign = e2e.api("GET", f"/v1/campaigns/{campaign_id}").json()
    launch_id = campaign["launch_id"]

    evaluated = logged(e2e, "segment_evaluator", campaign_id, "launch evaluated")
    fanned_out = logged(e2e, "campaign_fanout", campaign_id, "batch fanned out")
    publish(
        e2e, "campaign-launches", {"campaign_id": campaign_id, "launch_id": launch_id}
    )
    batch = {"campaign_id": campaign_id, "launch_id": launch_id, "batch_no": 0}
    publish(e2e, "recipient-batches", {**batch, "phones": recipients})
    message_id = message_id_for(campaign_id, recipients[0])
    retry = requests.post(
        e2e.endpoints["message_sender"] + "/",
        json={"message_id": message_id},
        headers={"X-CloudTasks-TaskRetryCount": "1"},
        timeout=10,
    )
    assert retry.status_code == 200
    assert retry.text.startswith("already_")

    # Barrier: both duplicates were handled (each handler logs its outcome),
    # and whatever they enqueued has run.
    def duplicates_absorbed() -> bool:
        stats = requests.get(
            e2e.endpoints["task_dispatcher"] + "/v1/tasks/stats", timeout=10
        ).json()
        return (
            logged(e2e, "segment_evaluator", campaign_id, "launch evaluated")
            > evaluated
            and logged(e2e, "campaign_fanout", campaign_id, "batch fanned out")
            > fanned_out
            and stats["pending"] == 0
            and stats["in_flight"] == 0
        )

    wait_for(duplicates_absorbed)
    assert len(messages(e2e, campaign_id)) == 4
    assert sends_per_phone(e2e) == {phone: 1 for phone in recipients}


def logged(e2e: Stack, function: str, *words: str) -> int:
    """Lines of a function's log holding every one of `words`."""
    path = Path(e2e.endpoints["state_dir"]) / "logs" / f"{function}.log"
    if not path.exists():
        return 0
    lines = path.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if all(word in line for word in words))


def test_dry_run_reports_without_writing(e2e: Stack) -> None:
    add_users(e2e, phones(3, first=300), "Dryden")
    add_users(e2e, ["+14155550399"], "Dryden", consent_state="OPT_OUT")
    campaign_id = campaign_for(e2e, "Dryden", rate_limit_mps=2)
    report = e2e.api("POST", f"/v1/campaigns/{campaign_id}/dry-run").json()
    assert report["targeted"] == 4
    assert report["eligible"] == 3
    assert report["skips"] == {"no_consent": 1}
    assert report["total_segments"] == 3
    assert report["estimated_duration_seconds"] == 1.5
    assert messages(e2e, campaign_id) == []
    assert e2e.sent_messages() == []


def test_one_bad_contact_is_skipped_alone_and_the_campaign_completes(
    e2e: Stack,
) -> None:
    """A render that fails on one recipient's data (here a division by zero)
    skips that message as render_failed: the dry run answers, the others are
    sent, and the campaign completes."""
    good, bad = phones(2, first=400), "+14155550499"
    for phone, n in [(good[0], 4), (bad, 0), (good[1], 5)]:
        body = {
            "phone": phone,
            "attributes": {"city": "Scoresby", "name": "Pat", "n": n},
        }
        assert e2e.api("POST", "/v1/users", json=body).status_code == 201
    template = e2e.api(
        "POST",
        "/v1/templates",
        json={
            "name": "score",
            "body": "Hi {{ name }}, score {{ 100 | divided_by: n }}",
        },
    )
    assert template.status_code == 201, template.text
    created = e2e.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": "scores",
            "template_id": template.json()["id"],
            "segment_id": city_segment(e2e, "Scoresby"),
            "quiet_hours": None,
        },
    )
    campaign_id = created.json()["id"]

    dry = e2e.api("POST", f"/v1/campaigns/{campaign_id}/dry-run")
    assert dry.status_code == 200, dry.text
    assert (dry.json()["eligible"], dry.json()["skips"]) == (2, {"render_failed": 1})

    launch(e2e, campaign_id)
    wait_for(
        lambda: (
            e2e.api("GET", f"/v1/campaigns/{campaign_id}").json()["status"]
            == "COMPLETED"
        ),
        timeout=90,
    )
    found = {m["phone"]: m for m in messages(e2e, campaign_id)}
    assert found[bad]["status"] == "SKIPPED"
    assert found[bad]["skip_reason"] == "render_failed"
    assert {found[p]["status"] for p in good} == {"DELIVERED"}
    assert sends_per_phone(e2e) == {phone: 1 for phone in good}
