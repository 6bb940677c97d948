import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.content.encoding import (
    GSM7_BASIC_CHARACTERS,
    GSM7_CHARACTERS,
    GSM7_EXTENSION_CHARACTERS,
    Encoding,
    SegmentInfo,
    count_segments,
)

GSM7 = Encoding.GSM7
UCS2 = Encoding.UCS2
EMOJI = "\U0001f600"  # outside the BMP: one code point, two UTF-16 units
SINHALA_GREETING = "\u0d86\u0dba\u0dd4\u0db6\u0ddd\u0dc0\u0db1\u0dca"  # 8 points

# (text, encoding, characters, units, segments). Single message: GSM-7 160
# septets, UCS-2 70 units. Each part of a long message: 153 and 67.
SEGMENT_VECTORS = [
    # Empty counts as one segment: a send is never free (see count_segments).
    pytest.param("", GSM7, 0, 0, 1, id="empty"),
    pytest.param("a" * 160, GSM7, 160, 160, 1, id="gsm-160-fits-one"),
    pytest.param("a" * 161, GSM7, 161, 161, 2, id="gsm-161-two-parts"),
    pytest.param("a" * 306, GSM7, 306, 306, 2, id="gsm-153x2-fills-two"),
    pytest.param("a" * 307, GSM7, 307, 307, 3, id="gsm-153x2+1-three"),
    pytest.param("€", GSM7, 1, 2, 1, id="euro-counts-2"),
    pytest.param("\f", GSM7, 1, 2, 1, id="form-feed-counts-2"),
    # 10 extension characters x 2 septets = 20.
    pytest.param("^{}[]~\\|€\f", GSM7, 10, 20, 1, id="extension-table"),
    # Extension char at position 159: 158 + 2 = 160 septets, still one.
    pytest.param("a" * 158 + "€", GSM7, 159, 160, 1, id="euro-at-159"),
    # At 160: 159 + 2 = 161 septets -> parts of 153 | 6 + 2.
    pytest.param("a" * 159 + "€", GSM7, 160, 161, 2, id="euro-at-160"),
    # At 161: 160 + 2 = 162 septets -> 153 | 7 + 2.
    pytest.param("a" * 160 + "€", GSM7, 161, 162, 2, id="euro-at-161"),
    # "€" would take septets 153-154: it moves whole to part 2, so
    # 152 | 2 + 151 | 1 is 3 parts where ceil(306 / 153) would say 2.
    pytest.param("a" * 152 + "€" + "a" * 152, GSM7, 305, 306, 3, id="euro-straddle"),
    # Right after the boundary nothing moves: 153 | 2 + 151.
    pytest.param("a" * 153 + "€" + "a" * 151, GSM7, 305, 306, 2, id="euro-at-154"),
    pytest.param("€" * 80, GSM7, 80, 160, 1, id="euro-x80-fits-one"),
    # 76 euros (152 septets) per part, the 77th would straddle: 76 | 5.
    pytest.param("€" * 81, GSM7, 81, 162, 2, id="euro-x81"),
    # 76 | 76 | 1, where ceil(306 / 153) would say 2.
    pytest.param("€" * 153, GSM7, 153, 306, 3, id="euro-x153"),
    pytest.param("Ç", GSM7, 1, 1, 1, id="capital-c-cedilla-is-gsm"),
    pytest.param("ç", UCS2, 1, 1, 1, id="small-c-cedilla-is-not"),
    pytest.param("é", GSM7, 1, 1, 1, id="e-acute-is-gsm"),
    pytest.param("á", UCS2, 1, 1, 1, id="a-acute-is-not"),
    pytest.param("`", UCS2, 1, 1, 1, id="backtick-is-not"),
    pytest.param("@£$¥¤§¿¡", GSM7, 8, 8, 1, id="gsm-symbols"),
    pytest.param("ΔΦΓΛΩΠΨΣΘΞ", GSM7, 10, 10, 1, id="gsm-greek-capitals"),
    pytest.param("δ", UCS2, 1, 1, 1, id="greek-small-is-not"),
    pytest.param("Hi\r\nthere", GSM7, 9, 9, 1, id="cr-lf"),
    pytest.param("ж" * 70, UCS2, 70, 70, 1, id="ucs2-70-fits-one"),
    pytest.param("ж" * 71, UCS2, 71, 71, 2, id="ucs2-71-two-parts"),
    pytest.param("ж" * 134, UCS2, 134, 134, 2, id="ucs2-67x2-fills-two"),
    pytest.param("ж" * 135, UCS2, 135, 135, 3, id="ucs2-67x2+1-three"),
    pytest.param(EMOJI, UCS2, 1, 2, 1, id="emoji-counts-2"),
    # Emoji at position 69: 68 + 2 = 70 units, still one.
    pytest.param("a" * 68 + EMOJI, UCS2, 69, 70, 1, id="emoji-at-69"),
    # At 70: 69 + 2 = 71 units -> 67 | 2 + 2.
    pytest.param("a" * 69 + EMOJI, UCS2, 70, 71, 2, id="emoji-at-70"),
    # The pair would take units 67-68: it moves whole, 66 | 2 + 65 | 1,
    # where ceil(134 / 67) would say 2.
    pytest.param("ж" * 66 + EMOJI + "ж" * 66, UCS2, 133, 134, 3, id="emoji-straddle"),
    # Right after the boundary: 67 | 2 + 65.
    pytest.param("ж" * 67 + EMOJI + "ж" * 65, UCS2, 133, 134, 2, id="emoji-at-68"),
    pytest.param("Hello мир", UCS2, 9, 9, 1, id="latin-cyrillic"),
    # "Привет " is 7 code points: x10 = 70 fits, x11 = 77 -> 67 | 10.
    pytest.param("Привет " * 10, UCS2, 70, 70, 1, id="cyrillic-70"),
    pytest.param("Привет " * 11, UCS2, 77, 77, 2, id="cyrillic-77"),
    # "Hi " + 8 Sinhala code points, all in the BMP.
    pytest.param("Hi " + SINHALA_GREETING, UCS2, 11, 11, 1, id="latin-sinhala"),
    # One Sinhala letter turns 100 Latin letters into UCS-2: 101 -> 67 | 34.
    pytest.param("a" * 100 + "\u0d86", UCS2, 101, 101, 2, id="sinhala-forces-ucs2"),
]


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "units", "segments"), SEGMENT_VECTORS
)
def test_count_segments_vectors(
    text: str, encoding: Encoding, characters: int, units: int, segments: int
) -> None:
    assert count_segments(text) == SegmentInfo(
        encoding=encoding, characters=characters, units=units, segments=segments
    )


def test_gsm7_tables_have_the_standard_sizes() -> None:
    # 128 codes in the default alphabet, minus 0x1B, the escape itself.
    assert len(GSM7_BASIC_CHARACTERS) == 127
    assert len(GSM7_EXTENSION_CHARACTERS) == 10
    assert not GSM7_BASIC_CHARACTERS & GSM7_EXTENSION_CHARACTERS


gsm_basic_characters = st.sampled_from(sorted(GSM7_BASIC_CHARACTERS))
gsm_characters = st.sampled_from(sorted(GSM7_CHARACTERS))
# codec="utf-8" leaves out lone surrogates, which no real text contains.
any_characters = st.characters(codec="utf-8")
non_gsm_characters = st.characters(
    codec="utf-8", exclude_characters=sorted(GSM7_CHARACTERS)
)


@given(st.lists(gsm_basic_characters, max_size=700))
def test_gsm7_basic_text_splits_by_160_then_153(characters: list[str]) -> None:
    count = len(characters)
    info = count_segments("".join(characters))
    assert info.encoding is Encoding.GSM7
    assert info.units == count
    assert info.segments == (1 if count <= 160 else math.ceil(count / 153))


@given(st.text(gsm_characters, max_size=500), gsm_characters)
def test_gsm7_segments_never_drop_when_appending(text: str, char: str) -> None:
    before = count_segments(text)
    after = count_segments(text + char)
    assert after.encoding is before.encoding is Encoding.GSM7
    assert after.segments >= before.segments


@given(st.text(max_size=300), non_gsm_characters, any_characters)
def test_ucs2_segments_never_drop_when_appending(
    text: str, non_gsm: str, char: str
) -> None:
    ucs2_text = text + non_gsm
    before = count_segments(ucs2_text)
    after = count_segments(ucs2_text + char)
    assert after.encoding is before.encoding is Encoding.UCS2
    assert after.segments >= before.segments


@given(st.text(max_size=800))
def test_parts_hold_the_units_without_overflowing(text: str) -> None:
    info = count_segments(text)
    per_part = 153 if info.encoding is Encoding.GSM7 else 67
    if info.segments > 1:
        # No part holds more than its capacity; moving a 2-unit character loses
        # at most one unit per part.
        assert math.ceil(info.units / per_part) <= info.segments
        assert info.segments <= math.ceil(info.units / (per_part - 1))
