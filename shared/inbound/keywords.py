"""Inbound keyword classification (exact match, as data)."""

from __future__ import annotations

from enum import StrEnum


class Classification(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"
    REPLY = "REPLY"


KEYWORDS: dict[str, Classification] = {
    **{
        word: Classification.STOP
        for word in (
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
        )
    },
    **{word: Classification.START for word in ("START", "YES", "UNSTOP")},
    **{word: Classification.HELP for word in ("HELP", "INFO")},
}

# Twilio's Advanced Opt-Out tells us its own reading of the message.
OPT_OUT_TYPES: dict[str, Classification] = {
    "STOP": Classification.STOP,
    "START": Classification.START,
    "HELP": Classification.HELP,
}


def classify_inbound(
    body: str | None, opt_out_type: str | None = None
) -> Classification:
    """`OptOutType` wins when present; otherwise the trimmed body must match."""
    if opt_out_type:
        by_type = OPT_OUT_TYPES.get(opt_out_type.strip().upper())
        if by_type is not None:
            return by_type
    return KEYWORDS.get((body or "").strip().upper(), Classification.REPLY)
