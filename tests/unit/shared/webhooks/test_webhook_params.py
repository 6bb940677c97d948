"""Twilio parameter readers and legal Firestore ids."""

from __future__ import annotations

import pytest

from shared.payloads import error_code, inbound_sid, message_sid, message_status
from shared.platform.documents import safe_document_id


def test_new_parameter_names_win_over_the_legacy_ones() -> None:
    params = {"MessageSid": "SMnew", "SmsSid": "SMold", "SmsStatus": "sent"}
    assert message_sid(params) == "SMnew"
    assert message_sid({"SmsSid": "SMold"}) == "SMold"
    assert message_status(params) == "sent"
    assert message_status({"MessageStatus": "Delivered", "SmsStatus": "sent"}) == (
        "delivered"
    )
    assert inbound_sid({"SmsMessageSid": "SMx"}) == "SMx"
    assert message_sid({}) is None and message_status({}) == ""


def test_error_code_is_none_when_blank() -> None:
    assert error_code({"ErrorCode": "30003"}) == "30003"
    assert error_code({"ErrorCode": " "}) is None
    assert error_code({}) is None


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("SM123", "delivered"), "SM123_delivered"),
        (("a/b", "c"), "a-b_c"),
        (("..",), "id-.."),
        (("__name__",), "id-__name__"),
        (("",), "id-"),
        (("x" * 2000,), "x" * 500),
    ],
)
def test_safe_document_id(parts: tuple[str, ...], expected: str) -> None:
    assert safe_document_id(*parts) == expected
    assert "/" not in safe_document_id(*parts)
