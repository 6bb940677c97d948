"""The simulator is at least as strict as Twilio (docs/architecture.md §13).

Channel mismatches (21910), sends to numbers that texted STOP (21610), free-form
WhatsApp outside the 24-hour window (63016), `accepted` for Messaging Service
sends, no DateSent before a message is sent, and callback retries only as
Twilio's defaults and the URL's connection overrides allow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from local.twilio_simulator import (
    ConnectionOverrides,
    connection_overrides,
    create_app,
    simulator_of,
)
from tests.unit.local.test_twilio_simulator import (
    AUTH,
    MESSAGES_PATH,
    SERVICE_SID,
    TO,
    Receiver,
    assert_signed,
    make_config,
    send,
    wait_until_idle,
)

WA_TO = f"whatsapp:{TO}"
WA_FROM = "whatsapp:+14155238886"
CONTENT_SID = "HX" + "c" * 32


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(receiver: Receiver, clock: Clock) -> Iterator[Flask]:
    application = create_app(
        make_config(inbound_url=f"{receiver.base_url}/twilio/inbound"), clock
    )
    yield application
    simulator_of(application).close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def inbound(client: FlaskClient, sender: str, body: str, **extra: Any) -> None:
    answer = client.post("/_sim/inbound", json={"from": sender, "body": body, **extra})
    assert answer.status_code == 200


def fetch(client: FlaskClient, sid: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.get(
        f"{MESSAGES_PATH[:-5]}/{sid}.json", auth=AUTH
    ).get_json()
    return answer


def wait_for_status(client: FlaskClient, sid: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 3
    while (message := fetch(client, sid))["status"] != status:
        assert time.monotonic() < deadline, f"{sid} stayed {message['status']}"
        time.sleep(0.005)
    return message


# --- 21910: the To/From channel pair ------------------------------------------------


@pytest.mark.parametrize(("to", "sender"), [(TO, WA_FROM), (WA_TO, "+15005550006")])
def test_a_channel_mismatch_is_refused_with_21910(
    client: FlaskClient, to: str, sender: str
) -> None:
    answer = send(client, To=to, From=sender)
    assert (answer.status_code, answer.get_json()["code"]) == (400, 21910)


def test_a_whatsapp_pair_is_accepted(client: FlaskClient) -> None:
    inbound(client, WA_TO, "hi")
    assert send(client, To=WA_TO, From=WA_FROM).status_code == 201


def test_a_messaging_service_picks_a_sender_in_the_recipients_channel(
    client: FlaskClient,
) -> None:
    inbound(client, WA_TO, "hi")
    answer = send(client, To=WA_TO, From="", MessagingServiceSid=SERVICE_SID)
    assert answer.status_code == 201


# --- 21610: STOP for any number -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "extra"),
    [("STOP", {}), ("  unsubscribe ", {}), ("Stop it", {"opt_out_type": "STOP"})],
)
def test_a_number_that_texted_stop_is_refused_with_21610(
    client: FlaskClient, body: str, extra: dict[str, str]
) -> None:
    number = "+14155550123"
    assert send(client, To=number).status_code == 201
    inbound(client, number, body, **extra)

    answer = send(client, To=number)

    assert (answer.status_code, answer.get_json()["code"]) == (400, 21610)
    assert send(client, To="+14155550124").status_code == 201  # only that number


def test_start_clears_the_opt_out(client: FlaskClient) -> None:
    number = "+14155550125"
    inbound(client, number, "STOP")
    inbound(client, number, "START")
    assert send(client, To=number).status_code == 201


def test_reset_forgets_opt_outs(client: FlaskClient) -> None:
    inbound(client, TO, "STOP")
    client.post("/_sim/reset")
    assert send(client).status_code == 201


# --- 63016: free-form WhatsApp outside the 24-hour window -----------------------------


def test_free_form_whatsapp_to_a_silent_user_fails_with_63016(
    client: FlaskClient, receiver: Receiver
) -> None:
    callback = f"{receiver.base_url}/status"
    answer = send(client, To=WA_TO, From=WA_FROM, StatusCallback=callback)

    assert answer.status_code == 201  # Twilio accepts it, then it fails
    calls = receiver.wait_for(2)
    assert [c.params["MessageStatus"] for c in calls] == ["queued", "failed"]
    assert calls[-1].params["ErrorCode"] == "63016"
    message = wait_for_status(client, answer.get_json()["sid"], "failed")
    assert (message["error_code"], message["date_sent"]) == (63016, None)


def test_free_form_whatsapp_goes_within_24_hours_of_the_last_inbound(
    client: FlaskClient, clock: Clock
) -> None:
    inbound(client, WA_TO, "where is my order?")
    clock.now += timedelta(hours=23, minutes=59)
    sid = send(client, To=WA_TO, From=WA_FROM).get_json()["sid"]
    assert wait_for_status(client, sid, "delivered")["error_code"] is None


def test_free_form_whatsapp_fails_24_hours_after_the_last_inbound(
    client: FlaskClient, clock: Clock
) -> None:
    inbound(client, WA_TO, "where is my order?")
    clock.now += timedelta(hours=24)
    sid = send(client, To=WA_TO, From=WA_FROM).get_json()["sid"]
    assert wait_for_status(client, sid, "failed")["error_code"] == 63016


def test_a_content_template_goes_outside_the_window(client: FlaskClient) -> None:
    sid = send(
        client,
        To=WA_TO,
        From=WA_FROM,
        Body="",
        ContentSid=CONTENT_SID,
        ContentVariables='{"1": "Ann"}',
    ).get_json()["sid"]
    assert wait_for_status(client, sid, "delivered")["error_code"] is None


# --- initial status and DateSent ------------------------------------------------------


def test_messaging_service_sends_start_accepted_and_from_sends_queued(
    client: FlaskClient,
) -> None:
    client.post("/_sim/config", json={"callback_delay_ms": 60_000})
    service = send(client, From="", MessagingServiceSid=SERVICE_SID).get_json()
    direct = send(client).get_json()
    assert (service["status"], direct["status"]) == ("accepted", "queued")


def test_date_sent_is_empty_until_sent_and_unsent_messages_match_no_bound(
    client: FlaskClient,
) -> None:
    client.post("/_sim/config", json={"callback_delay_ms": 60_000})
    sid = send(client).get_json()["sid"]
    listed = client.get(
        MESSAGES_PATH, query_string={"To": TO, "DateSent>": "2020-01-01"}, auth=AUTH
    ).get_json()
    everything = client.get(MESSAGES_PATH, query_string={"To": TO}, auth=AUTH)

    assert fetch(client, sid)["date_sent"] is None
    assert listed["messages"] == []
    assert [m["sid"] for m in everything.get_json()["messages"]] == [sid]


# --- callback retries: Twilio's defaults and the connection overrides -----------------


def test_connection_override_defaults_and_bounds() -> None:
    assert connection_overrides("https://h/status") == ConnectionOverrides(
        5000, 15000, 15000, 1, frozenset({"ct"})
    )
    parsed = connection_overrides("https://h/s?x=1#ct=50&rt=99999&rc=9&rp=5xx,rt,zz")
    assert parsed == ConnectionOverrides(100, 15000, 15000, 5, frozenset({"5xx", "rt"}))


def test_by_default_a_5xx_is_not_retried(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"callback_statuses": ["delivered"]})
    receiver.fail_next = 1
    send(client, StatusCallback=f"{receiver.base_url}/status")

    stats = wait_until_idle(client)

    assert len(receiver.calls) == 1
    assert (stats["callbacks_failed"], stats["callbacks_retried"]) == (1, 0)


def test_by_default_a_refused_connection_is_retried_once(client: FlaskClient) -> None:
    client.post("/_sim/config", json={"callback_statuses": ["delivered"]})
    send(client, StatusCallback="http://127.0.0.1:9/status")

    stats = wait_until_idle(client)

    assert (stats["callbacks_failed"], stats["callbacks_retried"]) == (1, 1)


@pytest.mark.parametrize(
    ("fragment", "attempts"),
    [("rc=3&rp=all", 4), ("rc=3&rp=4xx", 1), ("rc=2&rp=ct,5xx", 3), ("rc=0&rp=5xx", 1)],
)
def test_the_connection_overrides_decide_retries_on_a_5xx(
    client: FlaskClient, receiver: Receiver, fragment: str, attempts: int
) -> None:
    client.post("/_sim/config", json={"callback_statuses": ["delivered"]})
    receiver.fail_next = 10
    send(client, StatusCallback=f"{receiver.base_url}/status#{fragment}")

    stats = wait_until_idle(client)

    assert len(receiver.calls) == attempts
    assert stats["callbacks_retried"] == attempts - 1


def test_the_fragment_is_neither_sent_nor_signed(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"callback_statuses": ["delivered"]})
    url = f"{receiver.base_url}/twilio/status?message_id=m-1"
    send(client, StatusCallback=f"{url}#rc=3&rp=5xx,ct,rt")

    call = receiver.wait_for(1)[0]

    assert call.path == "/twilio/status?message_id=m-1"
    assert_signed(call, url)


@pytest.mark.parametrize(("fragment", "lands"), [("", False), ("#rc=1&rp=5xx", True)])
def test_an_injected_503_is_retried_only_when_the_overrides_ask(
    client: FlaskClient, receiver: Receiver, fragment: str, lands: bool
) -> None:
    client.post(
        "/_sim/config",
        json={"callback_statuses": ["delivered"], "callback_answer_503_next": 1},
    )
    send(client, StatusCallback=f"{receiver.base_url}/status{fragment}")

    stats = wait_until_idle(client)

    assert stats["callbacks_answered_503"] == 1
    assert len(receiver.calls) == int(lands)
    assert stats["callbacks_sent"] == int(lands)


class SlowFailingReceiver:
    """Answers 500 after `delay` seconds, counting attempts."""

    def __init__(self, delay: float) -> None:
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                threading.Event().wait(delay)  # a slow server, not a sync point
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/status"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_no_retry_starts_after_the_total_time(client: FlaskClient) -> None:
    # Each attempt takes 0.3 s; a total time of 200 ms leaves room for none.
    slow = SlowFailingReceiver(0.3)
    try:
        client.post("/_sim/config", json={"callback_statuses": ["delivered"]})
        send(client, StatusCallback=f"{slow.url}#rc=5&rp=5xx&tt=200")
        stats = wait_until_idle(client, timeout=5)
    finally:
        slow.close()
    assert (slow.attempts, stats["callbacks_retried"]) == (1, 0)


def test_injected_inbound_is_posted_and_signed_without_the_fragment(
    receiver: Receiver,
) -> None:
    url = f"{receiver.base_url}/twilio/inbound"
    app = create_app(make_config(inbound_url=f"{url}#rc=3&rp=5xx"))
    try:
        answer = app.test_client().post(
            "/_sim/inbound", json={"from": TO, "body": "hi"}
        )
        assert answer.get_json()["status"] == 200
    finally:
        simulator_of(app).close()
    call = receiver.wait_for(1)[0]
    assert call.path == "/twilio/inbound"
    assert_signed(call, url)
