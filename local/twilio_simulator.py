"""Local stand-in for Twilio's Messages API, status callbacks and inbound webhooks.

The real twilio SDK talks to it (its base URL rewritten by a custom HttpClient), so
requests arrive as Twilio would get them. Control endpoints under ``/_sim`` let
tests inspect sends, inject inbound messages and callbacks, and change behaviour.

    python -m local.twilio_simulator --port 8099 --account-sid AC... --auth-token T
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import heapq
import hmac
import itertools
import math
import os
import re
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Flask, Response, jsonify, request
from twilio.request_validator import RequestValidator
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

API_VERSION = "2010-04-01"
ACCOUNT_PATH = f"/{API_VERSION}/Accounts/<account_sid>"
DEFAULT_NUMBER = "+15005550006"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_BODY_CHARS = 1600
FAILED_STATUSES = frozenset({"undelivered", "failed"})
KNOWN_STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "receiving",
        "received",
    }
)
OPT_OUT_TYPES = frozenset({"STOP", "START", "HELP"})
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CHANNEL_PREFIX = re.compile(r"^(whatsapp|sms|messenger):")

# Twilio's documented test numbers: sending to them fails with these codes.
MAGIC_TO_ERRORS: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (
        21612,
        "The 'To' phone number: {to}, is not currently reachable using the "
        "'From' phone number: {sender} via SMS.",
    ),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated "
        "by the 'To' number: {to}.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}

DELIVERY_ERROR_MESSAGES: dict[int, str] = {
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


# --- configuration -----------------------------------------------------------


@dataclass(frozen=True)
class SimulatorConfig:
    """Start-up settings; the fields in ``CONTROL_KEYS`` may change at run time."""

    account_sid: str
    auth_token: str
    default_number: str = DEFAULT_NUMBER
    # API keys (SK... SID → secret) accepted for REST basic auth, as Twilio
    # accepts a key of the account in place of the auth token.
    api_keys: Mapping[str, str] = field(default_factory=dict)
    # Stricter than Twilio, for the local stack: REST calls must use an API
    # key, so a function that still calls with the master auth token fails.
    rest_requires_api_key: bool = False
    inbound_url: str | None = None
    callback_delay_ms: int = 20
    duplicate_callbacks: bool = False
    reorder_callbacks: bool = False
    fail_next_with_429: int = 0
    fail_next_with_500: int = 0
    # Ambiguous-send faults: Twilio creates the message, then answers 500;
    # or the message stays queued (no DateSent, no callback) for a while.
    create_then_fail_with_500: int = 0
    hold_next_queued: int = 0
    hold_queued_ms: int = 0
    callback_statuses: tuple[str, ...] = ("queued", "sent", "delivered")
    url_rewrite: Mapping[str, str] | None = None
    undelivered: Mapping[str, int] = field(default_factory=dict)
    response_delay_ms: int = 0
    callback_workers: int = 8
    callback_retry_backoff_ms: int = 50
    # Test hook: the next N callback attempts are answered 503 (as a front end
    # that is restarting would), without reaching the webhook.
    callback_answer_503_next: int = 0
    callback_timeout_s: float = 5.0


class ControlError(ValueError):
    """A control-API request that is not acceptable (answered 400)."""


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ControlError("must be a non-negative integer")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ControlError("must be a boolean")
    return value


def _optional_url(value: Any) -> str | None:
    if value is not None and not _is_http_url(value):
        raise ControlError("must be an http(s) URL or null")
    return value


def _statuses(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ControlError("must be a non-empty list of message statuses")
    unknown = [status for status in value if status not in KNOWN_STATUSES]
    if unknown:
        raise ControlError(f"unknown statuses {unknown}")
    return tuple(value)


def _url_rewrite(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"from", "to"}:
        raise ControlError('must be {"from": prefix, "to": prefix} or null')
    if not all(isinstance(prefix, str) for prefix in value.values()):
        raise ControlError("prefixes must be strings")
    return {"from": value["from"], "to": value["to"]}


def _undelivered_codes(value: Any) -> dict[str, int | None]:
    if not isinstance(value, dict):
        raise ControlError("must be an object {phone: error code}")
    for code in value.values():
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ControlError("error codes must be integers (null removes a phone)")
    return dict(value)


CONTROL_KEYS: dict[str, Callable[[Any], Any]] = {
    "undelivered": _undelivered_codes,
    "callback_delay_ms": _non_negative_int,
    "duplicate_callbacks": _boolean,
    "reorder_callbacks": _boolean,
    "fail_next_with_429": _non_negative_int,
    "fail_next_with_500": _non_negative_int,
    "create_then_fail_with_500": _non_negative_int,
    "hold_next_queued": _non_negative_int,
    "hold_queued_ms": _non_negative_int,
    "callback_statuses": _statuses,
    "url_rewrite": _url_rewrite,
    "inbound_url": _optional_url,
    "response_delay_ms": _non_negative_int,
    "callback_answer_503_next": _non_negative_int,
}


def merge_config(config: SimulatorConfig, changes: Any) -> SimulatorConfig:
    """Validate control-API changes and merge them; ``undelivered`` merges by phone."""
    if not isinstance(changes, dict):
        raise ControlError("config must be a JSON object")
    unknown = sorted(set(changes) - set(CONTROL_KEYS))
    if unknown:
        raise ControlError(f"unknown config keys {unknown}")
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        try:
            updates[key] = CONTROL_KEYS[key](value)
        except ControlError as err:
            raise ControlError(f"{key}: {err}") from None
    if "undelivered" in updates:
        merged = {**config.undelivered, **updates["undelivered"]}
        updates["undelivered"] = {k: v for k, v in merged.items() if v is not None}
    return dataclasses.replace(config, **updates)


def config_view(config: SimulatorConfig) -> dict[str, Any]:
    """The config as JSON, without the auth token."""
    view = dataclasses.asdict(config)
    view.pop("auth_token")
    view["api_keys"] = sorted(config.api_keys)  # the SIDs, never the secrets
    view["callback_statuses"] = list(config.callback_statuses)
    return view


# --- Twilio shapes -------------------------------------------------------------


class TwilioApiError(Exception):
    """An error answered in Twilio's JSON error shape."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment else None


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def bare_phone(address: str) -> str:
    """``whatsapp:+1415...`` → ``+1415...``."""
    return CHANNEL_PREFIX.sub("", address)


def count_segments(text: str) -> int:
    """SMS segments: GSM-7 (160/153 septets) or UCS-2 (70/67 code units)."""
    if not text:
        return 1
    if all(char in GSM7_BASIC or char in GSM7_EXTENDED for char in text):
        units = sum(2 if char in GSM7_EXTENDED else 1 for char in text)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def message_uri(account_sid: str, sid: str, suffix: str = ".json") -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}{suffix}"


def message_resource(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored message in Twilio's Message resource JSON shape."""
    account_sid, sid = record["account_sid"], record["sid"]
    code = record["error_code"]
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": record["body"],
        "date_created": _rfc2822(record["created_at"]),
        "date_sent": _rfc2822(record["date_sent"]),
        "date_updated": _rfc2822(record["date_updated"]),
        "direction": "outbound-api",
        "error_code": code,
        "error_message": DELIVERY_ERROR_MESSAGES.get(code) if code else None,
        "from": record["from"],
        "messaging_service_sid": record["messaging_service_sid"],
        "num_media": record["num_media"],
        "num_segments": str(record["num_segments"]),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": record["status"],
        "subresource_uris": {
            "media": message_uri(account_sid, sid, "/Media.json"),
            "feedback": message_uri(account_sid, sid, "/Feedback.json"),
        },
        "to": record["to"],
        "uri": message_uri(account_sid, sid),
    }


def simulator_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored message as ``GET /_sim/messages`` lists it."""
    return {
        "sid": record["sid"],
        "to": record["to"],
        "from": record["from"],
        "messaging_service_sid": record["messaging_service_sid"],
        "body": record["body"],
        "content_sid": record["content_sid"],
        "content_variables": record["content_variables"],
        "status": record["status"],
        "status_callback": record["status_callback"],
        "created_at": record["created_at"].isoformat(),
        "error_code": record["error_code"],
    }


# --- send validation -----------------------------------------------------------


def _bad_request(code: int, message: str) -> TwilioApiError:
    return TwilioApiError(400, code, message)


def _check_recipient(to: str, sender: str) -> None:
    if not to:
        raise _bad_request(21604, "A 'To' phone number is required.")
    number = bare_phone(to)
    magic = MAGIC_TO_ERRORS.get(number)
    if magic:
        code, template = magic
        raise _bad_request(code, template.format(to=to, sender=sender))
    if not E164.match(number):
        raise _bad_request(21211, f"The 'To' number {to} is not a valid phone number.")


def _check_sender(form: Mapping[str, str]) -> None:
    if not form.get("From") and not form.get("MessagingServiceSid"):
        raise _bad_request(21603, "A 'From' phone number is required.")


def _check_content(form: Mapping[str, str]) -> None:
    if not (form.get("Body") or form.get("ContentSid") or form.get("MediaUrl")):
        raise _bad_request(21602, "Message body is required.")
    if len(form.get("Body", "")) > MAX_BODY_CHARS:
        raise _bad_request(
            21617, "The concatenated message body exceeds the 1600 character limit."
        )


def _check_status_callback(form: Mapping[str, str]) -> None:
    callback = form.get("StatusCallback")
    if callback and not _is_http_url(callback):
        raise _bad_request(21609, f"The StatusCallback URL {callback} is not valid.")


def validate_send(form: Mapping[str, str], default_number: str) -> None:
    """Raise the error Twilio answers for an unacceptable send, if any."""
    _check_sender(form)
    _check_recipient(form.get("To", ""), form.get("From") or default_number)
    check_channel_pair(form)
    _check_content(form)
    _check_status_callback(form)


def _sender_for(to: str, given: str | None, default_number: str) -> str:
    """The number the message goes out from, in the recipient's channel."""
    if given:
        return given
    prefix = CHANNEL_PREFIX.match(to)
    return f"{prefix.group(0)}{default_number}" if prefix else default_number


def new_record(
    account_sid: str, form: Mapping[str, str], media: list[str], default_number: str
) -> dict[str, Any]:
    now = _now()
    to, body = form["To"], form.get("Body", "")
    return {
        "sid": "SM" + secrets.token_hex(16),
        "account_sid": account_sid,
        "to": to,
        "from": form.get("From") or None,
        "sender": _sender_for(to, form.get("From"), default_number),
        "messaging_service_sid": form.get("MessagingServiceSid") or None,
        "body": body,
        "content_sid": form.get("ContentSid") or None,
        "content_variables": form.get("ContentVariables") or None,
        "status": initial_status(form),
        "status_callback": form.get("StatusCallback") or None,
        "forced_error": None,
        "created_at": now,
        "date_sent": None,
        "date_updated": now,
        "error_code": None,
        "num_segments": count_segments(body),
        "num_media": str(len(media)),
    }


# --- strictness: channels, opt-outs, the WhatsApp window -------------------------

WHATSAPP_WINDOW = timedelta(hours=24)
# Twilio's default opt-out handling (Advanced Opt-Out off): these keywords stop
# and restart messages from the account to the number.
STOP_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
START_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
WINDOW_CLOSED = 63016


def channel_of(address: str) -> str:
    prefix = CHANNEL_PREFIX.match(address)
    return prefix.group(1) if prefix else "sms"


def check_channel_pair(form: Mapping[str, str]) -> None:
    """21910: a From and a To of different channels (a Messaging Service picks
    its sender in the recipient's channel, so it cannot mismatch)."""
    sender, to = form.get("From"), form.get("To", "")
    if sender and channel_of(sender) != channel_of(to):
        raise _bad_request(
            21910,
            "Invalid From and To pair. From and To should be of the same channel",
        )


def opt_out_change(params: Mapping[str, str]) -> bool | None:
    """True for an inbound STOP, False for START, None for anything else."""
    kind = params.get("OptOutType") or params.get("Body", "").strip().upper()
    if kind in STOP_KEYWORDS:
        return True
    if kind in START_KEYWORDS:
        return False
    return None


def outside_whatsapp_window(
    form: Mapping[str, str], last_inbound: datetime | None, now: datetime
) -> bool:
    """Free-form WhatsApp more than 24 h after the user last wrote (63016)."""
    if channel_of(form.get("To", "")) != "whatsapp" or form.get("ContentSid"):
        return False
    return last_inbound is None or now - last_inbound >= WHATSAPP_WINDOW


def initial_status(form: Mapping[str, str]) -> str:
    """Twilio answers `accepted` for a Messaging Service send, `queued` otherwise."""
    return "accepted" if form.get("MessagingServiceSid") else "queued"


# --- webhook connection overrides ------------------------------------------------

RETRY_POLICIES = frozenset({"4xx", "5xx", "ct", "rt", "all"})


@dataclass(frozen=True)
class ConnectionOverrides:
    """Twilio's per-URL webhook settings (``#ct=..&rt=..&tt=..&rc=..&rp=..``).

    By default Twilio retries once, and only when it could not connect.
    """

    connect_timeout_ms: int = 5000
    read_timeout_ms: int = 15000
    total_timeout_ms: int = 15000
    retry_count: int = 1
    retry_policy: frozenset[str] = frozenset({"ct"})

    def retries(self, failure: str) -> bool:
        return failure in self.retry_policy or "all" in self.retry_policy


def _bounded(value: str, low: int, high: int, default: int) -> int:
    try:
        number = int(value)
    except ValueError:
        return default
    return min(max(number, low), high)


def connection_overrides(url: str) -> ConnectionOverrides:
    """The overrides in a webhook URL's fragment; unknown keys are ignored."""
    _, _, fragment = url.partition("#")
    pairs = dict(pair.partition("=")[::2] for pair in fragment.split("&") if pair)
    defaults = ConnectionOverrides()
    policy = {p for p in pairs.get("rp", "").split(",") if p in RETRY_POLICIES}
    return ConnectionOverrides(
        connect_timeout_ms=_bounded(
            pairs.get("ct", ""), 100, 10000, defaults.connect_timeout_ms
        ),
        read_timeout_ms=_bounded(
            pairs.get("rt", ""), 100, 15000, defaults.read_timeout_ms
        ),
        total_timeout_ms=_bounded(
            pairs.get("tt", ""), 100, 15000, defaults.total_timeout_ms
        ),
        retry_count=_bounded(pairs.get("rc", ""), 0, 5, defaults.retry_count),
        retry_policy=frozenset(policy) or defaults.retry_policy,
    )


def without_fragment(url: str) -> str:
    """What Twilio requests and signs: the fragment never leaves Twilio."""
    return url.partition("#")[0]


def failure_kind(
    status_code: int | None, error: requests.RequestException | None
) -> str | None:
    """How a webhook attempt failed, in retry-policy terms; None for a 2xx/3xx."""
    if isinstance(error, requests.ConnectionError):  # refused, or connect timeout
        return "ct"
    if error is not None:
        return "rt"
    if status_code is not None and 400 <= status_code < 500:
        return "4xx"
    if status_code is not None and status_code >= 500:
        return "5xx"
    return None


# --- list filters --------------------------------------------------------------


def _parse_date_bound(value: str) -> tuple[datetime, bool]:
    """A ``DateSent`` bound: (moment, whether it was a bare date)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC), True
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad_request(20001, f"Invalid DateSent value {value!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), False


def _date_predicate(op: str, value: str) -> Callable[[datetime], bool]:
    bound, bare_date = _parse_date_bound(value)
    if op == ">":
        return lambda moment: moment >= bound
    if op == "<" and bare_date:
        return lambda moment: moment < bound + timedelta(days=1)
    if op == "<":
        return lambda moment: moment <= bound
    return lambda moment: moment.date() == bound.date()


RecordCheck = Callable[[Mapping[str, Any]], bool]


def _field_equals(field_name: str, wanted: str, record: Mapping[str, Any]) -> bool:
    return bool(record[field_name] == wanted)


def _sent_within(
    matches: Callable[[datetime], bool], record: Mapping[str, Any]
) -> bool:
    # As Twilio: a message still queued or accepted has no DateSent, so no
    # DateSent filter matches it (reconciliation must look without one).
    sent = record["date_sent"]
    return sent is not None and matches(sent)


def list_filters(args: Mapping[str, str]) -> list[RecordCheck]:
    """Filters for Twilio's message list: To, From and DateSent (=, <, >).

    The SDK sends ``DateSent>`` and ``DateSent<`` (``DateSent>=2024-01-01`` on the
    wire). A message that is not sent yet matches no DateSent filter.
    """
    checks: list[RecordCheck] = []
    for key, field_name in (("To", "to"), ("From", "sender")):
        if args.get(key):
            checks.append(partial(_field_equals, field_name, args[key]))
    for op in ("", ">", "<"):
        if args.get(f"DateSent{op}"):
            matches = _date_predicate(op, args[f"DateSent{op}"])
            checks.append(partial(_sent_within, matches))
    return checks


def _page_number(args: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(args.get(key, default))
    except ValueError:
        raise _bad_request(20001, f"Invalid {key}") from None


def page_of(
    records: list[dict[str, Any]], args: Mapping[str, str], path: str
) -> dict[str, Any]:
    """Twilio's page JSON for already filtered records, newest first."""
    size = min(max(_page_number(args, "PageSize", DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
    page = max(_page_number(args, "Page", 0), 0)
    start = page * size
    items = records[::-1][start : start + size]
    kept = {k: v for k, v in args.items() if k not in ("Page", "PageSize", "PageToken")}

    def uri(number: int) -> str:
        query = {**kept, "PageSize": size, "Page": number}
        if number:
            query["PageToken"] = f"PA{number}"
        return f"{path}?{urlencode(query)}"

    return {
        "end": start + max(len(items) - 1, 0),
        "first_page_uri": uri(0),
        "messages": [message_resource(record) for record in items],
        "next_page_uri": uri(page + 1) if start + size < len(records) else None,
        "page": page,
        "page_size": size,
        "previous_page_uri": uri(page - 1) if page else None,
        "start": start,
        "uri": uri(page),
    }


# --- webhooks ------------------------------------------------------------------


def rewrite_url(url: str, rewrite: Mapping[str, str] | None) -> str:
    """Where a webhook is delivered: a proxy may stand in front of the public URL."""
    if rewrite and url.startswith(rewrite["from"]):
        return rewrite["to"] + url[len(rewrite["from"]) :]
    return url


def idempotency_token(*parts: object) -> str:
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode())
    return digest.hexdigest()[:40]


def status_callback_params(
    record: Mapping[str, Any], status: str, error_code: int | None
) -> dict[str, str]:
    """The form parameters Twilio posts to a StatusCallback."""
    params = {
        "AccountSid": record["account_sid"],
        "ApiVersion": API_VERSION,
        "From": record["sender"],
        "MessageSid": record["sid"],
        "MessageStatus": status,
        "SmsSid": record["sid"],
        "SmsStatus": status,
        "To": record["to"],
    }
    if record["messaging_service_sid"]:
        params["MessagingServiceSid"] = record["messaging_service_sid"]
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def inbound_params(
    payload: Mapping[str, Any], account_sid: str, default_number: str
) -> dict[str, str]:
    """The form parameters Twilio posts to a number's inbound webhook."""
    sid = payload.get("message_sid") or "SM" + secrets.token_hex(16)
    body = str(payload["body"])
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "Body": body,
        "From": str(payload["from"]),
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": str(count_segments(body)),
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": str(payload.get("to") or default_number),
    }
    if payload.get("opt_out_type"):
        params["OptOutType"] = str(payload["opt_out_type"])
    return params


def check_inbound_payload(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise ControlError("body must be a JSON object")
    missing = [key for key in ("from", "body") if not isinstance(payload.get(key), str)]
    if missing:
        raise ControlError(f"missing string fields {missing}")
    opt_out = payload.get("opt_out_type")
    if opt_out is not None and opt_out not in OPT_OUT_TYPES:
        raise ControlError(f"opt_out_type must be one of {sorted(OPT_OUT_TYPES)}")


def check_callback_payload(payload: Any) -> tuple[str, str, int | None]:
    """(sid, status, error_code) of a ``POST /_sim/callbacks`` body."""
    if not isinstance(payload, dict) or not isinstance(payload.get("sid"), str):
        raise ControlError("body must be {sid, status, error_code?, url?}")
    status, error = payload.get("status"), payload.get("error_code")
    if status not in KNOWN_STATUSES:
        raise ControlError(f"status must be one of {sorted(KNOWN_STATUSES)}")
    if error is not None and (isinstance(error, bool) or not isinstance(error, int)):
        raise ControlError("error_code must be an integer")
    return payload["sid"], status, error


class WebhookPoster:
    """Posts form-encoded webhooks signed as Twilio signs them."""

    def __init__(self, auth_token: str, timeout_s: float) -> None:
        self._validator = RequestValidator(auth_token)
        self._timeout_s = timeout_s
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # webhooks go to local servers, never a proxy
            self._local.session = session
        return session

    def post(
        self,
        url: str,
        sign_url: str,
        params: Mapping[str, str],
        token: str,
        overrides: ConnectionOverrides | None = None,
    ) -> requests.Response:
        headers = {
            "X-Twilio-Signature": self._validator.compute_signature(sign_url, params),
            "I-Twilio-Idempotency-Token": token,
            "User-Agent": "TwilioProxy/1.1",
        }
        timeout: float | tuple[float, float] = self._timeout_s
        if overrides is not None:
            timeout = (
                overrides.connect_timeout_ms / 1000,
                overrides.read_timeout_ms / 1000,
            )
        return self._session().post(
            url, data=dict(params), headers=headers, timeout=timeout
        )


# --- delayed callback delivery -------------------------------------------------


class DelayQueue:
    """Runs jobs on a small thread pool once their delay has passed."""

    def __init__(self, workers: int) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sim-callback")
        self._thread: threading.Thread | None = None
        self._closed = False

    def schedule(self, delay_s: float, job: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                return
            due = time.monotonic() + delay_s
            heapq.heappush(self._heap, (due, next(self._seq), job))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sim-delay-queue", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _next_due(self) -> Callable[[], None] | None:
        with self._cond:
            while not self._closed:
                if self._heap and self._heap[0][0] <= time.monotonic():
                    return heapq.heappop(self._heap)[2]
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while (job := self._next_due()) is not None:
            try:
                self._pool.submit(job)
            except RuntimeError:  # the pool shut down while closing
                return


@dataclass
class CallbackChain:
    """The remaining lifecycle steps of one message, delivered one after another.

    A step sets the message's status (in lifecycle order) and may post a callback
    (in delivery order, which ``reorder_callbacks`` reverses).
    """

    generation: int
    sid: str
    steps: deque[dict[str, Any]]
    attempts: int = 0
    first_attempt_at: float = 0.0  # monotonic; the head step's total-time budget


def build_steps(
    record: Mapping[str, Any], config: SimulatorConfig
) -> deque[dict[str, Any]]:
    statuses = list(config.callback_statuses)
    code = config.undelivered.get(record["to"]) or config.undelivered.get(
        bare_phone(record["to"])
    )
    if code:
        statuses[-1] = "undelivered"
    if record.get("forced_error"):
        # Accepted, then failed before it was sent (e.g. 63016).
        code = record["forced_error"]
        statuses = [status for status in statuses if status == "queued"] + ["failed"]
    codes = [code if status in FAILED_STATUSES else None for status in statuses]
    callbacks: list[dict[str, Any] | None] = [None] * len(statuses)
    if record["status_callback"]:
        callbacks = [
            _callback_job(record, status, error, record["status_callback"], config)
            for status, error in zip(statuses, codes, strict=True)
        ]
    if config.reorder_callbacks:
        callbacks.reverse()
    steps: deque[dict[str, Any]] = deque()
    for status, error, callback in zip(statuses, codes, callbacks, strict=True):
        steps.append({"status": status, "error_code": error, "callback": callback})
        if callback is not None and config.duplicate_callbacks:
            steps.append({"status": None, "error_code": None, "callback": callback})
    return steps


def _callback_job(
    record: Mapping[str, Any],
    status: str,
    error_code: int | None,
    url: str,
    config: SimulatorConfig,
) -> dict[str, Any]:
    return {
        "url": rewrite_url(without_fragment(url), config.url_rewrite),
        "sign_url": without_fragment(url),
        "overrides": connection_overrides(url),
        "params": status_callback_params(record, status, error_code),
        "token": idempotency_token(record["sid"], status, error_code),
    }


# --- the simulator -------------------------------------------------------------


def _empty_stats() -> dict[str, int]:
    return {
        "accepted": 0,
        "rejected": 0,
        "callbacks_sent": 0,
        "callbacks_failed": 0,
        "callbacks_retried": 0,
        "callbacks_pending": 0,
        "callbacks_answered_503": 0,
        "inbound_sent": 0,
        "created_then_failed": 0,
        "held_queued": 0,
    }


class Simulator:
    """Shared state behind the HTTP routes; every mutation holds ``_lock``."""

    def __init__(
        self, config: SimulatorConfig, clock: Callable[[], datetime] = _now
    ) -> None:
        self._initial = config
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        # What Twilio remembers of inbound messages, by sender address.
        self._opted_out: set[str] = set()
        self._last_inbound: dict[str, datetime] = {}
        self._messages: list[dict[str, Any]] = []
        self._by_sid: dict[str, dict[str, Any]] = {}
        self._rejected: list[dict[str, Any]] = []
        self._stats = _empty_stats()
        self._generation = 0
        self._queue = DelayQueue(config.callback_workers)
        self._poster = WebhookPoster(config.auth_token, config.callback_timeout_s)

    @property
    def config(self) -> SimulatorConfig:
        with self._lock:
            return self._config

    def close(self) -> None:
        self._queue.close()

    def authorized(self, username: str | None, password: str | None) -> bool:
        """Basic auth as Twilio checks it: the account and its auth token, or
        an API key SID and its secret."""
        config = self._initial
        user, secret = username or "", password or ""
        key_secret = config.api_keys.get(user)
        if key_secret is not None:
            return hmac.compare_digest(secret, key_secret)
        if config.rest_requires_api_key:
            return False
        return hmac.compare_digest(user, config.account_sid) & hmac.compare_digest(
            secret, config.auth_token
        )

    def account_of(self, username: str) -> str:
        """The account a credential belongs to (an API key's is the account's)."""
        if username in self._initial.api_keys:
            return self._initial.account_sid
        return username

    # control

    def update_config(self, changes: Any) -> dict[str, Any]:
        with self._lock:
            self._config = merge_config(self._config, changes)
            return config_view(self._config)

    def reset(self) -> None:
        with self._lock:
            self._config = self._initial
            self._messages.clear()
            self._by_sid.clear()
            self._rejected.clear()
            self._opted_out.clear()
            self._last_inbound.clear()
            self._stats = _empty_stats()
            self._generation += 1
            self._queue.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def messages_view(self, to: str | None) -> dict[str, Any]:
        with self._lock:
            messages = [simulator_view(r) for r in self._messages]
            rejected = [dict(r) for r in self._rejected]
        if to:
            messages = [m for m in messages if m["to"] == to]
            rejected = [r for r in rejected if r["to"] == to]
        return {"messages": messages, "rejected": rejected}

    # Twilio REST API

    def send(self, account_sid: str, form: Mapping[str, str], media: list[str]) -> Any:
        """Accept a send (its resource JSON) or raise the error Twilio answers."""
        config = self.config
        if config.response_delay_ms:
            time.sleep(config.response_delay_ms / 1000)
        try:
            self._take_forced_failure()
            validate_send(form, config.default_number)
            self._check_not_opted_out(form.get("To", ""))
        except TwilioApiError as err:
            self._record_rejection(form.get("To", ""), err)
            raise
        record = new_record(account_sid, form, media, config.default_number)
        with self._lock:
            last_inbound = self._last_inbound.get(form["To"])
            if outside_whatsapp_window(form, last_inbound, self._clock()):
                record["forced_error"] = WINDOW_CLOSED
            self._messages.append(record)
            self._by_sid[record["sid"]] = record
            self._stats["accepted"] += 1
            resource = message_resource(record)
            self._start_chain(record, self._take_queued_hold())
        self._fail_after_create()
        return resource

    def fetch(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._by_sid.get(sid)
            return message_resource(record) if record else None

    def list_page(self, args: Mapping[str, str], path: str) -> dict[str, Any]:
        checks = list_filters(args)
        with self._lock:
            records = [r for r in self._messages if all(c(r) for c in checks)]
            return page_of(records, args, path)

    def _check_not_opted_out(self, to: str) -> None:
        """21610: the number texted STOP (and not START since)."""
        with self._lock:
            stopped = to in self._opted_out
        if stopped:
            raise _bad_request(21610, "Attempt to send to unsubscribed recipient")

    def note_inbound(self, params: Mapping[str, str]) -> None:
        """Remember an inbound message as Twilio does: its time and any STOP/START."""
        sender = params["From"]
        change = opt_out_change(params)
        with self._lock:
            self._last_inbound[sender] = self._clock()
            if change is True:
                self._opted_out.add(sender)
            elif change is False:
                self._opted_out.discard(sender)

    def _take_forced_failure(self) -> None:
        with self._lock:
            config = self._config
            if config.fail_next_with_429:
                self._config = dataclasses.replace(
                    config, fail_next_with_429=config.fail_next_with_429 - 1
                )
                raise TwilioApiError(429, 20429, "Too Many Requests")
            if config.fail_next_with_500:
                self._config = dataclasses.replace(
                    config, fail_next_with_500=config.fail_next_with_500 - 1
                )
                raise TwilioApiError(500, 20500, "Internal Server Error")

    def _take_queued_hold(self) -> int | None:
        """Called with ``_lock`` held: the hold for a message to stay queued."""
        config = self._config
        if not config.hold_next_queued:
            return None
        self._config = dataclasses.replace(
            config, hold_next_queued=config.hold_next_queued - 1
        )
        self._stats["held_queued"] += 1
        return config.hold_queued_ms

    def _fail_after_create(self) -> None:
        """Twilio may fail after it created the message: answer 500 anyway."""
        with self._lock:
            config = self._config
            if not config.create_then_fail_with_500:
                return
            self._config = dataclasses.replace(
                config,
                create_then_fail_with_500=config.create_then_fail_with_500 - 1,
            )
            self._stats["created_then_failed"] += 1
        raise TwilioApiError(500, 20500, "Internal Server Error")

    def _record_rejection(self, to: str, err: TwilioApiError) -> None:
        entry = {
            "to": to,
            "code": err.code,
            "status": err.status,
            "at": _now().isoformat(),
        }
        with self._lock:
            self._rejected.append(entry)
            self._stats["rejected"] += 1

    # status lifecycle and callbacks

    def _start_chain(self, record: dict[str, Any], hold_ms: int | None = None) -> None:
        """Called with ``_lock`` held; a hold keeps the message queued longer."""
        steps = build_steps(record, self._config)
        self._stats["callbacks_pending"] += sum(1 for s in steps if s["callback"])
        chain = CallbackChain(self._generation, record["sid"], steps)
        delay = self._config.callback_delay_ms if hold_ms is None else hold_ms
        self._schedule(chain, delay)

    def _schedule(self, chain: CallbackChain, delay_ms: float) -> None:
        self._queue.schedule(delay_ms / 1000, lambda: self._run_step(chain))

    def _run_step(self, chain: CallbackChain) -> None:
        step = self._begin_step(chain)
        if step is None:
            return
        job = step["callback"]
        if chain.attempts == 0:
            chain.first_attempt_at = time.monotonic()
        failure = None if job is None else self._deliver(job)
        if failure is not None and self._should_retry(chain, job, failure):
            chain.attempts += 1
            with self._lock:
                self._stats["callbacks_retried"] += 1
            self._schedule(chain, self.config.callback_retry_backoff_ms)
            return
        self._finish_step(chain, job is not None, failure is None)

    @staticmethod
    def _should_retry(chain: CallbackChain, job: Any, failure: str) -> bool:
        """As Twilio: the URL's retry policy, retry count and total time decide."""
        overrides: ConnectionOverrides = job["overrides"]
        elapsed_ms = (time.monotonic() - chain.first_attempt_at) * 1000
        return (
            chain.attempts < overrides.retry_count
            and overrides.retries(failure)
            and elapsed_ms < overrides.total_timeout_ms
        )

    def _begin_step(self, chain: CallbackChain) -> dict[str, Any] | None:
        """Apply the head step's status once; None when a reset dropped the chain."""
        with self._lock:
            if chain.generation != self._generation:
                return None
            step = chain.steps[0]
            record = self._by_sid.get(chain.sid)
            if step["status"] and record is not None:
                _apply_status(record, step["status"], step["error_code"])
            step["status"] = None
            return step

    def _finish_step(self, chain: CallbackChain, posted: bool, delivered: bool) -> None:
        with self._lock:
            if chain.generation != self._generation:
                return
            if posted:
                self._stats["callbacks_pending"] -= 1
                self._stats["callbacks_sent" if delivered else "callbacks_failed"] += 1
            chain.steps.popleft()
            chain.attempts = 0
            if chain.steps:
                self._schedule(chain, self._config.callback_delay_ms)

    def _deliver(self, job: Mapping[str, Any]) -> str | None:
        """Post one callback attempt; how it failed, or None when it landed."""
        if self._take_injected_503():
            return failure_kind(503, None)
        try:
            response = self._poster.post(
                job["url"],
                job["sign_url"],
                job["params"],
                job["token"],
                job.get("overrides"),
            )
        except requests.RequestException as err:
            return failure_kind(None, err)
        return failure_kind(response.status_code, None)

    def _take_injected_503(self) -> bool:
        with self._lock:
            config = self._config
            if not config.callback_answer_503_next:
                return False
            self._config = dataclasses.replace(
                config, callback_answer_503_next=config.callback_answer_503_next - 1
            )
            self._stats["callbacks_answered_503"] += 1
            return True

    # injected webhooks

    def post_callback(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """Post one status callback for a sent message now (control API)."""
        try:
            sid, status, error = check_callback_payload(payload)
        except ControlError as err:
            return 400, {"error": str(err)}
        config = self.config
        with self._lock:
            record = self._by_sid.get(sid)
            if record is None:
                return 404, {"error": f"unknown message sid {sid}"}
            url = payload.get("url") or record["status_callback"]
            if not _is_http_url(url):
                return 400, {"error": "the message has no StatusCallback; give a url"}
            job = _callback_job(record, status, error, url, config)
            _apply_status(record, status, error)
        return self._post_now(job, "callbacks_sent", "callbacks_failed")

    def post_inbound(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """Post one signed inbound message to the inbound webhook (control API)."""
        config = self.config
        try:
            check_inbound_payload(payload)
        except ControlError as err:
            return 400, {"error": str(err)}
        if not config.inbound_url:
            return 400, {"error": "no inbound_url configured"}
        params = inbound_params(payload, config.account_sid, config.default_number)
        self.note_inbound(params)
        job = {
            "url": rewrite_url(
                without_fragment(config.inbound_url), config.url_rewrite
            ),
            "sign_url": without_fragment(config.inbound_url),
            "params": params,
            "token": idempotency_token(params["MessageSid"], "inbound"),
        }
        status, body = self._post_now(job, "inbound_sent", None)
        return status, {**body, "message_sid": params["MessageSid"]}

    def _post_now(
        self, job: Mapping[str, Any], ok_stat: str, failed_stat: str | None
    ) -> tuple[int, dict[str, Any]]:
        try:
            response = self._poster.post(
                job["url"], job["sign_url"], job["params"], job["token"]
            )
        except requests.RequestException as err:
            self._count(failed_stat)
            return 502, {"status": None, "error": f"{type(err).__name__}: {err}"}
        ok = 200 <= response.status_code < 300
        self._count(ok_stat if ok else failed_stat)
        return 200, {"status": response.status_code, "body": response.text}

    def _count(self, stat: str | None) -> None:
        if stat:
            with self._lock:
                self._stats[stat] += 1


def _apply_status(record: dict[str, Any], status: str, error_code: Any) -> None:
    now = _now()
    record["status"] = status
    record["date_updated"] = now
    if status == "sent" and record["date_sent"] is None:
        record["date_sent"] = now
    if status in FAILED_STATUSES:
        record["error_code"] = error_code


# --- Flask app -----------------------------------------------------------------


def _twilio_error(err: TwilioApiError) -> Response:
    response = jsonify(err.body())
    response.status_code = err.status
    return response


def _json(status: int, body: Any) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _check_account(sim: Simulator, account_sid: str) -> None:
    auth = request.authorization
    if auth is None or not sim.authorized(auth.username, auth.password):
        raise TwilioApiError(401, 20003, "Authenticate")
    if account_sid != sim.account_of(auth.username or ""):
        raise TwilioApiError(
            404, 20404, f"The requested resource {request.path} was not found"
        )


def _register_twilio_routes(app: Flask, sim: Simulator) -> None:
    @app.errorhandler(TwilioApiError)
    def twilio_error(err: TwilioApiError) -> Response:
        return _twilio_error(err)

    @app.post(f"{ACCOUNT_PATH}/Messages.json")
    def create_message(account_sid: str) -> Response:
        _check_account(sim, account_sid)
        form = request.form.to_dict()
        resource = sim.send(account_sid, form, request.form.getlist("MediaUrl"))
        return _json(201, resource)

    @app.get(f"{ACCOUNT_PATH}/Messages.json")
    def list_messages(account_sid: str) -> Response:
        _check_account(sim, account_sid)
        return _json(200, sim.list_page(request.args.to_dict(), request.path))

    @app.get(f"{ACCOUNT_PATH}/Messages/<sid>.json")
    def fetch_message(account_sid: str, sid: str) -> Response:
        _check_account(sim, account_sid)
        resource = sim.fetch(sid)
        if resource is None:
            raise TwilioApiError(
                404, 20404, f"The requested resource {request.path} was not found"
            )
        return _json(200, resource)


def _register_control_routes(app: Flask, sim: Simulator) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"ok": True})

    @app.get("/_sim/messages")
    def sim_messages() -> Response:
        return _json(200, sim.messages_view(request.args.get("to")))

    @app.get("/_sim/stats")
    def sim_stats() -> Response:
        return _json(200, sim.stats())

    @app.get("/_sim/config")
    def sim_config() -> Response:
        return _json(200, config_view(sim.config))

    @app.post("/_sim/config")
    def sim_update_config() -> Response:
        try:
            return _json(200, sim.update_config(request.get_json(silent=True)))
        except ControlError as err:
            return _json(400, {"error": str(err)})

    @app.post("/_sim/reset")
    def sim_reset() -> Response:
        sim.reset()
        return _json(200, {"ok": True})

    @app.post("/_sim/inbound")
    def sim_inbound() -> Response:
        return _json(*sim.post_inbound(request.get_json(silent=True)))

    @app.post("/_sim/callbacks")
    def sim_callback() -> Response:
        return _json(*sim.post_callback(request.get_json(silent=True)))


def create_app(config: SimulatorConfig, clock: Callable[[], datetime] = _now) -> Flask:
    """The simulator app; ``app.extensions["twilio_simulator"]`` holds its state.

    Call ``simulator_of(app).close()`` to stop its callback threads. ``clock``
    times inbound messages for the WhatsApp window.
    """
    app = Flask(__name__)
    sim = Simulator(config, clock)
    app.extensions["twilio_simulator"] = sim
    _register_twilio_routes(app, sim)
    _register_control_routes(app, sim)
    return app


def simulator_of(app: Flask) -> Simulator:
    sim: Simulator = app.extensions["twilio_simulator"]
    return sim


# --- server --------------------------------------------------------------------


class _QuietRequestHandler(WSGIRequestHandler):
    """Leaves out the access log line per request; errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class SimulatorServer:
    """The app served by a threaded werkzeug server bound to 127.0.0.1."""

    def __init__(
        self, config: SimulatorConfig, port: int = 0, log_requests: bool = False
    ) -> None:
        self.app = create_app(config)
        self.simulator = simulator_of(self.app)
        handler = WSGIRequestHandler if log_requests else _QuietRequestHandler
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, self.app, threaded=True, request_handler=handler
        )
        self.port = self._server.server_port
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """Serve in this thread until ``shutdown``; then release everything."""
        try:
            self._server.serve_forever(poll_interval=0.05)
        finally:
            self._server.server_close()
            self.simulator.close()

    def shutdown(self) -> None:
        """Stop ``serve_forever``; safe from a signal handler or another thread."""
        threading.Thread(target=self._server.shutdown, daemon=True).start()

    def start(self) -> SimulatorServer:
        """Serve from a background thread (for tests and tools)."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="twilio-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local Twilio simulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID"), required=False
    )
    parser.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN"))
    parser.add_argument(
        "--api-key",
        nargs=2,
        action="append",
        default=[],
        metavar=("SID", "SECRET"),
        help="an API key accepted for REST basic auth (repeatable)",
    )
    parser.add_argument(
        "--rest-requires-api-key",
        action="store_true",
        help="refuse REST calls authenticated with the auth token",
    )
    parser.add_argument("--callback-delay-ms", type=int, default=20)
    parser.add_argument("--inbound-url", default=None)
    parser.add_argument("--default-number", default=DEFAULT_NUMBER)
    parser.add_argument(
        "--url-rewrite",
        nargs=2,
        metavar=("FROM_PREFIX", "TO_PREFIX"),
        help="sign webhooks for FROM_PREFIX... but deliver them to TO_PREFIX...",
    )
    parser.add_argument("--log-requests", action="store_true")
    args = parser.parse_args(argv)
    if not args.account_sid or not args.auth_token:
        parser.error("--account-sid and --auth-token (or TWILIO_* env) are required")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    rewrite = args.url_rewrite
    config = SimulatorConfig(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        api_keys=dict(args.api_key),
        rest_requires_api_key=args.rest_requires_api_key,
        default_number=args.default_number,
        inbound_url=args.inbound_url,
        callback_delay_ms=args.callback_delay_ms,
        url_rewrite={"from": rewrite[0], "to": rewrite[1]} if rewrite else None,
    )
    server = SimulatorServer(config, args.port, args.log_requests)
    signal.signal(signal.SIGTERM, lambda signum, frame: server.shutdown())
    print(f"twilio simulator listening on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
