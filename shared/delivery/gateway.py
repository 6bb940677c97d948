"""The Twilio gateway: sends through the real twilio SDK.

Locally the SDK is pointed at the Twilio simulator through its own extension
point, a custom HTTP client, which rewrites Twilio's API host to the
simulator's base URL. The SDK itself is not patched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from requests.utils import get_environ_proxies
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from shared.delivery.errors import is_retriable
from shared.platform.config import TwilioApiKeySettings, TwilioSettings

TWILIO_API_HOST = "https://api.twilio.com"
# Twilio refuses a To/From pair of different channels (21910), so both
# addresses of a WhatsApp message carry the prefix and an SMS has none.
CHANNEL_PREFIXES = {"whatsapp": "whatsapp:", "sms": ""}


# Twilio's webhook connection overrides, in the URL's fragment: by default
# Twilio retries a callback once and only when it cannot connect; these ask
# for retries on a 5xx and on timeouts too (4xx, a bad signature, is final).
# The fragment never reaches our server, and Twilio signs the URL without it.
CONNECTION_OVERRIDES = "ct=2000&rt=5000&tt=15000&rc=3&rp=ct,rt,5xx"
STATUS_PATH = "/twilio/status"


def status_callback_url(public_base_url: str, query: str = "") -> str:
    """The StatusCallback given to Twilio, with its connection overrides."""
    url = f"{public_base_url.rstrip('/')}{STATUS_PATH}"
    return (
        f"{url}?{query}#{CONNECTION_OVERRIDES}"
        if query
        else f"{url}#{CONNECTION_OVERRIDES}"
    )


def channel_address(channel: str, number: str) -> str:
    """`number` addressed on `channel`: "+1415..." → "whatsapp:+1415..."."""
    bare = number.split(":", 1)[1] if ":" in number else number
    return CHANNEL_PREFIXES.get(channel, "") + bare


# Reconciliation reads one page of a number's latest messages.
LOOKUP_LIMIT = 100


@dataclass(frozen=True)
class OutboundMessage:
    to: str
    body: str
    status_callback: str
    messaging_service_sid: str | None = None
    from_number: str | None = None
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None


@dataclass(frozen=True)
class SendAccepted:
    sid: str
    status: str
    body: str | None = None
    to: str | None = None
    from_number: str | None = None
    messaging_service_sid: str | None = None
    date_created: datetime | None = None


class TwilioSendError(Exception):
    def __init__(
        self,
        message: str,
        code: int | None,
        http_status: int | None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        # A timeout or a dropped connection: Twilio may have accepted it.
        self.outcome_unknown = outcome_unknown
        self.retriable = outcome_unknown or is_retriable(http_status, code)


class RedirectingHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to another base URL (the local simulator)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self._base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API_HOST):
            url = self._base_url + url[len(TWILIO_API_HOST) :]
        return super().request(method, url, *args, **kwargs)


def environment_read_once(http_client: TwilioHttpClient, base_url: str) -> None:
    """Takes the proxy and CA bundle for `base_url` from the environment now,
    and stops the session from scanning the environment again on every send.

    requests otherwise re-reads every proxy variable per request, a measurable
    share of a send; the gateway only ever talks to one host, so the answer
    for it cannot change while the process runs.
    """
    session = http_client.session
    if session is None:
        return
    proxies = {**get_environ_proxies(base_url), **http_client.proxy}
    http_client.proxy = proxies
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or session.verify
    )
    session.trust_env = False


def _http_client(settings: TwilioSettings) -> TwilioHttpClient:
    timeout = settings.request_timeout_seconds
    if settings.api_base_url:
        client: TwilioHttpClient = RedirectingHttpClient(settings.api_base_url, timeout)
    else:
        client = TwilioHttpClient(pool_connections=True, timeout=timeout)
    environment_read_once(client, settings.api_base_url or TWILIO_API_HOST)
    return client


class TwilioGateway:
    def __init__(self, settings: TwilioSettings, key: TwilioApiKeySettings) -> None:
        # One pooled session per gateway, reused by every send.
        http_client = _http_client(settings)
        # Basic auth with the API key; the account SID names the account.
        self._client = Client(
            key.api_key_sid,
            key.api_key_secret,
            settings.account_sid,
            http_client=http_client,
        )

    def send(self, message: OutboundMessage) -> SendAccepted:
        params: dict[str, Any] = {
            "to": message.to,
            "status_callback": message.status_callback,
        }
        if message.messaging_service_sid:
            params["messaging_service_sid"] = message.messaging_service_sid
        else:
            params["from_"] = message.from_number
        if message.content_sid:
            params["content_sid"] = message.content_sid
            params["content_variables"] = json.dumps(message.content_variables or {})
        else:
            params["body"] = message.body
        try:
            created = self._client.messages.create(**params)
        except TwilioRestException as exc:
            # Twilio may answer a 5xx after it created the message.
            unknown = exc.status is not None and exc.status >= 500
            raise TwilioSendError(
                str(exc.msg), exc.code, exc.status, outcome_unknown=unknown
            ) from exc
        except (TwilioException, requests.RequestException) as exc:
            # Timeouts and connection errors: the outcome is unknown.
            raise TwilioSendError(str(exc), None, None, outcome_unknown=True) from exc
        return SendAccepted(sid=str(created.sid), status=str(created.status))

    def find_recent(self, to: str, from_number: str | None) -> list[SendAccepted]:
        """The latest messages Twilio holds for `to` (newest first, at most
        LOOKUP_LIMIT), for reconciliation.

        No DateSent filter: a message still queued or accepted at Twilio has no
        DateSent and no such filter would find it. The caller matches on
        DateCreated instead.
        """
        filters: dict[str, Any] = {"to": to}
        if from_number:
            filters["from_"] = from_number
        try:
            found = self._client.messages.list(**filters, limit=LOOKUP_LIMIT)
        except TwilioRestException as exc:
            raise TwilioSendError(str(exc.msg), exc.code, exc.status) from exc
        except (TwilioException, requests.RequestException) as exc:
            raise TwilioSendError(str(exc), None, 503) from exc
        return [
            SendAccepted(
                sid=str(m.sid),
                status=str(m.status),
                body=m.body,
                to=m.to,
                from_number=m.from_,
                messaging_service_sid=m.messaging_service_sid,
                date_created=m.date_created,
            )
            for m in found
        ]
