"""The local Twilio simulator: REST shapes, error codes, signed webhooks, SDK use."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from flask.testing import FlaskClient
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from local.twilio_simulator import (
    SimulatorConfig,
    SimulatorServer,
    count_segments,
    create_app,
    simulator_of,
)

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "simulator-test-token"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
AUTH = (ACCOUNT_SID, AUTH_TOKEN)
SERVICE_SID = "MG" + "b2" * 16
TO = "+14155550100"


# --- helpers -------------------------------------------------------------------


@dataclass
class Webhook:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class Receiver:
    """A local webhook endpoint that records what it is posted."""

    def __init__(self) -> None:
        self.calls: list[Webhook] = []
        self.fail_next = 0
        self.answer_body = "<Response/>"
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.record(self.path, raw.decode(), dict(self.headers))
                body = receiver.answer_body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}
        )
        self._thread.start()

    def record(self, path: str, body: str, headers: dict[str, str]) -> int:
        with self._cond:
            self.calls.append(Webhook(path, dict(parse_qsl(body)), headers))
            self._cond.notify_all()
            if self.fail_next:
                self.fail_next -= 1
                return 500
            return 200

    def wait_for(self, count: int, timeout: float = 3.0) -> list[Webhook]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.calls) >= count, timeout)
            return list(self.calls)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def make_config(**overrides: Any) -> SimulatorConfig:
    settings: dict[str, Any] = {
        "callback_delay_ms": 1,
        "callback_retry_backoff_ms": 1,
        **overrides,
    }
    return SimulatorConfig(ACCOUNT_SID, AUTH_TOKEN, **settings)


def send(client: FlaskClient, **form: str) -> Any:
    data = {"To": TO, "From": "+15005550006", "Body": "Hello", **form}
    return client.post(MESSAGES_PATH, data=data, auth=AUTH)


def wait_until_idle(client: FlaskClient, timeout: float = 3.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, int] = client.get("/_sim/stats").get_json()
        if stats["callbacks_pending"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.005)


def wait_for_date_sent(client: FlaskClient, sid: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    path = f"{MESSAGES_PATH[:-5]}/{sid}.json"
    while not client.get(path, auth=AUTH).get_json()["date_sent"]:
        assert time.monotonic() < deadline, f"{sid} was never sent"
        time.sleep(0.005)


def assert_signed(call: Webhook, url: str) -> None:
    signature = call.headers["X-Twilio-Signature"]
    assert RequestValidator(AUTH_TOKEN).validate(url, call.params, signature)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def app() -> Iterator[Flask]:
    application = create_app(make_config())
    yield application
    simulator_of(application).close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- sending -------------------------------------------------------------------


def test_accepted_send_answers_twilios_message_resource(client: FlaskClient) -> None:
    response = send(client, Body="Hello there")

    assert response.status_code == 201
    message = response.get_json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert message["account_sid"] == ACCOUNT_SID
    assert (message["to"], message["from"]) == (TO, "+15005550006")
    assert message["status"] == "queued"
    assert message["direction"] == "outbound-api"
    assert message["api_version"] == "2010-04-01"
    assert message["num_segments"] == "1"
    assert message["price"] is None
    assert message["error_code"] is None and message["error_message"] is None
    assert message["uri"] == f"{MESSAGES_PATH[:-5]}/{message['sid']}.json"
    assert set(message["subresource_uris"]) == {"media", "feedback"}
    created = parsedate_to_datetime(message["date_created"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)


def test_send_is_listed_with_its_parameters(client: FlaskClient) -> None:
    sid = send(
        client,
        From="",
        MessagingServiceSid=SERVICE_SID,
        Body="",
        ContentSid="HX123",
        ContentVariables='{"1": "Ada"}',
        StatusCallback="http://127.0.0.1:9/status",
    ).get_json()["sid"]
    send(client, To="+14155550199")

    listed = client.get("/_sim/messages", query_string={"to": TO}).get_json()

    assert [m["sid"] for m in listed["messages"]] == [sid]
    message = listed["messages"][0]
    assert message["messaging_service_sid"] == SERVICE_SID
    assert message["content_sid"] == "HX123"
    assert message["status_callback"] == "http://127.0.0.1:9/status"
    assert datetime.fromisoformat(message["created_at"]).tzinfo is not None


def test_wrong_credentials_answer_401_in_twilios_shape(client: FlaskClient) -> None:
    response = client.post(
        MESSAGES_PATH, data={"To": TO, "Body": "x"}, auth=(ACCOUNT_SID, "wrong")
    )

    assert response.status_code == 401
    assert response.get_json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
        ("4155550100", 21211),
        ("+1 415 555 0100", 21211),
    ],
)
def test_magic_and_invalid_numbers_answer_twilios_codes(
    client: FlaskClient, to: str, code: int
) -> None:
    response = send(client, To=to)

    assert response.status_code == 400
    error = response.get_json()
    assert (error["code"], error["status"]) == (code, 400)
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    listed = client.get("/_sim/messages").get_json()
    assert listed["messages"] == []
    assert [(r["to"], r["code"]) for r in listed["rejected"]] == [(to, code)]


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": ""}, 21603),
        ({"To": ""}, 21604),
        ({"Body": ""}, 21602),
        ({"Body": "x" * 1601}, 21617),
    ],
)
def test_missing_parameters_are_rejected(
    client: FlaskClient, form: dict[str, str], code: int
) -> None:
    response = send(client, **form)

    assert response.status_code == 400
    assert response.get_json()["code"] == code


def test_fail_next_with_429_and_500_then_accepts(client: FlaskClient) -> None:
    client.post("/_sim/config", json={"fail_next_with_429": 2, "fail_next_with_500": 1})

    answers = [send(client) for _ in range(4)]

    assert [a.status_code for a in answers] == [429, 429, 500, 201]
    assert [a.get_json().get("code") for a in answers[:3]] == [20429, 20429, 20500]
    assert answers[0].get_json()["message"] == "Too Many Requests"
    stats = client.get("/_sim/stats").get_json()
    assert (stats["accepted"], stats["rejected"]) == (1, 3)


def test_twilio_list_filters_by_recipient_and_date(client: FlaskClient) -> None:
    first = send(client).get_json()["sid"]
    send(client, To="+14155550199")
    second = send(client).get_json()["sid"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    for sid in (first, second):  # only a sent message has a DateSent to match
        wait_for_date_sent(client, sid)

    page = client.get(
        MESSAGES_PATH, query_string={"To": TO, "DateSent>": "2020-01-01"}, auth=AUTH
    ).get_json()
    future = client.get(
        MESSAGES_PATH, query_string={"DateSent>": tomorrow}, auth=AUTH
    ).get_json()

    assert [m["sid"] for m in page["messages"]] == [second, first]
    assert (page["page"], page["page_size"], page["next_page_uri"]) == (0, 50, None)
    assert future["messages"] == []


def test_create_then_fail_with_500_keeps_the_message_at_twilio(
    client: FlaskClient,
) -> None:
    client.post("/_sim/config", json={"create_then_fail_with_500": 1})

    failed, accepted = send(client, Body="first"), send(client, Body="second")

    assert (failed.status_code, failed.get_json()["code"]) == (500, 20500)
    assert accepted.status_code == 201
    listed = client.get(MESSAGES_PATH, query_string={"To": TO}, auth=AUTH).get_json()
    assert [m["body"] for m in listed["messages"]] == ["second", "first"]
    stats = client.get("/_sim/stats").get_json()
    assert (stats["accepted"], stats["rejected"]) == (2, 0)
    assert stats["created_then_failed"] == 1


def test_a_held_message_stays_queued_without_date_sent(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"hold_next_queued": 1, "hold_queued_ms": 60000})
    callback = f"{receiver.base_url}/status"

    held = send(client, StatusCallback=callback).get_json()["sid"]
    sent = send(client, StatusCallback=callback).get_json()["sid"]
    calls = receiver.wait_for(3)

    assert {call.params["MessageSid"] for call in calls} == {sent}
    by_to = client.get(MESSAGES_PATH, query_string={"To": TO}, auth=AUTH).get_json()
    statuses = {m["sid"]: (m["status"], m["date_sent"]) for m in by_to["messages"]}
    assert statuses[held] == ("queued", None)
    assert statuses[sent][1] is not None
    since = client.get(
        MESSAGES_PATH, query_string={"To": TO, "DateSent>": "2020-01-01"}, auth=AUTH
    ).get_json()
    assert [m["sid"] for m in since["messages"]] == [sent]
    assert client.get("/_sim/stats").get_json()["held_queued"] == 1


def test_a_held_message_goes_on_after_its_hold(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"hold_next_queued": 1, "hold_queued_ms": 50})

    sid = send(client, StatusCallback=f"{receiver.base_url}/s").get_json()["sid"]
    calls = receiver.wait_for(3)

    assert [c.params["MessageStatus"] for c in calls] == ["queued", "sent", "delivered"]
    assert {c.params["MessageSid"] for c in calls} == {sid}


def test_fetch_unknown_message_answers_404(client: FlaskClient) -> None:
    response = client.get(f"{MESSAGES_PATH[:-5]}/SM{'0' * 32}.json", auth=AUTH)

    assert response.status_code == 404
    assert response.get_json()["code"] == 20404


# --- control API ---------------------------------------------------------------


def test_config_rejects_unknown_keys_and_bad_values(client: FlaskClient) -> None:
    assert client.post("/_sim/config", json={"nope": 1}).status_code == 400
    assert (
        client.post("/_sim/config", json={"callback_delay_ms": -1}).status_code == 400
    )
    bad_statuses = {"callback_statuses": ["queued", "lost"]}
    assert client.post("/_sim/config", json=bad_statuses).status_code == 400


def test_config_merges_and_reset_restores_start_up_defaults(
    client: FlaskClient,
) -> None:
    client.post("/_sim/config", json={"undelivered": {"+14155550101": 30003}})
    merged = client.post(
        "/_sim/config",
        json={"undelivered": {"+14155550102": 30007}, "duplicate_callbacks": True},
    ).get_json()
    send(client)

    assert merged["undelivered"] == {"+14155550101": 30003, "+14155550102": 30007}
    assert merged["duplicate_callbacks"] is True
    assert "auth_token" not in merged

    client.post("/_sim/reset")

    config = client.get("/_sim/config").get_json()
    assert (config["undelivered"], config["duplicate_callbacks"]) == ({}, False)
    assert config["callback_delay_ms"] == 1
    assert client.get("/_sim/messages").get_json() == {"messages": [], "rejected": []}
    assert client.get("/_sim/stats").get_json()["accepted"] == 0


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"ok": True}


def test_segments_count_gsm7_and_ucs2() -> None:
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2
    assert count_segments("€" * 80) == 1  # extended GSM-7 characters take two septets
    assert count_segments("é" * 70) == 1
    assert count_segments("ł" * 71) == 2


# --- status callbacks ----------------------------------------------------------


def test_callbacks_arrive_in_order_signed_with_the_given_url(
    client: FlaskClient, receiver: Receiver
) -> None:
    url = f"{receiver.base_url}/twilio/status?message_id=m-1"
    sid = send(
        client, From="", MessagingServiceSid=SERVICE_SID, StatusCallback=url
    ).get_json()["sid"]

    calls = receiver.wait_for(3)

    assert [c.params["MessageStatus"] for c in calls] == ["queued", "sent", "delivered"]
    assert all(c.path == "/twilio/status?message_id=m-1" for c in calls)
    for call in calls:
        assert_signed(call, url)
        assert call.params["MessageSid"] == call.params["SmsSid"] == sid
        assert call.params["SmsStatus"] == call.params["MessageStatus"]
        assert call.params["AccountSid"] == ACCOUNT_SID
        assert call.params["ApiVersion"] == "2010-04-01"
        assert call.params["MessagingServiceSid"] == SERVICE_SID
        assert (call.params["To"], call.params["From"]) == (TO, "+15005550006")
        assert "ErrorCode" not in call.params
    tokens = {c.headers["I-Twilio-Idempotency-Token"] for c in calls}
    assert len(tokens) == 3
    stats = wait_until_idle(client)
    assert (stats["callbacks_sent"], stats["callbacks_pending"]) == (3, 0)
    fetched = client.get(f"{MESSAGES_PATH[:-5]}/{sid}.json", auth=AUTH).get_json()
    assert fetched["status"] == "delivered" and fetched["date_sent"]


def test_configured_phone_ends_undelivered_with_error_code(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"undelivered": {TO: 30005}})
    url = f"{receiver.base_url}/status"
    sid = send(client, StatusCallback=url).get_json()["sid"]

    calls = receiver.wait_for(3)

    assert [c.params["MessageStatus"] for c in calls] == [
        "queued",
        "sent",
        "undelivered",
    ]
    assert calls[-1].params["ErrorCode"] == "30005"
    assert "ErrorCode" not in calls[0].params
    assert_signed(calls[-1], url)
    wait_until_idle(client)
    fetched = client.get(f"{MESSAGES_PATH[:-5]}/{sid}.json", auth=AUTH).get_json()
    assert (fetched["status"], fetched["error_code"]) == ("undelivered", 30005)


def test_duplicate_callbacks_repeat_each_with_the_same_token(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"duplicate_callbacks": True})
    send(client, StatusCallback=f"{receiver.base_url}/status")

    calls = receiver.wait_for(6)

    statuses = [c.params["MessageStatus"] for c in calls]
    assert statuses == ["queued", "queued", "sent", "sent", "delivered", "delivered"]
    tokens = [c.headers["I-Twilio-Idempotency-Token"] for c in calls]
    assert tokens[0::2] == tokens[1::2] and len(set(tokens)) == 3
    assert wait_until_idle(client)["callbacks_sent"] == 6


def test_reordered_callbacks_arrive_reversed_but_the_message_ends_delivered(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"reorder_callbacks": True})
    sid = send(client, StatusCallback=f"{receiver.base_url}/status").get_json()["sid"]

    calls = receiver.wait_for(3)

    assert [c.params["MessageStatus"] for c in calls] == ["delivered", "sent", "queued"]
    wait_until_idle(client)
    fetched = client.get(f"{MESSAGES_PATH[:-5]}/{sid}.json", auth=AUTH).get_json()
    assert fetched["status"] == "delivered"


def test_custom_statuses_and_url_rewrite_sign_the_public_url(
    client: FlaskClient, receiver: Receiver
) -> None:
    public = "https://hooks.example.com"
    client.post(
        "/_sim/config",
        json={
            "callback_statuses": ["sent", "delivered"],
            "url_rewrite": {"from": public, "to": receiver.base_url},
        },
    )
    url = f"{public}/twilio/status?message_id=m-2"
    send(client, StatusCallback=url)

    calls = receiver.wait_for(2)

    assert [c.params["MessageStatus"] for c in calls] == ["sent", "delivered"]
    assert calls[0].path == "/twilio/status?message_id=m-2"
    for call in calls:
        assert_signed(call, url)
        local_url = f"{receiver.base_url}/twilio/status?message_id=m-2"
        assert not RequestValidator(AUTH_TOKEN).validate(
            local_url, call.params, call.headers["X-Twilio-Signature"]
        )


def test_failed_callback_posts_are_retried_as_the_overrides_say_then_dropped(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"callback_statuses": ["delivered"]})
    receiver.fail_next = 2
    url = f"{receiver.base_url}/status#rc=2&rp=5xx"
    send(client, StatusCallback=url)

    calls = receiver.wait_for(3)
    stats = wait_until_idle(client)

    assert len(calls) == 3
    assert len({c.headers["I-Twilio-Idempotency-Token"] for c in calls}) == 1
    assert (stats["callbacks_sent"], stats["callbacks_retried"]) == (1, 2)

    receiver.fail_next = 10
    send(client, StatusCallback=url)
    receiver.wait_for(6)
    stats = wait_until_idle(client)

    assert (stats["callbacks_failed"], stats["callbacks_pending"]) == (1, 0)


def test_unreachable_callback_url_is_counted_as_failed(client: FlaskClient) -> None:
    client.post("/_sim/config", json={"callback_statuses": ["delivered"]})
    send(client, StatusCallback="http://127.0.0.1:9/status")

    stats = wait_until_idle(client)

    assert (stats["callbacks_failed"], stats["callbacks_sent"]) == (1, 0)


def test_reset_drops_pending_callbacks(client: FlaskClient, receiver: Receiver) -> None:
    client.post("/_sim/config", json={"callback_delay_ms": 300})
    send(client, StatusCallback=f"{receiver.base_url}/status")

    assert client.get("/_sim/stats").get_json()["callbacks_pending"] == 3
    client.post("/_sim/reset")

    assert client.get("/_sim/stats").get_json()["callbacks_pending"] == 0
    # Barrier: a message sent after the reset, with the same callback delay;
    # once its three callbacks came, the dropped ones would have come first.
    client.post("/_sim/config", json={"callback_delay_ms": 300})
    after = send(client, StatusCallback=f"{receiver.base_url}/status").get_json()
    calls = receiver.wait_for(3)
    assert {call.params["MessageSid"] for call in calls} == {after["sid"]}


def test_injected_callback_is_signed_and_updates_the_message(
    client: FlaskClient, receiver: Receiver
) -> None:
    client.post("/_sim/config", json={"callback_statuses": ["queued"]})
    url = f"{receiver.base_url}/status?message_id=m-3"
    sid = send(client, StatusCallback=url).get_json()["sid"]
    receiver.wait_for(1)

    answer = client.post(
        "/_sim/callbacks", json={"sid": sid, "status": "failed", "error_code": 30008}
    )
    unknown = client.post("/_sim/callbacks", json={"sid": "SMnope", "status": "sent"})

    assert answer.status_code == 200 and answer.get_json()["status"] == 200
    call = receiver.calls[-1]
    assert (call.params["MessageStatus"], call.params["ErrorCode"]) == (
        "failed",
        "30008",
    )
    assert_signed(call, url)
    assert unknown.status_code == 404
    listed = client.get("/_sim/messages").get_json()["messages"]
    assert (listed[0]["status"], listed[0]["error_code"]) == ("failed", 30008)


# --- inbound -------------------------------------------------------------------


def test_inbound_is_posted_signed_with_twilios_parameters(
    client: FlaskClient, receiver: Receiver
) -> None:
    public = "https://hooks.example.com/twilio/inbound"
    client.post(
        "/_sim/config",
        json={
            "inbound_url": public,
            "url_rewrite": {
                "from": "https://hooks.example.com",
                "to": receiver.base_url,
            },
        },
    )

    answer = client.post(
        "/_sim/inbound", json={"from": TO, "body": "stop", "opt_out_type": "STOP"}
    ).get_json()

    call = receiver.calls[0]
    assert answer == {
        "status": 200,
        "body": "<Response/>",
        "message_sid": call.params["MessageSid"],
    }
    assert call.path == "/twilio/inbound"
    assert_signed(call, public)
    params = call.params
    assert re.fullmatch(r"SM[0-9a-f]{32}", params["MessageSid"])
    assert params["SmsSid"] == params["SmsMessageSid"] == params["MessageSid"]
    assert (params["From"], params["To"], params["Body"]) == (
        TO,
        "+15005550006",
        "stop",
    )
    assert (params["NumMedia"], params["NumSegments"]) == ("0", "1")
    assert (params["OptOutType"], params["AccountSid"]) == ("STOP", ACCOUNT_SID)
    assert params["ApiVersion"] == "2010-04-01"


def test_inbound_needs_a_configured_url_and_a_known_opt_out_type(
    client: FlaskClient, receiver: Receiver
) -> None:
    no_url = client.post("/_sim/inbound", json={"from": TO, "body": "hi"})
    client.post("/_sim/config", json={"inbound_url": f"{receiver.base_url}/in"})
    bad_type = client.post(
        "/_sim/inbound", json={"from": TO, "body": "x", "opt_out_type": "MAYBE"}
    )
    given_sid = client.post(
        "/_sim/inbound",
        json={"from": TO, "to": "+15550001111", "body": "hi", "message_sid": "SMgiven"},
    ).get_json()

    assert (no_url.status_code, bad_type.status_code) == (400, 400)
    assert given_sid["message_sid"] == "SMgiven"
    assert receiver.calls[0].params["To"] == "+15550001111"
    assert "OptOutType" not in receiver.calls[0].params


# --- the real twilio SDK against a served simulator ----------------------------


class SimulatorHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to the simulator instead of api.twilio.com."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> TwilioResponse:
        local = url.replace("https://api.twilio.com", self.base_url, 1)
        return super().request(method, local, *args, **kwargs)


@pytest.fixture
def served() -> Iterator[SimulatorServer]:
    with SimulatorServer(make_config()) as server:
        yield server


@pytest.fixture
def sdk(served: SimulatorServer) -> Client:
    return Client(
        ACCOUNT_SID, AUTH_TOKEN, http_client=SimulatorHttpClient(served.base_url)
    )


def test_sdk_sends_fetches_and_lists(sdk: Client, receiver: Receiver) -> None:
    message = sdk.messages.create(
        to=TO,
        from_="+15005550006",
        body="Hello from the SDK",
        status_callback=f"{receiver.base_url}/status",
    )

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid or "")
    assert message.status == "queued"
    assert message.date_created is not None
    assert [c.params["MessageStatus"] for c in receiver.wait_for(3)] == [
        "queued",
        "sent",
        "delivered",
    ]
    fetched = sdk.messages(message.sid).fetch()
    assert (fetched.status, fetched.to) == ("delivered", TO)
    since = datetime.now(UTC) - timedelta(hours=1)
    listed = sdk.messages.list(to=TO, date_sent_after=since)
    assert [m.sid for m in listed] == [message.sid]


def test_sdk_pages_through_the_list(sdk: Client) -> None:
    sids = [
        sdk.messages.create(to=TO, from_="+15005550006", body=str(i)).sid
        for i in range(3)
    ]

    listed = sdk.messages.list(to=TO, page_size=2)

    assert [m.sid for m in listed] == sids[::-1]


def test_sdk_raises_twilio_rest_exception_for_magic_numbers(sdk: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        sdk.messages.create(to="+15005550004", from_="+15005550006", body="x")

    assert (raised.value.code, raised.value.status) == (21610, 400)


def test_sdk_sees_429_as_a_rest_exception(sdk: Client, served: SimulatorServer) -> None:
    served.simulator.update_config({"fail_next_with_429": 1})

    with pytest.raises(TwilioRestException) as raised:
        sdk.messages.create(to=TO, from_="+15005550006", body="x")

    assert (raised.value.code, raised.value.status) == (20429, 429)
    assert sdk.messages.create(to=TO, from_="+15005550006", body="x").sid


# --- API keys -------------------------------------------------------------------

KEY_SID = "SK" + "2" * 32
KEY_SECRET = "key-secret"  # noqa: S105 - a test credential


def test_sdk_with_an_api_key_sends_and_a_wrong_secret_is_refused() -> None:
    config = make_config(api_keys={KEY_SID: KEY_SECRET}, rest_requires_api_key=True)
    with SimulatorServer(config) as server:
        http = SimulatorHttpClient(server.base_url)
        keyed = Client(KEY_SID, KEY_SECRET, ACCOUNT_SID, http_client=http)
        message = keyed.messages.create(to=TO, from_="+15005550006", body="Hi")
        assert keyed.messages(message.sid).fetch().to == TO

        for username, password in ((KEY_SID, "wrong"), (ACCOUNT_SID, AUTH_TOKEN)):
            refused = Client(username, password, ACCOUNT_SID, http_client=http)
            with pytest.raises(TwilioRestException) as raised:
                refused.messages.create(to=TO, from_="+15005550006", body="Hi")
            assert (raised.value.status, raised.value.code) == (401, 20003)


def test_an_api_key_reaches_only_its_own_account(client: FlaskClient) -> None:
    config = make_config(api_keys={KEY_SID: KEY_SECRET})
    keyed = create_app(config)
    try:
        other = f"/2010-04-01/Accounts/AC{'9' * 32}/Messages.json"
        response = keyed.test_client().post(
            other, data={"To": TO, "Body": "x"}, auth=(KEY_SID, KEY_SECRET)
        )
        assert response.status_code == 404
        # Without the API-key-only mode, the auth token still works as at Twilio.
        assert send(keyed.test_client()).status_code == 201
    finally:
        simulator_of(keyed).close()
