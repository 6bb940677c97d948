"""Logs never hold a full phone number, a message body or a secret.

A small flow runs end to end on the local stack: contacts imported from a
file, a campaign with its status callbacks, a carrier opt-out (21610), an
inbound STOP, HELP and a free-text reply, a triggered campaign answering an
event, API calls that put phones in paths and bodies (good and bad ones), and
the erasure of a number. Then every log file the stack wrote during the run is
searched: the functions' own lines, their request logs (raw URLs and task
names, as Cloud Run and Cloud Tasks record them, outside the application's
masking), the task dispatcher's and the scheduler ticker's. Only the
simulator's (it stands in for Twilio, which keeps numbers and bodies by
nature) and the emulators' (Google's storage) are left out.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack, wait_for
from tests.e2e.test_reporting import (
    add_user,
    consent_of,
    create_campaign,
    inbound,
    message_status,
    wait_until_completed,
)

pytestmark = pytest.mark.e2e

RECIPIENTS = ["+14155550301", "+14155550302", "+14155550303"]
CARRIER_OPT_OUT = "+15005550004"  # Twilio's test number: 21610 at send
UNKNOWN_SENDER = "+14155550399"  # writes in without being a user
PHONES = [*RECIPIENTS, CARRIER_OPT_OUT, UNKNOWN_SENDER]
CITY = "Hygieneton"
NAME = "Quillonius"
TEMPLATE = "Zanzibar offer for {{ name }}: marmalade at half price"
TRIGGERED = "Pelican parcel {{ event.properties.order_id }} for {{ name }}"
REPLY = "Xylophone question about my order"
# Words of the rendered bodies and of the reply that no log line may hold.
BODY_WORDS = ["Zanzibar", NAME, "marmalade", "Pelican", "Xylophone"]
# Logs of what stands in for Twilio and for Google's storage: not ours.
NOT_OURS = ("twilio-simulator", "firestore", "pubsub")
# A type of its own: routers cache the campaigns of each type for a while.
EVENT_TYPE = f"order_shipped.{uuid.uuid4().hex[:8]}"


def log_paths(stack: Stack) -> dict[str, Path]:
    logs = Path(stack.endpoints["state_dir"]) / "logs"
    return {
        path.stem: path
        for path in sorted(logs.glob("*.log"))
        if not path.stem.startswith(NOT_OURS)
    }


def log_sizes(stack: Stack) -> dict[str, int]:
    return {name: path.stat().st_size for name, path in log_paths(stack).items()}


def logged_since(stack: Stack, sizes: dict[str, int]) -> dict[str, str]:
    """What each log file got after `sizes` was taken (logs only grow)."""
    written = {}
    for name, path in log_paths(stack).items():
        with path.open("rb") as log:
            log.seek(sizes.get(name, 0))
            written[name] = log.read().decode("utf-8", errors="replace")
    return written


def forms_of(phone: str) -> list[str]:
    """A phone as it could leak: E.164, its digits, national (plain and
    spaced), URL-encoded."""
    digits = phone[1:]
    national = digits[1:]
    spaced = f"{national[:3]} {national[3:6]} {national[6:]}"
    return [phone, digits, national, f"%2B{digits}", spaced]


def exercise_the_api(stack: Stack) -> None:
    """Requests whose paths, queries and bodies carry phones."""
    phone = RECIPIENTS[2]
    stack.api("GET", f"/v1/users/{phone}")
    stack.api("GET", f"/v1/users/%2B{phone[1:]}/consent")
    stack.api("PATCH", f"/v1/users/{phone}", json={"attributes": {"tier": "gold"}})
    stack.api("POST", "/v1/users", json={"phone": phone})  # 409: exists
    stack.api("POST", "/v1/users", json={"phone": "+1415555"})  # 422: invalid
    stack.api("GET", "/v1/users/+19995550100")  # 404
    stack.api("POST", "/v1/users", data=b'{"phone": "+14155550301",')  # bad JSON
    event = {
        "event_id": "hygiene-1",
        "type": EVENT_TYPE,
        "phone": phone,
        "properties": {"note": TEMPLATE, "order_id": "A1"},
    }
    assert stack.api("POST", "/v1/events", json=event).status_code == 202

    def answered() -> list[str]:
        report = stack.api("GET", "/v1/events/hygiene-1").json()
        statuses = [m["status"] for m in report.get("messages", [])]
        final = statuses and set(statuses) <= {"DELIVERED", "SKIPPED", "FAILED"}
        return statuses if final else []

    assert wait_for(answered, timeout=40) == ["DELIVERED"]
    unsigned = {"From": phone, "Body": REPLY, "MessageSid": "SMforged"}
    requests.post(
        stack.endpoints["twilio_webhooks"] + "/twilio/inbound",
        data=unsigned,
        timeout=10,
    )  # rejected: no signature


def import_contacts(stack: Stack) -> None:
    """The recipients arrive in a file, one in national format."""
    rows = [f"{phone},{CITY},{NAME}" for phone in RECIPIENTS]
    rows[1] = f'"(415) 555-{RECIPIENTS[1][-4:]}",{CITY},{NAME}'
    csv = "phone,city,name\n" + "\n".join(rows) + "\n"
    answer = stack.api(
        "POST", "/v1/imports", data=csv, headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 202, answer.text
    path = f"/v1/imports/{answer.json()['id']}"
    report = wait_for(
        lambda: (r := stack.api("GET", path).json())["status"] == "COMPLETED" and r
    )
    assert report["created"] == len(RECIPIENTS), report


def run_triggered_campaign(stack: Stack) -> None:
    """A triggered campaign answers an event for one of the recipients."""
    template = stack.api("POST", "/v1/templates", json={"name": "t", "body": TRIGGERED})
    campaign = stack.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": "on order_shipped",
            "template_id": template.json()["id"],
            "trigger": {"event": EVENT_TYPE},
            "quiet_hours": None,
        },
    )
    campaign_id = campaign.json()["id"]
    launched = stack.api("POST", f"/v1/campaigns/{campaign_id}/launch")
    assert launched.json()["status"] == "ACTIVE", launched.text


def run_campaign(stack: Stack) -> str:
    import_contacts(stack)
    add_user(stack, CARRIER_OPT_OUT, CITY, attributes={"city": CITY, "name": NAME})
    campaign_id = create_campaign(stack, CITY, TEMPLATE)
    stopper, replier = RECIPIENTS[0], RECIPIENTS[1]
    wait_for(lambda: message_status(stack, campaign_id, stopper) == "DELIVERED")
    inbound(stack, stopper, "STOP")
    inbound(stack, replier, REPLY)
    inbound(stack, replier, "HELP")
    inbound(stack, UNKNOWN_SENDER, "STOP")
    wait_for(lambda: consent_of(stack, stopper) == "STOP")
    wait_for(lambda: consent_of(stack, CARRIER_OPT_OUT) == "STOP")
    wait_until_completed(stack, campaign_id)
    return campaign_id


@dataclass(frozen=True)
class Run:
    stack: Stack
    written: dict[str, str]
    campaign_id: str
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def run(local_stack: Stack) -> Run:
    """One campaign and the API calls, run once; what each function logged."""
    local_stack.reset()
    sizes = log_sizes(local_stack)
    run_triggered_campaign(local_stack)
    campaign_id = run_campaign(local_stack)
    exercise_the_api(local_stack)
    summary = local_stack.api("GET", f"/v1/campaigns/{campaign_id}/summary").json()
    erased = local_stack.api("DELETE", f"/v1/users/{RECIPIENTS[0]}")
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"]["messages"] == 1
    wait_for(
        lambda: "consent STOP" in logged_since(local_stack, sizes)["inbound_processor"]
    )
    written = logged_since(local_stack, sizes)
    return Run(local_stack, written, campaign_id, summary)


def test_function_logs_hold_no_phone_body_or_secret(run: Run) -> None:
    assert "message sent" in run.written["message_sender"], "the run was logged"
    assert "phone erased" in run.written["api"]
    # The request logs were written, and searched below.
    assert '"taskName": "' in run.written["message_sender"]
    assert "/twilio/status?message_id=" in run.written["twilio_webhooks"]
    assert "task-dispatcher" in run.written
    secrets = {
        "API key": run.stack.endpoints["api_key"],
        "Twilio auth token": run.stack.endpoints["twilio_auth_token"],
    }
    needles = [
        *((f"phone {form}", form) for phone in PHONES for form in forms_of(phone)),
        *((f"body word {word!r}", word) for word in BODY_WORDS),
        *secrets.items(),
    ]
    leaks = [
        f"{name}: {label}"
        for name, text in run.written.items()
        for label, needle in needles
        if needle in text
    ]
    assert leaks == [], leaks
    assert "+1********01" in "\n".join(run.written.values()), "phones show masked"


def test_every_function_log_line_is_structured(run: Run) -> None:
    for name, text in run.written.items():
        for line in text.splitlines():
            if not line.startswith("{") or line.startswith('{"httpRequest"'):
                continue  # the server's own start-up lines, the request log
            entry = json.loads(line)
            assert entry["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR"}, line
            assert "logging.googleapis.com/trace" in entry, (name, line)
            labels = entry.get("logging.googleapis.com/labels", {})
            if "message_id" in labels:
                # {campaign}_{recipient_key}[_{event_id}]: no phone in it.
                assert re.fullmatch(
                    r"\w+?_[0-9a-f]{20}(_[\w-]+)?", labels["message_id"]
                )
                assert labels["message_id"].startswith(labels["campaign_id"])


def test_after_erasure_no_document_holds_the_number(run: Run) -> None:
    """The erased recipient (who had texted STOP) is in no document of any
    collection; the completed campaign's summary is unchanged; a re-import
    of the number keeps it STOP through its keyed suppression entry."""
    erased = RECIPIENTS[0]
    db = run.stack.firestore()

    def documents(collections: Any) -> list[str]:
        found = []
        for collection in collections:
            for ref in collection.list_documents():
                snapshot = ref.get()
                found.append(f"{ref.path} {snapshot.to_dict()}")
                found += documents(ref.collections())
        return found

    stored = documents(db.collections())
    assert any(RECIPIENTS[1] in text for text in stored), "the others stay"
    leaks = [t[:120] for t in stored for f in forms_of(erased) if f in t]
    assert leaks == []
    summary = run.stack.api("GET", f"/v1/campaigns/{run.campaign_id}/summary")
    assert summary.json() == run.summary
    answer = run.stack.api(
        "POST",
        "/v1/imports",
        data=f"phone,consent_state\n{erased},OPT_IN\n",
        headers={"Content-Type": "text/csv"},
    )
    path = f"/v1/imports/{answer.json()['id']}"
    wait_for(lambda: run.stack.api("GET", path).json()["status"] == "COMPLETED")
    assert consent_of(run.stack, erased) == "STOP"
