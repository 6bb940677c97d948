"""The operator console in a real browser (Debian's Chromium, driven by
Playwright) on the local stack: the main journey, pause and resume, a STOP
reply, a wrong key, an API error and a destructive action's confirmation.

Each screen is checked with axe-core (no serious or critical violation) and
saved as a screenshot in .local/console-screenshots/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from local.browser import CHROMIUM, CHROMIUM_ARGS, chromium_missing
from tests.e2e.conftest import REPO, Stack, city_segment, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")

SHOTS = REPO / ".local" / "console-screenshots"
AXE = Path(__file__).parent / "console" / "vendor" / "axe.min.js"
KEY = "local-dev-key"
TIMEOUT_MS = 20_000
DONE_MS = 120_000  # a small campaign from launch to COMPLETED, with margin


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = chromium_missing()
    if missing:
        pytest.skip(missing)
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Console:
    page: Any
    stack: Stack
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.stack.endpoints["api"] + "/console/"

    def sign_in(self, key: str = KEY) -> None:
        self.page.goto(self.url)
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def go(self, section: str) -> None:
        self.page.get_by_role("navigation").get_by_role("link", name=section).click()
        self.page.get_by_role("heading", level=1, name=section).wait_for()

    def confirm(self, label: str) -> None:
        dialog = self.page.get_by_role("dialog")
        dialog.wait_for()
        dialog.get_by_role("button", name=label).click()

    def banner(self) -> str:
        banner = self.page.locator("#banner")
        banner.wait_for()
        return str(banner.inner_text())

    def check(self, name: str, page: Any = None) -> None:
        """axe-core finds no serious or critical violation; save a screenshot."""
        page = page or self.page
        page.evaluate(AXE.read_text(encoding="utf-8"))
        result = page.evaluate(
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
            " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)})))"
        )
        serious = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not serious, f"{name}: {json.dumps(serious, indent=1)}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def console(e2e: Stack, browser: Any) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    view = Console(page, e2e)
    page.on("pageerror", lambda error: view.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            view.problems.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield view
    finally:
        context.close()
    assert not view.problems, view.problems


# ---------------------------------------------------------------- set-up by API


def make_users(e2e: Stack, city: str, count: int, start: int = 100) -> list[str]:
    phones = [f"+1415555{start + i:04d}" for i in range(count)]
    for i, phone in enumerate(phones):
        body = {"phone": phone, "attributes": {"city": city, "name": f"N{i}"}}
        response = e2e.api("POST", "/v1/users", json=body)
        assert response.status_code == 201, response.text
    return phones


def make_campaign(e2e: Stack, city: str, rate: float, count: int = 3) -> str:
    make_users(e2e, city, count)
    template = e2e.api(
        "POST", "/v1/templates", json={"name": "t", "body": "Hi {{ name }}"}
    )
    assert template.status_code == 201, template.text
    campaign = e2e.api(
        "POST",
        "/v1/campaigns",
        json={
            "name": f"{city} campaign",
            "template_id": template.json()["id"],
            "segment_id": city_segment(e2e, city),
            "rate_limit_mps": rate,
            "quiet_hours": None,
        },
    )
    assert campaign.status_code == 201, campaign.text
    return str(campaign.json()["id"])


def campaign_status(e2e: Stack, campaign_id: str) -> str:
    return str(e2e.api("GET", f"/v1/campaigns/{campaign_id}").json()["status"])


# ---------------------------------------------------------------- tests


def test_console_is_public_and_every_api_call_needs_the_key(e2e: Stack) -> None:
    base = e2e.endpoints["api"]
    page = requests.get(base + "/console/", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    module = requests.get(base + "/console/app.js", timeout=30)
    assert module.headers["Content-Type"] == "text/javascript; charset=utf-8"
    for escape in ("/console/../main.py", "/console/%2e%2e/main.py"):
        outside = requests.get(base + escape, timeout=30)
        assert outside.status_code in (401, 404), escape  # never the source
        assert "functions_framework" not in outside.text
    assert requests.get(base + "/v1/dashboard", timeout=30).status_code == 401


CONTACTS_CSV = (
    "phone,name,city\n"
    "+14155550141,Ann,Kandy\n"
    "+14155550142,Bob,Kandy\n"
    "+14155550143,Cy,Kandy\n"
    "not-a-phone,Dee,Kandy\n"
)


def test_main_journey_from_import_to_a_completed_campaign(console: Console) -> None:
    page, e2e = console.page, console.stack
    page.goto(console.url)
    console.check("01-sign-in")
    console.sign_in()
    page.get_by_role("heading", level=1, name="Dashboard").wait_for()
    page.get_by_text("Users per consent state").first.wait_for()
    console.check("02-dashboard")

    # Import: drop a file on the drop zone; the report shows when it finishes.
    console.go("Contacts")
    transfer = page.evaluate_handle(
        "text => { const t = new DataTransfer();"
        " t.items.add(new File([text], 'contacts.csv', {type: 'text/csv'}));"
        " return t; }",
        CONTACTS_CSV,
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    report = page.locator("#import-report")
    report.get_by_text("Import report").wait_for()
    assert re.search(r"created\s+3", report.inner_text())
    assert re.search(r"invalid\s+1", report.inner_text())
    assert page.locator("#import-status").inner_text().endswith("COMPLETED")
    page.get_by_label("Phone number").fill("+14155550141")
    page.get_by_role("button", name="Find").click()
    page.locator("#contact").get_by_text("Consent history").wait_for()
    console.check("03-contacts")

    # Segment: built in the builder, counted live, saved.
    console.go("Segments")
    page.get_by_label("Field").fill("city")
    page.get_by_label("Value").fill("Kandy")
    page.locator("#segment-count").filter(has_text="3").wait_for()
    assert page.locator("#segment-eligible").inner_text() == "3"
    page.get_by_label("Segment name").fill("kandy")
    page.get_by_role("button", name="Save segment").click()
    page.get_by_role("button", name="kandy").wait_for()
    console.check("04-segments")

    # Template: rendered live as it is typed, saved.
    console.go("Templates")
    page.get_by_label("Template name").fill("hello")
    page.get_by_label("Body (Liquid)").fill("Hi {{ name }}, see you in {{ city }}")
    page.get_by_label("Attributes (JSON)").fill('{"name": "Ann"}')
    page.locator("#render-missing").filter(has_text="city").wait_for()
    page.get_by_label("Attributes (JSON)").fill('{"name": "Ann", "city": "Kandy"}')
    page.locator("#rendered-body").filter(
        has_text="Hi Ann, see you in Kandy"
    ).wait_for()
    assert page.locator("#render-encoding").inner_text() == "GSM7"
    page.get_by_role("button", name="Save template").click()
    page.get_by_role("button", name="hello").wait_for()
    console.check("05-templates")

    # Campaign: create, dry run, launch, watch it complete, open a message.
    console.go("Campaigns")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Campaign name").fill("Kandy hello")
    page.get_by_label("Template").select_option(label="hello")
    page.get_by_label("Segment").select_option(label="kandy")
    page.get_by_label("Rate (messages per second)").fill("20")
    page.get_by_label("Quiet hours").select_option("none")
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_role("heading", level=1, name=re.compile("Kandy hello")).wait_for()
    page.get_by_role("button", name="Dry run").click()
    page.locator("#dry-eligible").filter(has_text="3").wait_for()
    console.check("06-campaign-dry-run")
    page.get_by_role("button", name="Launch now").click()
    console.confirm("Launch now")
    page.locator("#live-status").filter(has_text="COMPLETED").wait_for(timeout=DONE_MS)
    page.locator("#live-delivered").filter(has_text="3").wait_for()
    console.check("07-campaign-completed")
    page.locator("#message-list a").first.click()
    page.get_by_role("heading", level=1, name=re.compile("Message")).wait_for()
    trail = page.get_by_role("table").filter(has=page.get_by_text("Audit trail"))
    assert "consent" in trail.inner_text()
    assert page.locator("#message-status").inner_text() == "DELIVERED"
    console.check("08-message")

    console.go("Dashboard")
    page.locator("td").filter(has_text=re.compile("^COMPLETED$")).wait_for()
    console.check("09-dashboard-after")

    mobile = page.context.new_page()
    mobile.set_viewport_size({"width": 390, "height": 844})
    # The key is per tab (sessionStorage): a new tab signs in again.
    mobile.goto(console.url + "#/campaigns")
    mobile.get_by_label("API key").fill(KEY)
    mobile.get_by_role("button", name="Sign in").click()
    mobile.get_by_role("link", name="Kandy hello").wait_for()
    console.check("10-phone-campaigns", mobile)
    mobile.goto(console.url + "#/dashboard")
    mobile.get_by_text("Users per consent state").first.wait_for()
    console.check("10-phone-dashboard", mobile)
    assert e2e.api("GET", "/v1/users/+14155550141").status_code == 200


def test_pause_and_resume_a_running_campaign(console: Console) -> None:
    page, e2e = console.page, console.stack
    campaign_id = make_campaign(e2e, "Galle", rate=0.5, count=4)
    console.sign_in()
    page.get_by_role("heading", level=1, name="Dashboard").wait_for()
    page.goto(console.url + f"#/campaigns/{campaign_id}")
    page.get_by_role("button", name="Launch now").click()
    # No dry run was asked for: the launch question carries its figures.
    page.get_by_role("dialog").get_by_text("4 of 4 recipients are eligible").wait_for()
    console.confirm("Launch now")
    page.get_by_role("button", name="Pause…").click()
    console.confirm("Pause campaign")
    page.locator("#campaign-status").filter(has_text="PAUSED").wait_for()
    assert campaign_status(e2e, campaign_id) == "PAUSED"
    console.check("11-campaign-paused")
    page.get_by_role("button", name="Resume").click()
    page.locator("#campaign-status").filter(has_text="RUNNING").wait_for()
    page.locator("#live-status").filter(has_text="COMPLETED").wait_for(timeout=DONE_MS)
    assert campaign_status(e2e, campaign_id) == "COMPLETED"


def test_a_stop_reply_shows_in_inbound_and_on_the_contact(console: Console) -> None:
    page, e2e = console.page, console.stack
    (phone,) = make_users(e2e, "Jaffna", 1, start=300)
    e2e.sim("POST", "/_sim/inbound", json={"from": phone, "body": "STOP"})
    wait_for(
        lambda: (
            e2e.api("GET", f"/v1/users/{phone}").json()["consent"]["state"] == "STOP"
        )
    )
    console.sign_in()
    console.go("Inbound")
    row = page.locator("#inbound-list tr").filter(has_text="STOP")
    row.wait_for()
    assert "+1415***0300" in row.inner_text()
    assert phone not in page.locator("#inbound-list").inner_text()
    console.check("12-inbound")
    console.go("Contacts")
    page.get_by_label("Phone number").fill(phone)
    page.get_by_role("button", name="Find").click()
    history = page.get_by_role("table").filter(has=page.get_by_text("Consent history"))
    history.get_by_text("keyword").wait_for()
    assert "STOP" in page.locator("#contact h2").inner_text()


def test_a_wrong_key_is_refused_with_a_clear_message(console: Console) -> None:
    console.sign_in("not-the-key")
    status = console.page.locator("#signin-status")
    status.filter(has_text="not accepted").wait_for()
    assert console.page.get_by_role("navigation").is_hidden()


def test_an_api_error_is_shown_as_the_apis_message(console: Console) -> None:
    page, e2e = console.page, console.stack
    campaign_id = make_campaign(e2e, "Matara", rate=5, count=1)
    console.sign_in()
    page.get_by_role("heading", level=1, name="Dashboard").wait_for()
    page.goto(console.url + f"#/campaigns/{campaign_id}")
    page.get_by_role("button", name="Launch now").wait_for()
    # Another operator launches it first; this launch is the second one.
    first = e2e.api("POST", f"/v1/campaigns/{campaign_id}/launch")
    assert first.status_code == 202, first.text
    page.get_by_role("button", name="Launch now").click()
    console.confirm("Launch now")
    message = console.banner()
    assert "cannot" in message.lower() or "illegal" in message.lower(), message
    assert page.locator("#banner").get_attribute("class") == "error"
    # The page then shows the state the API holds, with the banner kept.
    page.locator("#campaign-status").filter(has_text="RUNNING").wait_for()
    assert console.banner() == message
    console.check("13-api-error")


def test_erasing_a_contact_asks_first(console: Console) -> None:
    page, e2e = console.page, console.stack
    (phone,) = make_users(e2e, "Negombo", 1, start=400)
    console.sign_in()
    console.go("Contacts")
    page.get_by_label("Phone number").fill(phone)
    page.get_by_role("button", name="Find").click()
    page.get_by_role("button", name="Erase contact…").click()
    page.get_by_role("dialog").get_by_text("cannot be undone").wait_for()
    console.check("14-confirm-erase")
    console.confirm("Keep it")
    assert e2e.api("GET", f"/v1/users/{phone}").status_code == 200
    page.get_by_role("button", name="Erase contact…").click()
    console.confirm("Erase contact")
    console.banner()
    wait_for(lambda: e2e.api("GET", f"/v1/users/{phone}").status_code == 404)


def test_the_segment_builder_composes_groups_negation_and_built_ins(
    console: Console,
) -> None:
    page, e2e = console.page, console.stack
    make_users(e2e, "Kandy", 2, start=500)
    make_users(e2e, "Galle", 1, start=600)
    console.sign_in()
    console.go("Segments")
    # city equals Kandy AND NOT (consent_state equals STOP OR country equals LK)
    page.get_by_label("Field").fill("city")
    page.get_by_label("Value").fill("Kandy")
    page.get_by_role("button", name="+ Group").click()
    group = page.locator("fieldset.node.group fieldset.node.group")
    group.get_by_label("Combine conditions with").select_option("OR")
    group.get_by_label("Field").fill("consent_state")
    group.get_by_label("Value").fill("STOP")
    group.get_by_role("button", name="+ Condition").click()
    group.get_by_label("Field").nth(1).fill("country")
    group.get_by_label("Operator").nth(1).select_option("in")
    group.get_by_label("Value").nth(1).fill("LK, IN")
    group.get_by_role("button", name="NOT (negate)").first.click()
    page.locator("#segment-count").filter(has_text="2").wait_for()
    definition = json.loads(page.get_by_label("Definition (JSON)").input_value())
    assert definition == {
        "logic": "AND",
        "conditions": [
            {"attribute": "city", "operator": "equals", "value": "Kandy"},
            {
                "not": {
                    "logic": "OR",
                    "conditions": [
                        {
                            "attribute": "consent_state",
                            "operator": "equals",
                            "value": "STOP",
                        },
                        {
                            "attribute": "country",
                            "operator": "in",
                            "value": ["LK", "IN"],
                        },
                    ],
                }
            },
        ],
    }
    console.check("15-segment-builder")
    # The JSON view edits the builder too; a bad definition shows the API's 422.
    page.get_by_label("Definition (JSON)").fill(
        '{"attribute": "age", "operator": "between", "value": 1}'
    )
    page.locator("#segment-preview").get_by_text("unknown operator").wait_for()
    assert page.get_by_label("Field").input_value() == "age"


def test_a_triggered_campaign_made_in_the_console_and_the_event_it_answered(
    console: Console,
) -> None:
    page, e2e = console.page, console.stack
    (phone,) = make_users(e2e, "Kandy", 1, start=700)
    template = e2e.api(
        "POST", "/v1/templates", json={"name": "shipped", "body": "Your order shipped"}
    )
    assert template.status_code == 201, template.text
    console.sign_in()
    console.go("Campaigns")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Campaign name").fill("On shipped")
    page.get_by_label("Template").select_option(label="shipped")
    page.get_by_label("Send to").select_option("trigger")
    page.get_by_label("Event type").fill("order_shipped")
    page.get_by_label("Quiet hours").select_option("none")
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_text("Triggered by order_shipped").wait_for()
    page.get_by_role("button", name="Activate").click()
    console.confirm("Activate")
    page.locator("#campaign-status").filter(has_text="ACTIVE").wait_for()

    posted = e2e.api(
        "POST",
        "/v1/events",
        json={"event_id": "order-1", "type": "order_shipped", "phone": phone},
    )
    assert posted.status_code == 202, posted.text
    wait_for(lambda: e2e.api("GET", "/v1/events/order-1").json()["messages"])
    console.go("Events")
    page.get_by_role("button", name="order_shipped").click()
    caused = page.get_by_role("table").filter(
        has=page.get_by_text("Messages it caused")
    )
    caused.get_by_role("link", name=re.compile("_order-1$")).wait_for()
    assert phone not in page.locator("#event-list").inner_text()
    assert "+1415***0700" in page.locator("#event-list").inner_text()
    console.check("16-events")


def test_edit_schedule_and_cancel_a_campaign_asking_first(console: Console) -> None:
    page, e2e = console.page, console.stack
    campaign_id = make_campaign(e2e, "Trinco", rate=5, count=1)
    console.sign_in()
    page.get_by_role("heading", level=1, name="Dashboard").wait_for()
    page.goto(console.url + f"#/campaigns/{campaign_id}")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Rate (messages per second)").fill("2.5")
    page.get_by_label("Frequency cap: at most").fill("2")
    page.get_by_label("messages per hours").fill("24")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("2.5/s").wait_for()
    campaign = e2e.api("GET", f"/v1/campaigns/{campaign_id}").json()
    assert campaign["rate_limit_mps"] == 2.5
    assert campaign["frequency_cap"] == {"max_messages": 2, "per_hours": 24}

    later = datetime.now() + timedelta(days=2)  # the browser's local time
    page.get_by_label("Schedule for").fill(later.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Schedule", exact=True).click()
    console.confirm("Schedule")
    page.locator("#campaign-status").filter(has_text="SCHEDULED").wait_for()
    assert campaign_status(e2e, campaign_id) == "SCHEDULED"

    page.get_by_role("button", name="Cancel campaign…").click()
    console.confirm("Keep it")
    assert campaign_status(e2e, campaign_id) == "SCHEDULED"
    page.get_by_role("button", name="Cancel campaign…").click()
    console.confirm("Cancel campaign")
    page.locator("#campaign-status").filter(has_text="CANCELLED").wait_for()
    assert campaign_status(e2e, campaign_id) == "CANCELLED"


HIDE = (
    "hidden => { Object.defineProperty(document, 'hidden',"
    " {configurable: true, get: () => hidden});"
    " document.dispatchEvent(new Event('visibilitychange')); }"
)


def test_the_dashboard_polls_every_15_s_and_never_while_hidden(
    console: Console,
) -> None:
    page = console.page
    page.clock.install()  # the page's timers run on a clock the test moves
    console.sign_in()
    page.get_by_text("Users per consent state").first.wait_for()
    calls: list[str] = []
    page.on(
        "request", lambda r: calls.append(r.url) if "/v1/dashboard" in r.url else None
    )
    with page.expect_request("**/v1/dashboard"):
        page.clock.run_for(15_000)
    page.locator("p.muted").filter(has_text="refreshes every 15 s").wait_for()
    seen = len(calls)

    page.evaluate(HIDE, True)
    page.clock.run_for(120_000)  # eight intervals while the tab is hidden
    page.evaluate("1")  # a round trip, so any request made is reported
    assert len(calls) == seen

    with page.expect_request("**/v1/dashboard"):
        page.evaluate(HIDE, False)  # visible again: refreshed at once
