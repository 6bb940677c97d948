"""Inbound keyword classification: exact match against keyword sets (as data)."""

from __future__ import annotations

from enum import StrEnum


class Classification(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"
    REPLY = "REPLY"


KEYWORD_SETS: dict[Classification, frozenset[str]] = {
    Classification.STOP: frozenset(
        {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
    ),
    Classification.START: frozenset({"START", "YES", "UNSTOP"}),
    Classification.HELP: frozenset({"HELP", "INFO"}),
}
KEYWORDS: dict[str, Classification] = {
    word: classification
    for classification, words in KEYWORD_SETS.items()
    for word in words
}

# Twilio's Advanced Opt-Out tells us its own reading of the message, which also
# covers its localised keywords and any custom ones set in the console.
OPT_OUT_TYPES: dict[str, Classification] = {
    "STOP": Classification.STOP,
    "START": Classification.START,
    "HELP": Classification.HELP,
}


def classify_inbound(
    body: str | None, opt_out_type: str | None = None
) -> Classification:
    """`OptOutType` wins when present; otherwise the trimmed body must match."""
    by_type = OPT_OUT_TYPES.get((opt_out_type or "").strip().upper())
    if by_type is not None:
        return by_type
    return KEYWORDS.get((body or "").strip().upper(), Classification.REPLY)
