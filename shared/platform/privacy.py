"""Keyed hashes of phone numbers: identifiers and suppressions that reveal none.

A message id, a send task's name and a StatusCallback URL all land in platform
request logs, which the application's log masking never reaches; a suppression
entry must outlive erasure. Both use an HMAC of the E.164 number under
`RECIPIENT_KEY`, a secret of the deployment: deterministic (retries still
dedupe, a later import of the number still finds its suppression), but
unreadable and not guessable by enumerating numbers without the key.
"""

from __future__ import annotations

import hashlib
import hmac

from shared.platform.config import privacy_settings

RECIPIENT_KEY_CHARS = 20


def _hmac_hex(purpose: str, phone: str, secret: str | None) -> str:
    key = (secret if secret is not None else privacy_settings().recipient_key).encode()
    return hmac.new(key, f"{purpose}{phone}".encode(), hashlib.sha256).hexdigest()


def recipient_key(phone: str, secret: str | None = None) -> str:
    """First 20 hex characters of HMAC-SHA256(RECIPIENT_KEY, E.164)."""
    return _hmac_hex("", phone, secret)[:RECIPIENT_KEY_CHARS]


def suppression_key(phone: str, secret: str | None = None) -> str:
    """The whole keyed hash, for the suppression entry that survives erasure."""
    return _hmac_hex("suppression:", phone, secret)
