"""The segment DSL: validation with JSON paths, operator semantics, pushdown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.audience.segments import (
    MAX_CONDITIONS,
    MAX_VALUE_BYTES,
    SegmentDefinitionError,
    matches_properties,
    plan_query,
    user_matches,
    validate_definition,
    validate_properties_definition,
)
from shared.store.users import Consent, ConsentState, User

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def make_user(
    phone: str = "+94771234567",
    consent: ConsentState = ConsentState.OPT_IN,
    timezone: str | None = None,
    created_at: datetime | None = NOW - timedelta(days=3),
    **attributes: Any,
) -> User:
    return User(
        phone=phone,
        attributes=attributes,
        timezone=timezone,
        consent=Consent(state=consent),
        created_at=created_at,
    )


def cond(attribute: str, operator: str, value: Any = None) -> dict[str, Any]:
    node: dict[str, Any] = {"attribute": attribute, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def matches(definition: dict[str, Any], user: User) -> bool:
    validate_definition(definition)
    return user_matches(definition, user, NOW)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("definition", "path"),
    [
        ([], "$"),
        ({}, "$"),
        ({"attribute": "city", "operator": "equal", "value": "x"}, "$.operator"),
        ({"attribute": "", "operator": "equals", "value": "x"}, "$.attribute"),
        ({"attribute": "a..b", "operator": "equals", "value": "x"}, "$.attribute"),
        ({"attribute": "city", "operator": "equals"}, "$.value"),
        ({"attribute": "city", "operator": "equals", "value": [1]}, "$.value"),
        ({"attribute": "city", "operator": "equals", "value": None}, "$.value"),
        ({"attribute": "city", "operator": "in", "value": []}, "$.value"),
        ({"attribute": "a", "operator": "gt", "value": float("nan")}, "$.value"),
        ({"attribute": "a", "operator": "gt", "value": True}, "$.value"),
        ({"attribute": "a", "operator": "exists", "value": 1}, "$.value"),
        ({"attribute": "a", "operator": "before", "value": "soon"}, "$.value"),
        ({"attribute": "a", "operator": "within_last_days", "value": 0}, "$.value"),
        ({"attribute": "a", "operator": "starts_with", "value": ""}, "$.value"),
        ({"attribute": "a", "operator": "equals", "value": 1, "x": 1}, "$.x"),
        ({"logic": "XOR", "conditions": [cond("a", "exists")]}, "$.logic"),
        ({"logic": "AND", "conditions": []}, "$.conditions"),
        ({"conditions": [cond("a", "exists")]}, "$.logic"),
        (
            {"logic": "OR", "conditions": [cond("a", "exists"), cond("b", "nope", 1)]},
            "$.conditions[1].operator",
        ),
        ({"not": {"attribute": "a", "operator": "gt"}}, "$.not.value"),
        (cond("consent_state", "equals", "OPTIN"), "$.value"),
        (cond("consent_state", "gt", "A"), "$.operator"),
        (cond("country", "equals", "Sri Lanka"), "$.value"),
        (cond("country", "in", ["LK", "lk"]), "$.value"),
        (cond("created_at", "gt", "yesterday"), "$.value"),
        (cond("created_at", "equals", "2026-01-01"), "$.operator"),
        (cond("timezone", "gt", "A"), "$.operator"),
    ],
)
def test_a_bad_definition_names_the_path_of_the_bad_node(
    definition: Any, path: str
) -> None:
    with pytest.raises(SegmentDefinitionError) as error:
        validate_definition(definition)
    assert error.value.path == path, error.value.reason


def test_depth_is_limited_to_five_levels() -> None:
    node: dict[str, Any] = cond("a", "exists")
    for _ in range(4):
        node = {"not": node}
    validate_definition(node)
    with pytest.raises(SegmentDefinitionError) as error:
        validate_definition({"logic": "AND", "conditions": [node]})
    assert error.value.path == "$.conditions[0].not.not.not.not"


def test_conditions_are_limited_to_fifty() -> None:
    group = {"logic": "OR", "conditions": [cond("a", "exists")] * MAX_CONDITIONS}
    validate_definition(group)
    group["conditions"] = [*group["conditions"], cond("a", "exists")]
    with pytest.raises(SegmentDefinitionError) as error:
        validate_definition(group)
    assert error.value.path == f"$.conditions[{MAX_CONDITIONS}]"


@pytest.mark.parametrize("operator", ["equals", "gte", "starts_with", "in"])
def test_string_values_are_limited_to_what_firestore_can_query(operator: str) -> None:
    def definition(text: str) -> dict[str, Any]:
        value: Any = [text] if operator == "in" else text
        return cond("city", operator, value)

    validate_definition(definition("x" * MAX_VALUE_BYTES))
    with pytest.raises(SegmentDefinitionError) as error:
        # Bytes, not characters: Firestore's limit is on the UTF-8 encoding.
        validate_definition(definition("é" * (MAX_VALUE_BYTES // 2 + 1)))
    assert f"at most {MAX_VALUE_BYTES} bytes" in error.value.reason


def test_seed_system_form_is_valid() -> None:
    validate_definition(
        {
            "logic": "OR",
            "conditions": [
                cond("city", "equals", "Colombo"),
                {"not": cond("attributes.country", "equals", "Sri Lanka")},
            ],
        }
    )


def test_properties_definitions_have_no_builtin_fields() -> None:
    definition = cond("country", "equals", "Sri Lanka")
    with pytest.raises(SegmentDefinitionError):
        validate_definition(definition)
    validate_properties_definition(definition)


# ---------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("operator", "value", "attribute", "expected"),
    [
        ("equals", "Colombo", "Colombo", True),
        ("equals", "Colombo", "colombo", False),
        ("equals", 25, 25.0, True),
        ("equals", 25, "25", False),
        ("equals", 1, True, False),
        ("equals", True, True, True),
        ("not_equals", "Colombo", "Kandy", True),
        ("not_equals", "Colombo", "Colombo", False),
        ("in", ["Kandy", "Galle"], "Galle", True),
        ("in", ["Kandy", 1], True, False),
        ("not_in", ["Kandy", "Galle"], "Colombo", True),
        ("not_in", ["Kandy", "Galle"], "Kandy", False),
        ("contains", "lom", "Colombo", True),
        ("contains", "LOM", "Colombo", False),
        ("contains", "vip", ["new", "vip"], True),
        ("contains", 3, [1, 3.0], True),
        ("contains", "vip", 5, False),
        ("starts_with", "Col", "Colombo", True),
        ("starts_with", "col", "Colombo", False),
        ("starts_with", "1", 12, False),
        ("gt", 30, 31, True),
        ("gt", 30, 30, False),
        ("gte", 30, 30.0, True),
        ("lt", 30, 29.5, True),
        ("lte", 30, 31, False),
        ("gt", 30, "31", False),
        ("gt", "30", 31, False),
        ("gt", 0, True, False),
        ("gt", "M", "Nimal", True),
        ("lt", "M", "Amal", True),
        ("gt", "2026-01-01", "2026-02-01", True),
        ("gt", "2026-01-01", "2026-01-01T00:00:01+00:00", True),
        ("gt", "2026-01-01", "Nimal", False),
        ("gt", "Nimal", "2026-01-01", False),
        ("lte", "2026-01-01T05:30:00+05:30", "2026-01-01", True),
        ("before", "2026-01-01", "2025-12-31T23:59:59Z", True),
        ("before", "2026-01-01", "2026-01-01", False),
        ("after", "2026-01-01", datetime(2026, 1, 2, tzinfo=UTC), True),
        ("after", "2026-01-01", "not a date", False),
        ("after", "2026-01-01", 20260102, False),
        ("within_last_days", 7, "2026-11-20", True),
        ("within_last_days", 7, "2026-11-18", False),
        ("within_last_days", 7, "2026-12-01", False),
        ("within_last_days", 0.5, (NOW - timedelta(hours=11)).isoformat(), True),
        ("exists", None, "", True),
        ("exists", None, [], True),
        ("not_exists", None, "x", False),
    ],
)
def test_each_operator_compares_by_type(
    operator: str, value: Any, attribute: Any, expected: bool
) -> None:
    assert matches(cond("field", operator, value), make_user(field=attribute)) is (
        expected
    )


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", "x", False),
        ("in", ["x"], False),
        ("contains", "x", False),
        ("starts_with", "x", False),
        ("gt", 1, False),
        ("lte", 1, False),
        ("before", "2026-01-01", False),
        ("after", "2026-01-01", False),
        ("within_last_days", 3, False),
        ("exists", None, False),
        ("not_equals", "x", True),
        ("not_in", ["x"], True),
        ("not_exists", None, True),
    ],
)
def test_a_missing_attribute_fails_positive_conditions_and_passes_negations(
    operator: str, value: Any, expected: bool
) -> None:
    condition = cond("field", operator, value)
    assert matches(condition, make_user()) is expected
    assert matches(condition, make_user(field=None)) is expected
    assert matches({"not": condition}, make_user()) is not expected


def test_dotted_paths_read_nested_attributes() -> None:
    user = make_user(address={"city": "Kandy", "zip": None}, city="Colombo")
    assert matches(cond("address.city", "equals", "Kandy"), user)
    assert matches(cond("attributes.address.city", "equals", "Kandy"), user)
    assert matches(cond("address.zip", "not_exists"), user)
    assert not matches(cond("city.name", "exists"), user)


def test_builtin_fields() -> None:
    user = make_user(
        phone="+94771234567",
        consent=ConsentState.STOP,
        timezone="Asia/Colombo",
        created_at=NOW - timedelta(days=2),
        country="Sri Lanka",
    )
    assert matches(cond("consent_state", "equals", "STOP"), user)
    assert matches(cond("consent_state", "not_in", ["OPT_IN"]), user)
    assert matches(cond("country", "equals", "LK"), user)
    assert matches(cond("attributes.country", "equals", "Sri Lanka"), user)
    assert matches(cond("timezone", "starts_with", "Asia/"), user)
    assert matches(cond("created_at", "within_last_days", 3), user)
    assert not matches(cond("created_at", "within_last_days", 1), user)
    assert matches(cond("created_at", "after", "2026-11-01"), user)
    assert matches(cond("created_at", "lt", "2026-11-26"), user)
    assert matches(cond("timezone", "not_exists"), make_user())
    assert matches(cond("created_at", "not_exists"), make_user(created_at=None))


def test_logic_and_not() -> None:
    user = make_user(city="Colombo", age=40)
    colombo, older = cond("city", "equals", "Colombo"), cond("age", "gte", 50)
    assert not matches({"logic": "AND", "conditions": [colombo, older]}, user)
    assert matches({"logic": "OR", "conditions": [colombo, older]}, user)
    assert matches({"logic": "and", "conditions": [colombo, {"not": older}]}, user)


def test_properties_are_matched_by_path() -> None:
    where = {
        "logic": "AND",
        "conditions": [
            cond("total", "gte", 100),
            cond("country", "equals", "Sri Lanka"),
            cond("items.count", "gt", 1),
        ],
    }
    event = {"total": 120.5, "country": "Sri Lanka", "items": {"count": 2}}
    assert matches_properties(where, event, NOW)
    assert not matches_properties(where, {**event, "total": "120"}, NOW)


# ---------------------------------------------------------------- pushdown


def plan(definition: dict[str, Any]) -> tuple[Any, ...]:
    validate_definition(definition)
    query_plan = plan_query(definition, NOW)
    return query_plan.filters, query_plan.order_by


def test_an_attribute_equality_is_pushed_with_consent() -> None:
    filters, order = plan(
        {
            "logic": "AND",
            "conditions": [
                cond("city", "equals", "Colombo"),
                cond("age", "gt", 30),
                cond("consent_state", "equals", "OPT_IN"),
            ],
        }
    )
    assert set(filters) == {
        ("attributes.city", "==", "Colombo"),
        ("consent.state", "==", "OPT_IN"),
    }
    assert order == ()


def test_a_range_orders_by_its_field_and_merges_bounds() -> None:
    filters, order = plan(
        {
            "logic": "AND",
            "conditions": [cond("age", "gte", 20), cond("age", "lt", 30)],
        }
    )
    assert filters == (("attributes.age", ">=", 20), ("attributes.age", "<", 30))
    assert order == ("attributes.age",)


def test_starts_with_is_a_prefix_range() -> None:
    filters, _ = plan(cond("name", "starts_with", "Ab"))
    assert filters == (("attributes.name", ">=", "Ab"), ("attributes.name", "<", "Ac"))


def test_country_is_a_document_id_range() -> None:
    filters, order = plan(cond("country", "equals", "LK"))
    assert filters == (("__name__", ">=", "+94"), ("__name__", "<", "+94:"))
    assert order == ()


def test_created_at_ranges_push_down_as_timestamps() -> None:
    filters, order = plan(cond("created_at", "within_last_days", 2))
    assert filters == (
        ("created_at", ">=", NOW - timedelta(days=2)),
        ("created_at", "<=", NOW),
    )
    assert order == ("created_at",)


@pytest.mark.parametrize(
    "definition",
    [
        cond("city", "not_equals", "Colombo"),
        cond("city", "not_in", ["Colombo"]),
        cond("city", "not_exists"),
        cond("city", "exists"),
        cond("city", "contains", "lom"),
        cond("joined", "after", "2026-01-01"),
        cond("joined", "gt", "2026-01-01"),
        cond("city", "in", [f"c{i}" for i in range(31)]),
        {"not": cond("city", "equals", "Colombo")},
        {
            "logic": "OR",
            "conditions": [cond("a", "equals", 1), cond("b", "equals", 2)],
        },
    ],
)
def test_what_firestore_would_answer_differently_is_not_pushed(
    definition: dict[str, Any],
) -> None:
    assert plan(definition) == ((), ())
