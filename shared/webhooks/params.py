"""Reading Twilio's webhook parameters, and document ids derived from them.

Twilio sends the same value under old and new names (`SmsSid`/`MessageSid`,
`SmsStatus`/`MessageStatus`); the newer name wins when both are present.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

# Firestore document ids may not contain "/", be "." or "..", or look like
# `__name__`; anything outside this set is replaced so an id is always legal.
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.+-]")
_MAX_ID_CHARS = 500


def message_sid(params: Mapping[str, str]) -> str | None:
    return params.get("MessageSid") or params.get("SmsSid") or None


def inbound_sid(params: Mapping[str, str]) -> str | None:
    return (
        params.get("MessageSid")
        or params.get("SmsMessageSid")
        or params.get("SmsSid")
        or None
    )


def message_status(params: Mapping[str, str]) -> str:
    return (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()


def error_code(params: Mapping[str, str]) -> str | None:
    code = (params.get("ErrorCode") or "").strip()
    return code or None


def safe_document_id(*parts: str) -> str:
    """Join parts with "_" into a legal Firestore document id."""
    joined = "_".join(_UNSAFE_ID_CHARS.sub("-", part) for part in parts)
    joined = joined[:_MAX_ID_CHARS]
    if joined.strip(".") == "" or (joined.startswith("__") and joined.endswith("__")):
        return f"id-{joined}"
    return joined


def params_digest(params: Mapping[str, str]) -> str:
    """A stable id for parameters that carry no SID (so a redelivery matches)."""
    canonical = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
