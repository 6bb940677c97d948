import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.content.templates import (
    RenderResult,
    TemplateRenderError,
    TemplateSyntaxError,
    compile_template,
    render_message,
    template_variables,
)

PHONE = "+94771234567"


def make_attributes(**overrides: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "name": "Ada",
        "code": "493021",
        "address": {"city": "Colombo", "zip": "00300"},
    }
    attributes.update(overrides)
    return attributes


# (template, attributes, expected body, expected missing variables)
RENDER_CASES = [
    pytest.param(
        'Hi {{ name | default: "there" }}, your code is {{ code }}',
        make_attributes(),
        "Hi Ada, your code is 493021",
        [],
        id="all-present",
    ),
    pytest.param(
        'Hi {{ name | default: "there" }}!',
        {},
        "Hi there!",
        [],
        id="default-fills-undefined",
    ),
    pytest.param(
        'Hi {{ name | default: "there" }}!',
        make_attributes(name=""),
        "Hi there!",
        [],
        id="default-fills-empty-string",
    ),
    pytest.param("Hi {{ name }}!", {}, "Hi !", ["name"], id="undefined"),
    pytest.param(
        "Hi {{ name }}!", make_attributes(name=""), "Hi !", ["name"], id="empty"
    ),
    pytest.param(
        "Hi {{ name }}!", make_attributes(name="   "), "Hi !", ["name"], id="blank"
    ),
    pytest.param(
        "Hi {{ name }}!", make_attributes(name=None), "Hi !", ["name"], id="none"
    ),
    pytest.param(
        'Hi {{ name | default: "you" }}, {{ name }}',
        {},
        "Hi you, ",
        ["name"],
        id="defaulted-once-missing-once",
    ),
    pytest.param("Hi {{ name | upcase }}", {}, "Hi ", ["name"], id="through-a-filter"),
    pytest.param(
        'Hi {{ name | append: "!" }}',
        make_attributes(name=""),
        "Hi !",
        ["name"],
        id="empty-hidden-by-append",
    ),
    pytest.param(
        'Hi {{ "friend" | append: name }}',
        {},
        "Hi friend",
        ["name"],
        id="missing-filter-argument",
    ),
    pytest.param(
        "{{ name | default: nickname }}",
        {},
        "",
        ["nickname"],
        id="default-argument-itself-missing",
    ),
    pytest.param(
        '{{ name | default: nickname | default: "friend" }}',
        {},
        "friend",
        [],
        id="chained-defaults",
    ),
    pytest.param(
        "Hi {{ name | default: 'x' | append: suffix }}",
        {},
        "Hi x",
        ["suffix"],
        id="after-default-not-covered",
    ),
    pytest.param("{{ address.city }}", make_attributes(), "Colombo", [], id="nested"),
    pytest.param(
        "In {{ address.city }}",
        make_attributes(address={"zip": "1"}),
        "In ",
        ["address.city"],
        id="nested-key-missing",
    ),
    pytest.param(
        "In {{ address.city }}", {}, "In ", ["address.city"], id="nested-parent-missing"
    ),
    pytest.param(
        "In {{ address.city }}",
        make_attributes(address={"city": ""}),
        "In ",
        ["address.city"],
        id="nested-empty",
    ),
    pytest.param(
        "{% if name %}Hi {{ name }}. {% endif %}Sale!",
        {},
        "Sale!",
        [],
        id="guarded-by-if",
    ),
    pytest.param(
        "{% assign who = name %}Hi {{ who }}", {}, "Hi ", ["name"], id="via-assign"
    ),
    pytest.param(
        '{% assign who = name %}Hi {{ who | default: "you" }}',
        {},
        "Hi you",
        [],
        id="via-assign-defaulted",
    ),
    pytest.param(
        "{% for item in items %}{{ item.sku }};{% endfor %}",
        {"items": [{"sku": "A"}, {"sku": ""}]},
        "A;;",
        ["item.sku"],
        id="loop-item-empty",
    ),
    pytest.param(
        '{{ tags | join: ", " }}', {"tags": []}, "", ["tags"], id="empty-list-joined"
    ),
    pytest.param("{% echo name %}", {}, "", ["name"], id="echo-tag"),
    pytest.param("{% liquid\necho name\n%}", {}, "", ["name"], id="liquid-tag"),
    pytest.param("Call {{ phone }}", {}, f"Call {PHONE}", [], id="phone-in-scope"),
    pytest.param("{{ name | default: '' }}", {}, "", [], id="explicit-empty-default"),
    pytest.param(
        "{{ name | upcase }} {{ name | capitalize }}",
        make_attributes(name="ada"),
        "ADA Ada",
        [],
        id="standard-filters",
    ),
    pytest.param(
        '{{ signup | date: "%b %d, %Y" }}',
        {"signup": dt.date(2024, 3, 5)},
        "Mar 05, 2024",
        [],
        id="date-filter",
    ),
    pytest.param(
        "{{ visits }} {{ vip }}",
        {"visits": 0, "vip": False},
        "0 false",
        [],
        id="falsy-values-are-present",
    ),
]


@pytest.mark.parametrize(("body", "attributes", "text", "missing"), RENDER_CASES)
def test_render_message(
    body: str, attributes: dict[str, Any], text: str, missing: list[str]
) -> None:
    assert render_message(body, attributes, PHONE) == RenderResult(text, missing)


def test_extra_scope_adds_the_triggering_event() -> None:
    body = "Order {{ event.order_id }} ships to {{ address.city }}"
    result = render_message(
        body, make_attributes(), PHONE, extra={"event": {"order_id": "A-17"}}
    )
    assert result == RenderResult("Order A-17 ships to Colombo", [])


def test_missing_event_field_is_reported_with_its_path() -> None:
    result = render_message("Order {{ event.order_id }}", {}, PHONE, extra={})
    assert result.missing_variables == ["event.order_id"]


def test_engine_values_win_over_attributes_of_the_same_name() -> None:
    attributes = make_attributes(phone="+10000000000", event="stale")
    result = render_message(
        "{{ phone }} {{ event.id }}", attributes, PHONE, extra={"event": {"id": "7"}}
    )
    assert result.body == f"{PHONE} 7"


def test_render_does_not_change_the_callers_attributes() -> None:
    attributes = make_attributes(name="", address={"city": ""})
    render_message("{{ name }} {{ address.city }}", attributes, PHONE)
    assert attributes == make_attributes(name="", address={"city": ""})


@pytest.mark.parametrize(
    ("body", "variables"),
    [
        pytest.param('Hi {{ name | default: "x" }}', ["name"], id="simple"),
        pytest.param(
            "{{ address.city }} {{ event.order_id }} {{ phone }}",
            ["address.city", "event.order_id", "phone"],
            id="paths-sorted",
        ),
        pytest.param(
            "{% for item in items %}{{ item.sku }} {{ forloop.index }}{% endfor %}",
            ["items"],
            id="loop-locals-excluded",
        ),
        pytest.param(
            "{% assign who = name %}{% capture c %}x{% endcapture %}{{ who }}{{ c }}",
            ["name"],
            id="assigned-names-excluded",
        ),
        pytest.param('{{ now | date: "%Y" }}', [], id="liquid-builtins-excluded"),
        pytest.param("{{ a }}{{ a }}", ["a"], id="deduplicated"),
        pytest.param("No variables", [], id="none"),
    ],
)
def test_template_variables(body: str, variables: list[str]) -> None:
    assert template_variables(body) == variables


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        pytest.param("Hi {{ name", 1, "expected '}}', found end of file", id="open"),
        pytest.param(
            "Hi\n{% if vip %}Gold", 2, "expected tag endif", id="unclosed-block"
        ),
        pytest.param(
            "Hi\n\n{{ name | nope }}", 3, "unknown filter 'nope'", id="filter"
        ),
        pytest.param('{% include "other" %}', 1, "unexpected tag 'include'", id="inc"),
        pytest.param('{% render "other" %}', 1, "unexpected tag 'render'", id="render"),
    ],
)
def test_compile_rejects_bad_templates(body: str, line: int, reason: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(body)
    assert caught.value.line == line
    assert reason in caught.value.reason


def test_render_message_raises_syntax_error_for_bad_template() -> None:
    with pytest.raises(TemplateSyntaxError):
        render_message("{% if %}", {}, PHONE)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            "{% for i in (1..999) %}{% for j in (1..999) %}x{% endfor %}{% endfor %}",
            id="loop-limit",
        ),
        pytest.param("{{ (1..big) | join }}", id="range-from-contact-data"),
        pytest.param(
            "{% for i in (1..900) %}{{ long }}{% endfor %}", id="output-limit"
        ),
        pytest.param("{{ 1 | divided_by: 0 }}", id="filter-error"),
    ],
)
def test_render_failures_raise_render_error(body: str) -> None:
    with pytest.raises(TemplateRenderError):
        render_message(body, {"long": "x" * 1000, "big": 10**11}, PHONE)


def test_compiled_template_is_cached_per_body() -> None:
    body = "Cached {{ name }}"
    assert compile_template(body) is compile_template(body)


def as_rendered_line_breaks(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def test_line_breaks_come_out_as_newlines() -> None:
    result = render_message("a\r\nb {{ x }}", {"x": "1\r2"}, PHONE)
    assert result.body == "a\nb 1\n2"


# Prefixed, so that no name collides with a Liquid keyword such as `nil`.
attribute_names = st.from_regex(r"v_[a-c]{1,2}", fullmatch=True)


@given(st.dictionaries(attribute_names, st.text(max_size=20)), attribute_names)
def test_a_variable_is_missing_exactly_when_blank(
    attributes: dict[str, str], name: str
) -> None:
    result = render_message(f"[{{{{ {name} }}}}]", attributes, PHONE)
    value = attributes.get(name, "")
    if value.strip():
        assert result == RenderResult(f"[{as_rendered_line_breaks(value)}]", [])
    else:
        assert result.missing_variables == [name]


def _nested(opening: str, closing: str, depth: int, inner: str = "x") -> str:
    return opening * depth + inner + closing * depth


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            _nested("{% if a %}", "{% endif %}", 5_000),
            "block nesting limit",
            id="deep-if",
        ),
        pytest.param(
            _nested("{% for i in (1..2) %}", "{% endfor %}", 1_000),
            "block nesting limit",
            id="deep-for",
        ),
        pytest.param(
            _nested("{% capture c %}", "{% endcapture %}", 1_000),
            "block nesting limit",
            id="deep-capture",
        ),
        pytest.param(
            "{% liquid\n" + "if a\n" * 1_000 + "echo a\n" + "endif\n" * 1_000 + "%}",
            "block nesting limit",
            id="deep-liquid-tag",
        ),
        pytest.param(
            "{{ " + "(" * 2_000 + "1" + ")" * 2_000 + " }}",
            "expected",
            id="deep-parentheses",
        ),
        pytest.param("{% include 'self' %}", "unexpected tag", id="recursive-include"),
        pytest.param("{% render 'self' %}", "unexpected tag", id="recursive-render"),
        pytest.param(
            "{{ (1..100000000000) | join: ',' }}",
            "range longer than 1000 items",
            id="huge-literal-range",
        ),
    ],
)
def test_hostile_templates_are_rejected_when_compiled(body: str, reason: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(body)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            "{% assign s = 'xxxxxxxxxx' %}{% for i in (1..999) %}"
            "{% assign s = s | append: s %}{% endfor %}{{ s }}",
            "local namespace limit",
            id="doubling-assign",
        ),
        pytest.param(
            "{% capture s %}xxxxxxxxxx{% endcapture %}{% for i in (1..60) %}"
            "{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}{{ s }}",
            "limit reached",
            id="doubling-capture",
        ),
        pytest.param(
            "{% for i in (1..999) %}{% for j in (1..999) %}"
            "{% increment n %}{% endfor %}{% endfor %}",
            "loop iteration limit",
            id="nested-loops",
        ),
        pytest.param(
            "{% tablerow i in (1..n) %}x{% endtablerow %}",
            "range longer than 1000 items",
            id="tablerow-over-contact-number",
        ),
    ],
)
def test_runaway_renders_stop_at_their_limit(body: str, reason: str) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render_message(body, {"n": 10**12}, PHONE)
    assert reason in str(caught.value)


def test_ranges_within_the_limit_still_render() -> None:
    body = "{{ (1..3) | join: ',' }} {% for i in (1..n) %}{{ i }}{% endfor %}"
    assert render_message(body, {"n": 1000}, PHONE).body.startswith("1,2,3 123")
