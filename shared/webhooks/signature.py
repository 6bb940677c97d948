"""Twilio's signature check over one or more auth tokens."""

from __future__ import annotations

from typing import Any

from twilio.request_validator import RequestValidator


class AnyTokenValidator(RequestValidator):
    """Twilio's validator over one or more auth tokens ("NEW,OLD").

    During a token rotation the secret holds both, so webhooks signed with
    either are accepted and the switch in Twilio needs no downtime.
    """

    def __init__(self, tokens: str) -> None:
        names = [token.strip() for token in tokens.split(",") if token.strip()]
        if not names:
            raise ValueError("no auth token")
        super().__init__(names[0])
        self._validators = [RequestValidator(token) for token in names]

    def validate(self, uri: str, params: Any = None, signature: str = "") -> bool:
        return any(v.validate(uri, params, signature) for v in self._validators)
