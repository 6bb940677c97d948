import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.content.validation import (
    ContentViolation,
    ViolationCode,
    validate_content,
    with_opt_out_footer,
)
from shared.store.templates import TemplateChannel

SMS = TemplateChannel.SMS
WHATSAPP = TemplateChannel.WHATSAPP
EMOJI = "\U0001f600"


def codes(violations: list[ContentViolation]) -> list[str]:
    return [violation.code for violation in violations]


@pytest.mark.parametrize(
    ("body", "channel", "expected_codes"),
    [
        pytest.param("Hello", SMS, [], id="valid"),
        pytest.param("", SMS, ["empty"], id="empty"),
        pytest.param(" \n\t ", WHATSAPP, ["empty"], id="blank"),
        pytest.param("a" * 1600, SMS, [], id="sms-at-limit"),
        pytest.param("a" * 1601, SMS, ["too_long"], id="sms-over-limit"),
        pytest.param("a" * 1601, WHATSAPP, [], id="whatsapp-allows-more"),
        pytest.param("a" * 4096, WHATSAPP, [], id="whatsapp-at-limit"),
        pytest.param("a" * 4097, WHATSAPP, ["too_long"], id="whatsapp-over-limit"),
        # Code points, not UTF-16 units: 1600 emoji are 3200 units.
        pytest.param(EMOJI * 1600, SMS, [], id="counts-code-points"),
    ],
)
def test_validate_content_rules(
    body: str, channel: TemplateChannel, expected_codes: list[str]
) -> None:
    assert codes(validate_content(body, channel, [])) == expected_codes


def test_too_long_reason_states_length_and_limit() -> None:
    [violation] = validate_content("a" * 1601, SMS, [])
    assert violation == ContentViolation(
        ViolationCode.TOO_LONG, "1601 characters, over the sms limit of 1600"
    )


def test_prohibited_pattern_is_case_insensitive_and_quotes_the_match() -> None:
    violations = validate_content("Get FREE Money now", SMS, [r"free\s+money"])
    assert violations == [
        ContentViolation(
            "prohibited_pattern",
            "matches prohibited pattern 'free\\\\s+money': 'FREE Money'",
        )
    ]


def test_each_matching_pattern_is_reported() -> None:
    patterns = [r"\bcasino\b", r"\bloan\b", r"\bcrypto\b"]
    violations = validate_content("Casino and loan offers", SMS, patterns)
    assert codes(violations) == ["prohibited_pattern", "prohibited_pattern"]
    assert "'Casino'" in violations[0].reason
    assert "'loan'" in violations[1].reason


def test_long_matches_are_shortened_for_the_audit_trail() -> None:
    [violation] = validate_content("x" * 500, SMS, ["x+"])
    assert len(violation.reason) < 120


def test_all_rules_are_reported_together() -> None:
    body = "spam " * 400
    assert codes(validate_content(body, SMS, ["spam"])) == [
        "too_long",
        "prohibited_pattern",
    ]


def test_empty_body_reports_only_empty() -> None:
    assert codes(validate_content("  ", SMS, [r"\s"])) == ["empty"]


def test_invalid_pattern_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="invalid prohibited pattern"):
        validate_content("Hello", SMS, ["(unclosed"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("Sale today", "Sale today\nReply STOP to opt out", id="added"),
        pytest.param(
            "Sale today\n", "Sale today\nReply STOP to opt out", id="no-blank-line"
        ),
        pytest.param("Sale. Reply STOP to end", None, id="reply-stop"),
        pytest.param("Sale. Text stop to 12345", None, id="text-stop"),
        pytest.param("Sale. STOP to quit", None, id="stop-to-quit"),
        pytest.param("Sale. Opt-out: example.com/x", None, id="opt-out"),
        pytest.param("Sale. To opt out, call us", None, id="opt-out-words"),
        pytest.param("Sale. Unsubscribe at example.com", None, id="unsubscribe"),
        pytest.param(
            "Don't stop now!",
            "Don't stop now!\nReply STOP to opt out",
            id="bare-stop-is-no-instruction",
        ),
    ],
)
def test_with_opt_out_footer(body: str, expected: str | None) -> None:
    assert with_opt_out_footer(body) == (body if expected is None else expected)


def test_custom_footer_is_not_repeated() -> None:
    footer = "Envie SAIR para cancelar"
    once = with_opt_out_footer("Oferta", footer)
    assert once == "Oferta\nEnvie SAIR para cancelar"
    assert with_opt_out_footer(once, footer) == once


@given(st.text(max_size=200), st.sampled_from(["Reply STOP to opt out", "Txt END"]))
def test_footer_is_idempotent(body: str, footer: str) -> None:
    once = with_opt_out_footer(body, footer)
    assert with_opt_out_footer(once, footer) == once
