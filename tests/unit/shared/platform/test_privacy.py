"""Recipient keys and suppression keys: stable, keyed, and free of the number."""

from __future__ import annotations

import re

import pytest

from shared.delivery.messages import message_id_for
from shared.platform.privacy import recipient_key, suppression_key

PHONE = "+14155550100"
KEY = "local-recipient-key-not-secret"


def test_recipient_key_is_hmac_sha256_of_the_e164_truncated_to_20_hex() -> None:
    # A fixed vector: a change here would orphan every stored message id.
    assert recipient_key(PHONE, KEY) == "12a07a597aea8bb3170e"


def test_recipient_key_depends_on_the_secret_and_the_number() -> None:
    keys = {
        recipient_key(PHONE, KEY),
        recipient_key(PHONE, KEY + "x"),
        recipient_key("+14155550101", KEY),
    }
    assert len(keys) == 3


def test_suppression_key_differs_from_the_recipient_key() -> None:
    # Distinct purposes: a suppression entry cannot be joined to message ids.
    assert not suppression_key(PHONE, KEY).startswith(recipient_key(PHONE, KEY))
    assert re.fullmatch(r"[0-9a-f]{64}", suppression_key(PHONE, KEY))


@pytest.mark.parametrize("event_id", [None, "order-1"])
def test_message_ids_carry_no_phone_digits(event_id: str | None) -> None:
    # tests/conftest.py sets RECIPIENT_KEY to the local stack's value.
    message_id = message_id_for("C1", PHONE, event_id)
    assert message_id.startswith("C1_12a07a597aea8bb3170e")
    assert "4155550100" not in message_id
    assert message_id_for("C1", PHONE, event_id) == message_id
