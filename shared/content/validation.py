"""Content rules checked on a rendered message before it is sent."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from shared.store.templates import TemplateChannel

# Characters are code points, as operators count them, not segments or bytes.
MAX_CHARACTERS: dict[TemplateChannel, int] = {
    TemplateChannel.SMS: 1_600,
    TemplateChannel.WHATSAPP: 4_096,
}

# Matched text is echoed into the audit trail; keep it short.
MATCH_EXCERPT_LENGTH = 40

DEFAULT_OPT_OUT_FOOTER = "Reply STOP to opt out"

# Phrases that already tell the recipient how to opt out. A bare "stop" ("don't
# stop now") is not one: a false match would drop the footer, which is a
# compliance problem, while a missed match only repeats the instruction.
OPT_OUT_INSTRUCTIONS = (
    r"\b(?:reply|text|txt|send|respond)\s+[\"'“]?(?:stop|end|quit|cancel)\b",
    r"\bstop\s+to\s+(?:opt|end|quit|cancel|unsubscribe|stop)",
    r"\bopt[\s-]?out\b",
    r"\bunsubscribe\b",
)
_OPT_OUT_INSTRUCTION = re.compile("|".join(OPT_OUT_INSTRUCTIONS), re.IGNORECASE)


class ViolationCode(StrEnum):
    EMPTY = "empty"
    TOO_LONG = "too_long"
    PROHIBITED_PATTERN = "prohibited_pattern"


@dataclass(frozen=True)
class ContentViolation:
    code: str
    reason: str


@lru_cache(maxsize=256)
def _compiled_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        raise ValueError(f"invalid prohibited pattern {pattern!r}: {error}") from error


def _excerpt(text: str) -> str:
    if len(text) <= MATCH_EXCERPT_LENGTH:
        return text
    return text[: MATCH_EXCERPT_LENGTH - 1] + "…"


def _prohibited_matches(
    body: str, prohibited_patterns: Sequence[str]
) -> list[ContentViolation]:
    violations = []
    for pattern in prohibited_patterns:
        match = _compiled_pattern(pattern).search(body)
        if match is not None:
            violations.append(
                ContentViolation(
                    ViolationCode.PROHIBITED_PATTERN,
                    f"matches prohibited pattern {pattern!r}: "
                    f"{_excerpt(match.group(0))!r}",
                )
            )
    return violations


def validate_content(
    body: str, channel: TemplateChannel, prohibited_patterns: Sequence[str]
) -> list[ContentViolation]:
    """Every rule the message breaks; an empty list means it may be sent.

    Raises ValueError when a configured pattern is not a valid regular expression.
    """
    if not body.strip():
        return [ContentViolation(ViolationCode.EMPTY, "message body is empty")]
    violations = []
    limit = MAX_CHARACTERS[channel]
    if len(body) > limit:
        violations.append(
            ContentViolation(
                ViolationCode.TOO_LONG,
                f"{len(body)} characters, over the {channel} limit of {limit}",
            )
        )
    violations.extend(_prohibited_matches(body, prohibited_patterns))
    return violations


def has_opt_out_instruction(body: str) -> bool:
    return _OPT_OUT_INSTRUCTION.search(body) is not None


def with_opt_out_footer(body: str, footer: str = DEFAULT_OPT_OUT_FOOTER) -> str:
    """`body` with the opt-out footer on its own line, unless it already has one."""
    if has_opt_out_instruction(body) or footer.casefold() in body.casefold():
        return body
    return f"{body.rstrip()}\n{footer}"
