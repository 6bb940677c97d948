"""Reporting on the local stack: a campaign runs to COMPLETED with mixed outcomes,
then its summary, the inbound list, the dashboard and the operator CLI read it.
"""

from __future__ import annotations

import io
import json
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local import cli
from shared.delivery.messages import message_id_for
from tests.e2e.conftest import Stack, wait_for

pytestmark = pytest.mark.e2e

DELIVERED = ["+14155550201", "+14155550202", "+14155550203"]
UNDELIVERED = "+14155550204"  # the simulator reports 30003 for it
REFUSED = "+15005550001"  # Twilio's test number: 21211 at send
OPTED_OUT = "+14155550205"  # OPT_OUT before the launch: skipped
CITY = "Reportville"


def add_user(stack: Stack, phone: str, city: str, **fields: Any) -> None:
    body = {"phone": phone, "attributes": {"city": city, "name": "Quillon"}, **fields}
    response = stack.api("POST", "/v1/users", json=body)
    assert response.status_code == 201, response.text


def create_campaign(stack: Stack, city: str, body: str, **settings: Any) -> str:
    template = stack.api("POST", "/v1/templates", json={"name": city, "body": body})
    definition = {"attribute": "city", "operator": "equals", "value": city}
    segment = stack.api(
        "POST", "/v1/segments", json={"name": city, "definition": definition}
    )
    campaign = stack.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": f"{city} sale",
            "template_id": template.json()["id"],
            "segment_id": segment.json()["id"],
            "quiet_hours": None,
            **settings,
        },
    )
    assert campaign.status_code == 201, campaign.text
    campaign_id = str(campaign.json()["id"])
    launched = stack.api("POST", f"/v1/campaigns/{campaign_id}/launch")
    assert launched.status_code == 202, launched.text
    return campaign_id


def campaign_messages(stack: Stack, campaign_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        query = {"limit": "500", **({"page_token": token} if token else {})}
        page = stack.api(
            "GET", f"/v1/campaigns/{campaign_id}/messages", params=query
        ).json()
        items += page["items"]
        token = page["next_page_token"]
        if not token:
            return items


def message_status(stack: Stack, campaign_id: str, phone: str) -> str | None:
    response = stack.api("GET", f"/v1/messages/{message_id_for(campaign_id, phone)}")
    return str(response.json()["status"]) if response.status_code == 200 else None


def consent_of(stack: Stack, phone: str) -> str:
    return str(stack.api("GET", f"/v1/users/{phone}").json()["consent"]["state"])


def wait_until_completed(stack: Stack, campaign_id: str) -> None:
    def status() -> bool:
        campaign = stack.api("GET", f"/v1/campaigns/{campaign_id}").json()
        return campaign["status"] == "COMPLETED"

    wait_for(status, timeout=90, interval=1.0)


def inbound(stack: Stack, phone: str, body: str) -> None:
    answer = stack.sim("POST", "/_sim/inbound", json={"from": phone, "body": body})
    assert answer["status"] == 200, answer


def first_delivered(stack: Stack, campaign_id: str) -> str | None:
    for message in campaign_messages(stack, campaign_id):
        if message["status"] == "DELIVERED":
            return str(message["phone"])
    return None


def set_status(stack: Stack, campaign_id: str, action: str, expected: str) -> None:
    response = stack.api("POST", f"/v1/campaigns/{campaign_id}/{action}")
    assert response.json()["status"] == expected, response.text


@dataclass(frozen=True)
class Finished:
    stack: Stack
    campaign_id: str
    stopper: str
    replier: str
    trace_id: str
    first_summary: dict[str, Any]


@pytest.fixture(scope="module")
def finished(local_stack: Stack) -> Iterator[Finished]:
    """One campaign, run once for this module's tests; its first summary read
    carries a W3C traceparent header."""
    stack = local_stack
    stack.reset()
    for phone in [*DELIVERED, UNDELIVERED, REFUSED]:
        add_user(stack, phone, CITY)
    add_user(stack, OPTED_OUT, CITY, consent_state="OPT_OUT")
    stack.sim("POST", "/_sim/config", json={"undelivered": {UNDELIVERED: 30003}})
    campaign_id = create_campaign(
        stack, CITY, "Hi {{ name }}, the sale is on", rate_limit_mps=0.5
    )
    # The first recipient to receive it replies STOP. The campaign is paused
    # meanwhile, so it cannot complete before the STOP is recorded (opt-outs
    # are counted up to completion).
    stopper = wait_for(lambda: first_delivered(stack, campaign_id))
    set_status(stack, campaign_id, "pause", "PAUSED")
    replier = next(phone for phone in DELIVERED if phone != stopper)
    inbound(stack, stopper, "STOP")
    inbound(stack, replier, "Loving the sale")
    wait_for(lambda: consent_of(stack, stopper) == "STOP")
    set_status(stack, campaign_id, "resume", "RUNNING")
    wait_until_completed(stack, campaign_id)

    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    response = stack.api("GET", f"/v1/campaigns/{campaign_id}/summary", headers=headers)
    assert response.status_code == 200, response.text
    yield Finished(stack, campaign_id, stopper, replier, trace_id, response.json())


def test_the_summary_matches_the_messages_and_is_frozen(finished: Finished) -> None:
    summary = finished.first_summary
    found = campaign_messages(finished.stack, finished.campaign_id)
    statuses = Counter(m["status"] for m in found)
    assert summary["frozen"] is True and summary["status"] == "COMPLETED"
    assert summary["targeted"] == len(found) == 6
    assert {k: v for k, v in summary["counts"].items() if v} == dict(statuses)
    assert statuses == {"DELIVERED": 3, "UNDELIVERED": 1, "FAILED": 1, "SKIPPED": 1}
    assert summary["skips"] == {"no_consent": 1}
    failures = {f["code"]: (f["count"], f["meaning"]) for f in summary["failures"]}
    assert failures == {
        "21211": (1, "Invalid 'To' phone number"),
        "30003": (1, "Unreachable destination handset"),
    }
    assert summary["delivery_rate"] == 0.6
    assert summary["sent"] == 4
    assert summary["total_segments"] == sum(
        m["segments"] for m in found if m["sent_at"]
    )
    assert summary["opt_outs"] == {
        "count": 1,
        "rate": 0.25,
        "by_source": {"keyword": 1},
    }
    sent_times = sorted(m["sent_at"] for m in found if m["sent_at"])
    assert summary["first_sent_at"] is not None
    assert len(sent_times) == 4

    again = finished.stack.api("GET", f"/v1/campaigns/{finished.campaign_id}/summary")
    assert again.json() == summary


def api_log_lines(stack: Stack) -> list[dict[str, Any]]:
    path = Path(stack.endpoints["state_dir"]) / "logs" / "api.log"
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def test_the_api_log_line_carries_the_trace_and_campaign(finished: Finished) -> None:
    project = finished.stack.endpoints["project"]
    trace = f"projects/{project}/traces/{finished.trace_id}"

    def traced() -> list[dict[str, Any]]:
        lines = api_log_lines(finished.stack)
        return [
            e
            for e in lines
            if e.get("logging.googleapis.com/trace") == trace
            and e.get("message") == "campaign summary frozen"
        ]

    entry = wait_for(traced, timeout=10)[0]
    assert entry["severity"] == "INFO"
    labels = entry["logging.googleapis.com/labels"]
    assert labels["campaign_id"] == finished.campaign_id
    assert labels["event"] == "summary_frozen"


def test_inbound_lists_the_replies_with_masked_phones(finished: Finished) -> None:
    response = finished.stack.api("GET", "/v1/inbound", params={"limit": "10"})
    assert response.status_code == 200
    items = response.json()["items"]
    by_class = {item["classification"]: item for item in items}
    stopper, replier = finished.stopper, finished.replier
    assert by_class["STOP"]["phone"] == f"{stopper[:5]}***{stopper[-4:]}"
    assert by_class["REPLY"]["body"] == "Loving the sale"
    assert by_class["REPLY"]["phone"] == f"{replier[:5]}***{replier[-4:]}"
    assert stopper[1:] not in response.text and replier[1:] not in response.text


def test_the_dashboard_counts_the_run(finished: Finished) -> None:
    board = finished.stack.api("GET", "/v1/dashboard").json()
    assert board["users_by_consent_state"] == {"OPT_IN": 4, "OPT_OUT": 1, "STOP": 1}
    assert board["campaigns_by_status"]["COMPLETED"] == 1
    messages = {k: v for k, v in board["messages_by_status"].items() if v}
    assert messages == {"DELIVERED": 3, "UNDELIVERED": 1, "FAILED": 1, "SKIPPED": 1}
    assert board["inbound"]["total"] == 2
    assert board["inbound"]["by_classification"]["STOP"] == 1
    assert board["inbound"]["by_classification"]["REPLY"] == 1


def run_cli(stack: Stack, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    base = [
        "--base-url",
        stack.endpoints["api"],
        "--api-key",
        stack.endpoints["api_key"],
    ]
    return cli.main([*base, *args], out=out), out.getvalue()


def test_the_cli_reads_the_campaign(finished: Finished) -> None:
    status, listing = run_cli(finished.stack, "campaigns", "list")
    assert status == 0 and finished.campaign_id in listing and "COMPLETED" in listing
    status, table = run_cli(
        finished.stack, "campaigns", "summary", finished.campaign_id
    )
    assert status == 0
    assert "COMPLETED (final, frozen)" in table
    assert "Invalid 'To' phone number" in table
    status, watched = run_cli(
        finished.stack, "campaigns", "watch", finished.campaign_id, "--timeout", "30"
    )
    assert status == 0
    assert "6/6" in watched


def test_the_cli_imports_a_file_in_chunks(e2e: Stack, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    rows = [f"+1415555{3000 + i},Importville,Pat {i}" for i in range(7)]
    contacts.write_text("phone,city,name\n" + "\n".join(rows) + "\nnot-a-phone,X,Y\n")
    status, text = run_cli(e2e, "users", "import", str(contacts), "--chunk-rows", "3")
    assert status == 2, text  # the last row is rejected
    assert "8/8 rows" in text and "chunk 3/3" in text
    assert "not-a-phone" in text
    users = e2e.api("GET", "/v1/users", params={"limit": "500"}).json()["items"]
    assert len(users) == 7
