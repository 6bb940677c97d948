"""Structured logging in Cloud Logging's JSON format, with phone masking.

Every function calls `configure_logging()` once. Lines go to stdout as JSON via
google-cloud-logging's StructuredLogHandler, which also maps the trace header
of the current Flask request to `logging.googleapis.com/trace`. Labels set with
`log_context(...)` ride on every line written inside that context.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import phonenumbers
from google.cloud.logging_v2.handlers import StructuredLogHandler

_labels: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_labels", default=None
)

# API display of a phone (samples, inbound lists): enough to tell contacts apart.
_E164_PATTERN = re.compile(r"(\+|%2B)(\d{8,15})(?!\d)", re.IGNORECASE)


def mask_phone(phone: str) -> str:
    """`+14155550100` → `+1415***0100`, for API answers that show a contact."""
    return _E164_PATTERN.sub(_mask_display, phone)


def _mask_display(match: re.Match[str]) -> str:
    digits = match.group(2)
    return f"{match.group(1)}{digits[:4]}***{digits[-4:]}"


# Anything in a log line that may be a phone number, in any format: E.164 with
# `+` or `%2B` (so also after `whatsapp:` or `tel:`), bare digits, national
# forms with spaces, dots, dashes or parentheses. Candidates are then held
# against phonenumbers, so that timestamps, counts and ids stay readable.
_CANDIDATE = re.compile(
    r"(?:(?P<plus>\+|%2B)|(?<![0-9A-Za-z+]))"
    r"(?P<number>\(?\d(?:[ .\-()]{0,2}\d){6,16})(?![0-9A-Za-z])",
    re.IGNORECASE,
)
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}")
_log_region = "US"


def _parsed_phone(text: str, international: bool) -> phonenumbers.PhoneNumber | None:
    digits = re.sub(r"\D", "", text)
    attempts = [f"+{digits}"] if international else [text, f"+{digits}"]
    for attempt in attempts:
        try:
            parsed = phonenumbers.parse(
                attempt, None if attempt[0] == "+" else _log_region
            )
        except phonenumbers.NumberParseException:
            continue
        possible = phonenumbers.is_possible_number(parsed)
        if (international and possible) or phonenumbers.is_valid_number(parsed):
            return parsed
    return None


def _mask_for_log(match: re.Match[str]) -> str:
    text = match.group("number")
    if not match.group("plus") and _DATE_LIKE.search(text):
        return match.group(0)
    parsed = _parsed_phone(text, international=bool(match.group("plus")))
    if parsed is None:
        return match.group(0)
    national = str(parsed.national_number)
    if parsed.italian_leading_zero:
        national = "0" * (parsed.number_of_leading_zeros or 1) + national
    return f"+{parsed.country_code}{'*' * (len(national) - 2)}{national[-2:]}"


def mask_phones_in_log(text: str) -> str:
    """Every phone number in `text`, in any format → `+1********00`.

    Only the country code and the last two digits survive: enough to follow
    one conversation in a log, not enough to find the person.
    """
    return _CANDIDATE.sub(_mask_for_log, text)


class _MaskingStructuredLogHandler(StructuredLogHandler):
    """Masks phone numbers in the final JSON line, whatever field holds them."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_phones_in_log(super().format(record))


class _ContextLabelFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _labels.get()
        if context:
            record.labels = {**context, **getattr(record, "labels", {})}
        return True


_configured = False


def configure_logging(
    level: str = "INFO", project_id: str | None = None, default_region: str = "US"
) -> None:
    """Install the structured handler on the root logger (idempotent)."""
    global _configured, _log_region
    if _configured:
        return
    # National-format numbers in log lines are read in the deployment's region.
    _log_region = default_region
    handler = _MaskingStructuredLogHandler(stream=sys.stdout, project_id=project_id)
    # Runs before the handler's own filter, which turns labels into JSON.
    handler.filters.insert(0, _ContextLabelFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # Client libraries are chatty at INFO and may echo request bodies.
    for noisy in ("urllib3", "twilio", "google", "werkzeug", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


@contextmanager
def log_context(**labels: Any) -> Iterator[None]:
    """Attach labels (campaign_id, message_id, …) to every line in the block."""
    current = _labels.get() or {}
    merged = {**current, **{k: str(v) for k, v in labels.items() if v is not None}}
    token = _labels.set(merged)
    try:
        yield
    finally:
        _labels.reset(token)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
