"""Function logs never hold a full phone number, a message body or a secret.

A small campaign runs end to end on the local stack, with a carrier opt-out
(21610), an inbound STOP, HELP and a free-text reply, an ingested event, and
API calls that put phones in paths and bodies (good and bad ones). Then the
lines every function logged during the run are searched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from local.stack import FUNCTIONS
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
REPLY = "Xylophone question about my order"
# Words of the rendered bodies and of the reply that no log line may hold.
BODY_WORDS = ["Zanzibar", NAME, "marmalade", "Xylophone"]


def log_paths(stack: Stack) -> dict[str, Path]:
    logs = Path(stack.endpoints["state_dir"]) / "logs"
    return {name: logs / f"{name}.log" for name in FUNCTIONS}


def log_sizes(stack: Stack) -> dict[str, int]:
    return {
        name: path.stat().st_size if path.exists() else 0
        for name, path in log_paths(stack).items()
    }


def logged_since(stack: Stack, sizes: dict[str, int]) -> dict[str, str]:
    """What each function logged after `sizes` was taken (logs only grow)."""
    written = {}
    for name, path in log_paths(stack).items():
        with path.open("rb") as log:
            log.seek(sizes[name])
            written[name] = log.read().decode("utf-8", errors="replace")
    return written


def forms_of(phone: str) -> list[str]:
    """A phone as it could leak: E.164, its digits, national, URL-encoded."""
    digits = phone[1:]
    return [phone, digits, digits[1:], f"%2B{digits}"]


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
        "type": "order_shipped",
        "phone": phone,
        "properties": {"note": TEMPLATE},
    }
    assert stack.api("POST", "/v1/events", json=event).status_code == 202
    wait_for(
        lambda: stack.api("GET", "/v1/events/hygiene-1").json()["status"] != "received"
    )
    unsigned = {"From": phone, "Body": REPLY, "MessageSid": "SMforged"}
    requests.post(
        stack.endpoints["twilio_webhooks"] + "/twilio/inbound",
        data=unsigned,
        timeout=10,
    )  # rejected: no signature


def run_campaign(stack: Stack) -> str:
    for phone in [*RECIPIENTS, CARRIER_OPT_OUT]:
        add_user(stack, phone, CITY, attributes={"city": CITY, "name": NAME})
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


@pytest.fixture(scope="module")
def run(local_stack: Stack) -> Run:
    """One campaign and the API calls, run once; what each function logged."""
    local_stack.reset()
    sizes = log_sizes(local_stack)
    campaign_id = run_campaign(local_stack)
    exercise_the_api(local_stack)
    local_stack.api("GET", f"/v1/campaigns/{campaign_id}/summary")
    wait_for(
        lambda: "consent STOP" in logged_since(local_stack, sizes)["inbound_processor"]
    )
    return Run(local_stack, logged_since(local_stack, sizes))


def test_function_logs_hold_no_phone_body_or_secret(run: Run) -> None:
    assert "message sent" in run.written["message_sender"], "the run was logged"
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
    assert "+1415***0301" in "\n".join(run.written.values()), "phones show masked"


def test_every_function_log_line_is_structured(run: Run) -> None:
    for name, text in run.written.items():
        for line in text.splitlines():
            if not line.startswith("{"):
                continue  # the server's own start-up lines
            entry = json.loads(line)
            assert entry["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR"}, line
            assert "logging.googleapis.com/trace" in entry, (name, line)
            labels = entry.get("logging.googleapis.com/labels", {})
            if "message_id" in labels:
                assert re.fullmatch(r"\w+_\d{4}\*\*\*\d{4}", labels["message_id"])
                assert labels["message_id"].startswith(labels["campaign_id"])
