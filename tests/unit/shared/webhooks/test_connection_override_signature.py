"""A StatusCallback with connection overrides validates as Twilio signs it.

Twilio keeps the fragment (`#rc=..&rp=..`) to itself: the request goes to the
URL without it and is signed over that URL. Intake, which never sees a
fragment, rebuilds the same URL from PUBLIC_BASE_URL, path and query.
"""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from shared.delivery.gateway import status_callback_url
from shared.webhooks.intake import WebhookRequest, signature_valid

TOKEN = "test-auth-token"
PUBLIC = "https://hooks.example.com"
PARAMS = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}


def request_for(signed_url: str) -> WebhookRequest:
    signature = RequestValidator(TOKEN).compute_signature(signed_url, PARAMS)
    return WebhookRequest(
        method="POST",
        path="/twilio/status",
        query_string="message_id=c1_14155550100",
        form={key: [value] for key, value in PARAMS.items()},
        signature=signature,
    )


def test_a_callback_signed_over_the_url_without_its_fragment_is_valid() -> None:
    given = status_callback_url(PUBLIC, "message_id=c1_14155550100")
    url, _, fragment = given.partition("#")
    assert fragment  # the URL handed to Twilio carries overrides
    assert signature_valid(RequestValidator(TOKEN), PUBLIC, request_for(url))


def test_a_signature_over_another_url_is_refused() -> None:
    other = f"{PUBLIC}/twilio/status?message_id=c1_14155550199"
    assert not signature_valid(RequestValidator(TOKEN), PUBLIC, request_for(other))
