"""SMS encoding detection and segment counting (GSM 03.38 / UCS-2).

Carriers bill and throttle by segment, so pacing and the stored `segments` of a
message must agree with how the network will split the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Encoding(StrEnum):
    GSM7 = "GSM7"
    UCS2 = "UCS2"


# GSM 03.38 default alphabet in code order 0x00-0x7F, without 0x1B (the escape to
# the extension table, which is not a character of its own). Only the capital
# "Ç" is in the table (0x09); a lowercase "ç" forces UCS-2.
GSM7_BASIC_CHARACTERS = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# GSM 03.38 extension table: each is sent as ESC + code, so it costs 2 septets.
GSM7_EXTENSION_CHARACTERS = frozenset("\f^{}\\[~]|€")

GSM7_CHARACTERS = GSM7_BASIC_CHARACTERS | GSM7_EXTENSION_CHARACTERS

SEPTETS_PER_BASIC_CHARACTER = 1
SEPTETS_PER_EXTENSION_CHARACTER = 2


@dataclass(frozen=True)
class SegmentLimits:
    """Capacity in units of one encoding: alone, and per part of a long message.

    A multi-part message loses room in each part to the concatenation header.
    """

    single: int
    per_part: int


SEGMENT_LIMITS: dict[Encoding, SegmentLimits] = {
    Encoding.GSM7: SegmentLimits(single=160, per_part=153),
    Encoding.UCS2: SegmentLimits(single=70, per_part=67),
}


@dataclass(frozen=True)
class SegmentInfo:
    """How a text travels as SMS.

    `characters` counts code points. `units` counts septets for GSM-7 and UTF-16
    code units for UCS-2 (a character outside the BMP takes two).
    """

    encoding: Encoding
    characters: int
    units: int
    segments: int


def detect_encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 tables, else UCS-2."""
    if GSM7_CHARACTERS.issuperset(text):
        return Encoding.GSM7
    return Encoding.UCS2


def _gsm7_septets(char: str) -> int:
    if char in GSM7_EXTENSION_CHARACTERS:
        return SEPTETS_PER_EXTENSION_CHARACTER
    return SEPTETS_PER_BASIC_CHARACTER


def _utf16_units(char: str) -> int:
    # Characters beyond U+FFFF travel as a surrogate pair.
    return 2 if ord(char) > 0xFFFF else 1


def _pack_parts(unit_costs: Iterable[int], per_part: int) -> int:
    """Count parts when no character may be split across two parts.

    An escape sequence or a surrogate pair that would straddle a boundary moves
    whole to the next part, leaving the previous part one unit short.
    """
    parts = 1
    used = 0
    for cost in unit_costs:
        if used + cost > per_part:
            parts += 1
            used = 0
        used += cost
    return parts


def count_segments(text: str) -> SegmentInfo:
    """Encoding, length and number of SMS segments for `text`.

    Empty text counts as 1 segment: a message is billed and paced as at least
    one segment, so no downstream budget ever treats a send as free. Content
    validation rejects empty bodies before they are sent anyway.
    """
    encoding = detect_encoding(text)
    unit_of = _gsm7_septets if encoding is Encoding.GSM7 else _utf16_units
    unit_costs = [unit_of(char) for char in text]
    units = sum(unit_costs)
    limits = SEGMENT_LIMITS[encoding]
    if units <= limits.single:
        segments = 1
    else:
        segments = _pack_parts(unit_costs, limits.per_part)
    return SegmentInfo(
        encoding=encoding, characters=len(text), units=units, segments=segments
    )
