"""Log masking: every phone in a log line, whatever its format, keeps only its
country code and last two digits; timestamps, ids and counts stay readable."""

from __future__ import annotations

import io
import json
import logging

import pytest

from shared.platform import logging as ese_logging
from shared.platform.logging import mask_phones_in_log


@pytest.mark.parametrize(
    "text",
    [
        "+14155550100",
        "14155550100",
        "4155550100",
        "(415) 555-0100",
        "415 555 0100",
        "415.555.0100",
        "+1 415 555 0100",
        "+1 (415) 555-0100",
        "whatsapp:+14155550100",
        "whatsapp:14155550100",
        "sms:+14155550100",
        "%2B14155550100",
        "whatsapp%3A%2B14155550100",
        "C1_14155550100",
    ],
)
def test_a_us_number_in_any_format_keeps_its_country_code_and_last_two(
    text: str,
) -> None:
    masked = mask_phones_in_log(f"to {text}.")
    assert "+1********00" in masked
    assert "555" not in masked and "4155" not in masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+94771234567", "+94*******67"),
        ("+94 77 123 4567", "+94*******67"),
        ("94771234567", "+94*******67"),
        ("+442071838750", "+44********50"),
        ("+15005550004", "+1********04"),  # Twilio's test numbers too
    ],
)
def test_other_countries(text: str, expected: str) -> None:
    assert mask_phones_in_log(f"From={text}&Body=x") == f"From={expected}&Body=x"


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T00:02:20.123456+00:00",
        "deferred to 2026-12-01 08:00:00",
        "epoch 1764547200, nanos 123456789",
        "projects/p/traces/0123456789abcdef0123456789abcdef",
        "C1_12a07a597aea8bb3170e_order-1",
        "SM0123456789abcdef0123456789abcdef",
        "created 12345678 users",
    ],
)
def test_timestamps_ids_and_counts_are_left_alone(text: str) -> None:
    assert mask_phones_in_log(text) == text


def test_national_numbers_are_read_in_the_deployment_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ese_logging, "_log_region", "LK")
    assert mask_phones_in_log("077 123 4567") == "+94*******67"
    assert mask_phones_in_log("0771234567") == "+94*******67"


def test_every_field_of_a_structured_line_is_masked() -> None:
    stream = io.StringIO()
    handler = ese_logging._MaskingStructuredLogHandler(stream=stream, project_id="p")
    logger = logging.getLogger("test_log_masking")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        labels = {"to": "whatsapp:+14155550100", "raw": "94 77 123 4567"}
        logger.warning("sent to %s", "(415) 555-0100", extra={"labels": labels})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["message"] == "sent to +1********00"
    labels = entry["logging.googleapis.com/labels"]
    assert (labels["to"], labels["raw"]) == ("whatsapp:+1********00", "+94*******67")
