"""Webhook intake: Twilio's signature rules, what is published, what is answered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from shared.payloads import InboundWebhook, StatusCallback
from shared.webhooks.intake import (
    EMPTY_TWIML,
    INBOUND_PATH,
    STATUS_PATH,
    WebhookRequest,
    accept_webhook,
)
from shared.webhooks.signature import AnyTokenValidator
from tests.conftest import RecordingPublisher

TOKEN = "unit-test-auth-token"
PUBLIC = "https://hooks.example.com"
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
VALIDATOR = RequestValidator(TOKEN)
SIGN = "<sign it>"  # the default: a signature computed as Twilio computes it

STATUS_PARAMS = {
    "AccountSid": "AC" + "0" * 32,
    "MessageSid": "SM" + "1" * 32,
    "MessageStatus": "delivered",
    "SmsSid": "SM" + "1" * 32,
    "SmsStatus": "delivered",
    "To": "+14155550100",
    "From": "+15005550006",
}
INBOUND_PARAMS = {
    "MessageSid": "SM" + "2" * 32,
    "From": "+14155550100",
    "To": "+15005550006",
    "Body": "STOP 🛑",
}


def webhook(
    path: str = STATUS_PATH,
    params: Mapping[str, str | Sequence[str]] | None = None,
    query: str = "message_id=c1_14155550100",
    *,
    signed_url: str | None = None,
    sign_params: Mapping[str, str | Sequence[str]] | None = None,
    signature: str | None = SIGN,
    method: str = "POST",
) -> WebhookRequest:
    """A request as Twilio would send it: signed for `signed_url` (the public URL)."""
    given = params if params is not None else STATUS_PARAMS
    form = {k: [v] if isinstance(v, str) else list(v) for k, v in given.items()}
    url = signed_url or f"{PUBLIC}{path}{'?' + query if query else ''}"
    if signature == SIGN:
        signing = sign_params if sign_params is not None else given
        multi = {k: [v] if isinstance(v, str) else list(v) for k, v in signing.items()}
        signature = VALIDATOR.compute_signature(url, _Multi(multi))
    return WebhookRequest(
        method=method,
        path=path,
        query_string=query,
        form=form,
        signature=signature,
        idempotency_token="token-1",
    )


class _Multi(dict[str, list[str]]):
    def getlist(self, key: str) -> list[str]:
        return self[key]


def json_webhook(
    body: dict[str, Any], *, sent_body: bytes | None = None, hash_in_url: bool = True
) -> WebhookRequest:
    raw = json.dumps(body).encode()
    digest = hashlib.sha256(raw).hexdigest()
    query = f"bodySHA256={digest}" if hash_in_url else ""
    url = f"{PUBLIC}{STATUS_PATH}{'?' + query if query else ''}"
    return WebhookRequest(
        method="POST",
        path=STATUS_PATH,
        query_string=query,
        form={},
        signature=VALIDATOR.compute_signature(url, {}),
        json_body=True,
        raw_body=sent_body if sent_body is not None else raw,
    )


def accept(
    request: WebhookRequest,
    publisher: RecordingPublisher,
    public_base_url: str = PUBLIC,
) -> Any:
    return accept_webhook(VALIDATOR, public_base_url, publisher, request, NOW)


# --- accepted ------------------------------------------------------------------


def test_status_callback_is_published_with_its_query_and_answered_204(
    publisher: RecordingPublisher,
) -> None:
    result = accept(webhook(), publisher)
    assert result.status == 204
    [(topic, payload, _)] = publisher.published
    assert topic == "delivery-receipts"
    assert payload == StatusCallback(
        params=STATUS_PARAMS,
        query={"message_id": "c1_14155550100"},
        received_at=NOW,
        idempotency_token="token-1",
    )


def test_inbound_is_published_and_answered_with_empty_twiml(
    publisher: RecordingPublisher,
) -> None:
    result = accept(webhook(INBOUND_PATH, INBOUND_PARAMS, query=""), publisher)
    assert (result.status, result.body, result.content_type) == (
        200,
        EMPTY_TWIML,
        "text/xml",
    )
    [(topic, payload, _)] = publisher.published
    assert topic == "inbound-messages"
    assert payload == InboundWebhook(params=INBOUND_PARAMS, received_at=NOW)


def test_a_duplicate_is_answered_the_same_way(publisher: RecordingPublisher) -> None:
    request = webhook()
    assert [accept(request, publisher).status for _ in range(2)] == [204, 204]
    assert publisher.published[0][1] == publisher.published[1][1]


def test_every_value_of_a_repeated_field_is_signed(
    publisher: RecordingPublisher,
) -> None:
    params = {**INBOUND_PARAMS, "MediaUrl": ["https://a/1", "https://a/2"]}
    assert accept(webhook(INBOUND_PATH, params, query=""), publisher).status == 200
    dropped = webhook(
        INBOUND_PATH,
        params,
        query="",
        sign_params={**INBOUND_PARAMS, "MediaUrl": "https://a/1"},
    )
    assert accept(dropped, publisher).status == 403


def test_the_query_string_is_checked_byte_for_byte(
    publisher: RecordingPublisher,
) -> None:
    encoded = "message_id=c1_14155550100&note=a%2Fb%20c"
    assert accept(webhook(query=encoded), publisher).status == 204
    assert publisher.published[0][1].query["note"] == "a/b c"
    re_encoded = webhook(
        query="message_id=c1_14155550100&note=a/b+c",
        signed_url=f"{PUBLIC}{STATUS_PATH}?{encoded}",
    )
    assert accept(re_encoded, publisher).status == 403


# --- rejected: 403 and nothing published ------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(webhook(signature="forged"), id="bad signature"),
        pytest.param(webhook(signature=None), id="missing header"),
        pytest.param(webhook(signature=""), id="empty header"),
        pytest.param(
            webhook(
                params={**STATUS_PARAMS, "MessageStatus": "undelivered"},
                sign_params=STATUS_PARAMS,
            ),
            id="tampered body",
        ),
        pytest.param(
            webhook(params={**STATUS_PARAMS, "Extra": "1"}, sign_params=STATUS_PARAMS),
            id="added field",
        ),
        pytest.param(
            webhook(
                params={**STATUS_PARAMS, "ErrorCode": ""}, sign_params=STATUS_PARAMS
            ),
            id="added empty field",
        ),
        pytest.param(
            webhook(signed_url=f"{PUBLIC}{INBOUND_PATH}?message_id=c1_14155550100"),
            id="signed for another path",
        ),
        pytest.param(
            webhook(
                signed_url=f"https://evil.example.com{STATUS_PATH}"
                "?message_id=c1_14155550100"
            ),
            id="signed for another host",
        ),
        pytest.param(
            webhook(
                query="message_id=c2_14155550100",
                signed_url=f"{PUBLIC}{STATUS_PATH}?message_id=c1_14155550100",
            ),
            id="tampered query",
        ),
        pytest.param(
            webhook(signed_url=f"http://hooks.example.com{STATUS_PATH}"),
            id="signed for another scheme",
        ),
    ],
)
def test_a_bad_signature_is_403_and_publishes_nothing(
    request_: WebhookRequest, publisher: RecordingPublisher
) -> None:
    result = accept(request_, publisher)
    assert result.status == 403
    assert publisher.published == []


def test_a_token_other_than_ours_is_rejected(publisher: RecordingPublisher) -> None:
    url = f"{PUBLIC}{STATUS_PATH}?message_id=c1_14155550100"
    other = RequestValidator("someone-else").compute_signature(url, STATUS_PARAMS)
    assert accept(webhook(signature=other), publisher).status == 403


def test_during_a_token_rotation_either_token_is_accepted(
    publisher: RecordingPublisher,
) -> None:
    # The secret holds "NEW,OLD" while Twilio switches its primary token.
    url = f"{PUBLIC}{STATUS_PATH}?message_id=c1_14155550100"
    rotating = AnyTokenValidator(f"new-token, {TOKEN}")
    by_new = RequestValidator("new-token").compute_signature(url, STATUS_PARAMS)
    by_other = RequestValidator("someone-else").compute_signature(url, STATUS_PARAMS)
    for signature, status in ((by_new, 204), (SIGN, 204), (by_other, 403)):
        request = webhook(signature=signature)
        result = accept_webhook(rotating, PUBLIC, publisher, request, NOW)
        assert result.status == status, signature


# --- which URL is checked ----------------------------------------------------------


def test_the_public_url_is_checked_not_the_one_seen_behind_a_proxy(
    publisher: RecordingPublisher,
) -> None:
    # Google's front end forwards to an internal host; Twilio signed the public one.
    internal = "http://10.0.0.7:8080"
    signed_publicly = webhook()
    assert accept(signed_publicly, publisher).status == 204
    signed_internally = webhook(
        signed_url=f"{internal}{STATUS_PATH}?message_id=c1_14155550100"
    )
    assert accept(signed_internally, publisher).status == 403
    assert accept(signed_internally, publisher, public_base_url=internal).status == 204


def test_a_trailing_slash_or_a_path_prefix_in_the_public_base(
    publisher: RecordingPublisher,
) -> None:
    assert accept(webhook(), publisher, public_base_url=f"{PUBLIC}/").status == 204
    base = "https://us-central1-p.cloudfunctions.net/twilio_webhooks"
    prefixed = webhook(signed_url=f"{base}{STATUS_PATH}?message_id=c1_14155550100")
    assert accept(prefixed, publisher, public_base_url=base).status == 204


@pytest.mark.parametrize(
    ("signed_base", "public_base", "accepted"),
    [
        # Twilio's SDKs try the URL with and without the scheme's default port.
        ("https://hooks.example.com:443", "https://hooks.example.com", True),
        ("https://hooks.example.com", "https://hooks.example.com:443", True),
        ("http://hooks.example.com:80", "http://hooks.example.com", True),
        ("http://hooks.example.com", "http://hooks.example.com:80", True),
        ("https://hooks.example.com:8443", "https://hooks.example.com:8443", True),
        ("http://127.0.0.1:18811", "http://127.0.0.1:18811", True),
        # Only the default port is added; any other port must be configured.
        ("https://hooks.example.com:8443", "https://hooks.example.com", False),
        ("https://hooks.example.com:8443", "https://hooks.example.com:9443", False),
    ],
)
def test_port_handling_follows_twilios_sdks(
    signed_base: str,
    public_base: str,
    accepted: bool,
    publisher: RecordingPublisher,
) -> None:
    request = webhook(
        signed_url=f"{signed_base}{STATUS_PATH}?message_id=c1_14155550100"
    )
    result = accept(request, publisher, public_base_url=public_base)
    assert (result.status == 204) is accepted
    assert len(publisher.published) == int(accepted)


# --- JSON bodies (bodySHA256) ---------------------------------------------------------


def test_a_json_body_is_checked_against_the_hash_in_the_signed_url(
    publisher: RecordingPublisher,
) -> None:
    body = {"MessageSid": "SM9", "MessageStatus": "read", "Meta": {"a": 1}}
    assert accept(json_webhook(body), publisher).status == 204
    [(_, payload, _)] = publisher.published
    assert payload.params == {
        "MessageSid": "SM9",
        "MessageStatus": "read",
        "Meta": '{"a": 1}',
    }


def test_a_tampered_json_body_is_rejected(publisher: RecordingPublisher) -> None:
    body = {"MessageSid": "SM9", "MessageStatus": "read"}
    tampered = json.dumps({**body, "MessageStatus": "failed"}).encode()
    assert accept(json_webhook(body, sent_body=tampered), publisher).status == 403
    assert accept(json_webhook(body, hash_in_url=False), publisher).status == 403
    assert publisher.published == []


def test_a_signed_json_body_that_is_not_an_object_is_400(
    publisher: RecordingPublisher,
) -> None:
    raw = b"[1, 2]"
    query = f"bodySHA256={hashlib.sha256(raw).hexdigest()}"
    request = WebhookRequest(
        method="POST",
        path=STATUS_PATH,
        query_string=query,
        form={},
        signature=VALIDATOR.compute_signature(f"{PUBLIC}{STATUS_PATH}?{query}", {}),
        json_body=True,
        raw_body=raw,
    )
    assert accept(request, publisher).status == 400
    assert publisher.published == []


# --- methods, paths, publish failures -----------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_anything_but_post_is_405(method: str, publisher: RecordingPublisher) -> None:
    result = accept(webhook(method=method), publisher)
    assert result.status == 405
    assert result.headers["Allow"] == "POST"
    assert publisher.published == []


def test_an_unknown_path_is_404(publisher: RecordingPublisher) -> None:
    assert accept(webhook(path="/twilio/other"), publisher).status == 404
    assert publisher.published == []


class FailingPublisher(RecordingPublisher):
    def publish(self, topic: Any, payload: Any, **attributes: str) -> None:
        raise TimeoutError("pubsub unavailable")


def test_a_failed_publish_is_a_5xx_so_twilio_retries() -> None:
    result = accept(webhook(), FailingPublisher())
    assert result.status == 503


def test_a_written_status_callback_is_204_without_a_publish() -> None:
    written: list[Any] = []
    result = accept_webhook(
        VALIDATOR,
        PUBLIC,
        FailingPublisher(),
        webhook(),
        NOW,
        lambda callback: written.append(callback) is None,
    )
    assert result.status == 204
    assert [c.params["MessageStatus"] for c in written] == ["delivered"]


def test_a_failed_write_and_a_failed_publish_are_a_5xx_so_twilio_retries() -> None:
    result = accept_webhook(
        VALIDATOR, PUBLIC, FailingPublisher(), webhook(), NOW, lambda _: False
    )
    assert result.status == 503
