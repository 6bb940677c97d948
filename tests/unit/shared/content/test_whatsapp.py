"""WhatsApp content templates: rendering content variables, and the field rules."""

from typing import Any

import pytest
from pydantic import ValidationError

from shared.content.templates import (
    TemplateRenderError,
    TemplateSyntaxError,
    render_content_variables,
)
from shared.store.templates import TemplateFields

PHONE = "+94771234567"
CONTENT_SID = "HX" + "0123456789abcdef" * 2


def make_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "order shipped",
        "channel": "whatsapp",
        "content_sid": CONTENT_SID,
        "content_variables": {"1": "{{ name }}", "2": "{{ order.id }}"},
    }
    fields.update(overrides)
    return fields


def test_renders_each_placeholder_with_attributes_and_phone():
    values, missing = render_content_variables(
        {"1": "{{ name }}", "2": "{{ phone }}"}, {"name": "Ada"}, PHONE
    )
    assert values == {"1": "Ada", "2": PHONE}
    assert missing == []


def test_lists_missing_variables_once_and_sorted():
    values, missing = render_content_variables(
        {
            "1": "{{ name }}",
            "2": "{{ code }} {{ name }}",
            "3": "{{ city | default: 'x' }}",
        },
        {"name": "  "},
        PHONE,
    )
    assert values == {"1": "", "2": " ", "3": "x"}
    assert missing == ["code", "name"]


def test_extra_scope_reaches_content_variables():
    values, missing = render_content_variables(
        {"1": "{{ event.properties.total }}"},
        {},
        PHONE,
        {"event": {"properties": {"total": 120}}},
    )
    assert values == {"1": "120"}
    assert missing == []


def test_an_empty_mapping_renders_nothing():
    assert render_content_variables({}, {"name": "Ada"}, PHONE) == ({}, [])


def test_raises_like_render_message():
    with pytest.raises(TemplateSyntaxError):
        render_content_variables({"1": "{{ name "}, {}, PHONE)
    with pytest.raises(TemplateRenderError):
        render_content_variables(
            {"1": "{{ total | divided_by: n }}"}, {"total": 5, "n": 0}, PHONE
        )


def test_a_content_template_needs_no_body():
    fields = TemplateFields.model_validate(make_fields())
    assert fields.body == ""
    assert fields.content_variables == {"1": "{{ name }}", "2": "{{ order.id }}"}


# (overrides, field reported)
INVALID_FIELDS = [
    pytest.param({"channel": "sms"}, "content_sid", id="content-sid-on-sms"),
    pytest.param(
        {"content_sid": None, "body": "Hi"},
        "content_variables",
        id="variables-without-sid",
    ),
    pytest.param(
        {"content_sid": None, "content_variables": None, "body": "  "},
        "body",
        id="blank-body-without-sid",
    ),
    pytest.param({"content_sid": "HX123"}, "content_sid", id="malformed-sid"),
    pytest.param(
        {"content_variables": {"a.b": "{{ name }}"}},
        "content_variables.a.b.[key]",
        id="placeholder-not-a-name",
    ),
    pytest.param(
        {"content_variables": {"1": ""}}, "content_variables.1", id="empty-expression"
    ),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_FIELDS)
def test_rejects_inconsistent_content_fields(overrides: dict[str, Any], field: str):
    with pytest.raises(ValidationError) as caught:
        TemplateFields.model_validate(make_fields(**overrides))
    fields = [".".join(str(part) for part in e["loc"]) for e in caught.value.errors()]
    assert fields == [field]


def test_a_whatsapp_session_message_needs_only_a_body():
    fields = TemplateFields.model_validate(
        {"name": "reply", "channel": "whatsapp", "body": "Hi {{ name }}"}
    )
    assert fields.content_sid is None
