"""Keyword classification: exact match on the trimmed body; OptOutType wins."""

from __future__ import annotations

import pytest

from shared.inbound.keywords import KEYWORD_SETS, Classification, classify_inbound

KEYWORD_CASES = [
    (word, classification)
    for classification, words in KEYWORD_SETS.items()
    for word in sorted(words)
]


def mixed_case(word: str) -> str:
    return "".join(c.lower() if i % 2 else c.upper() for i, c in enumerate(word))


@pytest.mark.parametrize(("word", "expected"), KEYWORD_CASES)
def test_every_keyword_matches_in_any_case_and_padding(
    word: str, expected: Classification
) -> None:
    for variant in (word, word.lower(), mixed_case(word)):
        assert classify_inbound(variant) is expected
        assert classify_inbound(f"  {variant}\t\n") is expected


def test_the_keyword_table_is_the_designed_one() -> None:
    assert KEYWORD_SETS == {
        Classification.STOP: {
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
        },
        Classification.START: {"START", "YES", "UNSTOP"},
        Classification.HELP: {"HELP", "INFO"},
    }


@pytest.mark.parametrize(
    "body",
    [
        "Stop please",
        "please stop",
        "STOP!",
        "S T O P",
        "stopp",
        "yes please",
        "help me",
        "",
        "   ",
        None,
        "Hello, what time do you open?",
    ],
)
def test_anything_but_an_exact_keyword_is_a_reply(body: str | None) -> None:
    assert classify_inbound(body) is Classification.REPLY


@pytest.mark.parametrize(
    ("opt_out_type", "body", "expected"),
    [
        ("STOP", "Arrêt", Classification.STOP),
        ("STOP", "START", Classification.STOP),
        ("START", "stop", Classification.START),
        ("HELP", "Stop please", Classification.HELP),
        ("stop", "hello", Classification.STOP),
        (" HELP ", "hello", Classification.HELP),
    ],
)
def test_opt_out_type_overrides_the_body(
    opt_out_type: str, body: str, expected: Classification
) -> None:
    assert classify_inbound(body, opt_out_type) is expected


@pytest.mark.parametrize("opt_out_type", ["", None, "  ", "UNKNOWN"])
def test_an_empty_or_unknown_opt_out_type_falls_back_to_the_body(
    opt_out_type: str | None,
) -> None:
    assert classify_inbound(" Stop ", opt_out_type) is Classification.STOP
    assert classify_inbound("hi", opt_out_type) is Classification.REPLY
