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

from google.cloud.logging_v2.handlers import StructuredLogHandler

_labels: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_labels", default=None
)

# E.164 numbers, also URL-encoded (%2B) and as the digits inside message ids
# (`{campaign}_{digits}`), are masked wherever they appear in a line.
_PHONE_PATTERN = re.compile(r"(\+|%2B|(?<=_))(\d{8,15})(?!\d)", re.IGNORECASE)


def mask_phone(phone: str) -> str:
    """`+14155550100` → `+1415***0100`."""
    return _PHONE_PATTERN.sub(_mask_match, phone)


def _mask_match(match: re.Match[str]) -> str:
    digits = match.group(2)
    return f"{match.group(1)}{digits[:4]}***{digits[-4:]}"


class _MaskingStructuredLogHandler(StructuredLogHandler):
    """Masks phone numbers in the final JSON line, whatever field holds them."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_phone(super().format(record))


class _ContextLabelFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _labels.get()
        if context:
            record.labels = {**context, **getattr(record, "labels", {})}
        return True


_configured = False


def configure_logging(level: str = "INFO", project_id: str | None = None) -> None:
    """Install the structured handler on the root logger (idempotent)."""
    global _configured
    if _configured:
        return
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
