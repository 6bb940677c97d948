"""Twilio error codes as data: retriable or permanent, and what they mean."""

from __future__ import annotations

# Errors worth retrying with backoff: the send may succeed later.
RETRIABLE_HTTP_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRIABLE_CODES = frozenset({20429, 20500, 20503})

# Codes that also withdraw the recipient's consent.
OPT_OUT_CODES = frozenset({21610})

# Twilio's meaning for the codes operators meet most often.
ERROR_MEANINGS: dict[str, str] = {
    "20429": "Too many requests",
    "21211": "Invalid 'To' phone number",
    "21408": "Permission to send to this region is not enabled",
    "21610": "Recipient has unsubscribed (replied STOP)",
    "21612": "The 'To' number is not reachable for this message",
    "21614": "'To' number is not a valid mobile number",
    "21910": "'From' and 'To' are not of the same channel",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "30008": "Unknown error",
    "63016": "Free-form WhatsApp outside the 24-hour window (use a content template)",
    # The engine's own: no send task ever ran for it (scheduler, stranded sweep).
    "send_attempts_exhausted": "Not sent: every send attempt was used up",
    # Ours, not Twilio's: an ambiguous send that reconciliation could not
    # settle with certainty (shared/delivery/reconcile.py). Never re-sent.
    "unreconciled": "Send outcome unknown at Twilio; not re-sent, check its logs",
}


def is_retriable(http_status: int | None, code: int | None) -> bool:
    if code is not None and code in RETRIABLE_CODES:
        return True
    return http_status is not None and http_status in RETRIABLE_HTTP_STATUSES


def error_meaning(code: str | None) -> str | None:
    return ERROR_MEANINGS.get(code or "")
