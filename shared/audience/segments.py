"""Segment DSL: validation, in-memory matching and streaming evaluation.

A definition is a tree of nodes (docs/architecture.md §6):
    {"attribute": "city", "operator": "equals", "value": "Colombo"}
    {"logic": "AND" | "OR", "conditions": [node, …]}
    {"not": node}
at most MAX_DEPTH levels deep and with at most MAX_CONDITIONS conditions.

Fields. `consent_state`, `country` (ISO region of the phone), `created_at` and
`timezone` are the user's built-ins; any other name is a dotted path into
`attributes` (`address.city`). `attributes.<path>` names an attribute
explicitly, e.g. `attributes.country` for a country attribute. For event
properties (`matches_properties`) every name is a path into the properties.

Values are compared by type, never coerced:
- equals/in compare strings with strings, numbers with numbers (25 == 25.0)
  and booleans with booleans;
- gt/gte/lt/lte compare numbers with numbers, dates with dates (ISO date or
  datetime strings and timestamps; a date alone is midnight UTC, a naive time
  is UTC) and other strings with strings; anything else is a mismatch;
- before/after take an ISO date or datetime; within_last_days N matches dates
  in [now - N days, now];
- contains is a substring test on strings, or membership in a list;
  starts_with is a prefix test on strings.

Missing fields. A field that is absent or null is missing. Every positive
operator is false on a missing field; the negations are their exact
complements: not_equals ≡ not equals, not_in ≡ not in, not_exists ≡ not
exists, so "city not_equals Colombo" includes users without a city, as
{"not": {"attribute": "city", "operator": "equals", …}} does.

Evaluation (`iter_segment_users`) pushes one selective conjunct (equality, in,
or a range on one field; plus consent_state with an equality) into the
Firestore query, pages with cursors, and checks every user it reads with the
same in-memory matcher. A pushed filter only ever narrows to a superset of the
matches, so the result is exactly the in-memory one.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import phonenumbers

from shared.audience.consent import may_receive
from shared.audience.phones import phone_region
from shared.platform.firestore import Database
from shared.store.users import (
    DOCUMENT_ID,
    ConsentState,
    Filter,
    User,
    attribute_field,
    scan_users,
)

MAX_DEPTH = 5
MAX_CONDITIONS = 50
MAX_LIST_VALUES = 500
MAX_DAYS = 36_500
# Firestore refuses to query on a string longer than it indexes (1,500 bytes).
MAX_VALUE_BYTES = 1_500
# Results stream, so a page costs no memory; fewer, longer queries matter on
# the emulator, whose every query costs time in proportion to the collection.
SCAN_PAGE_SIZE = 10_000
# Firestore's limit for the values of one `in` filter.
FIRESTORE_IN_LIMIT = 30
ATTRIBUTES_PREFIX = "attributes."


class SegmentDefinitionError(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
Resolver = Callable[[str], Any]

# ---------------------------------------------------------------- values

_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?"
)


@lru_cache(maxsize=4096)
def parse_date(text: str) -> datetime | None:
    """An ISO date or datetime as an aware UTC datetime, else None."""
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        return parse_date(value)
    return None


def _type_of(value: Any) -> str | None:
    """The comparison type of a value: bool, number, string or date."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime | date):
        return "date"
    return None


def _same(actual: Any, expected: Any) -> bool:
    kind = _type_of(actual)
    return kind is not None and kind == _type_of(expected) and actual == expected


def _order_key(value: Any) -> tuple[str, Any] | None:
    """What an ordering compares: numbers, dates, or plain strings."""
    kind = _type_of(value)
    if kind == "number":
        return ("number", value)
    moment = _as_datetime(value) if kind in ("string", "date") else None
    if moment is not None:
        return ("date", moment)
    return ("string", value) if kind == "string" else None


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def test(actual: Any, expected: Any, now: datetime) -> bool:
        left, right = _order_key(actual), _order_key(expected)
        return (
            left is not None
            and right is not None
            and left[0] == right[0]
            and compare(left[1], right[1])
        )

    return test


def _dated(compare: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def test(actual: Any, expected: Any, now: datetime) -> bool:
        moment, bound = _as_datetime(actual), parse_date(expected)
        return moment is not None and bound is not None and compare(moment, bound)

    return test


def _contains(actual: Any, expected: Any, now: datetime) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(_same(item, expected) for item in actual)
    return False


def _within_last_days(actual: Any, expected: Any, now: datetime) -> bool:
    moment = _as_datetime(actual)
    return moment is not None and now - timedelta(days=expected) <= moment <= now


# Positive operators: (actual, expected, now) → bool; never called on MISSING.
TESTS: dict[str, Callable[[Any, Any, datetime], bool]] = {
    "equals": lambda actual, expected, now: _same(actual, expected),
    "in": lambda actual, expected, now: any(_same(actual, v) for v in expected),
    "contains": _contains,
    "starts_with": lambda actual, expected, now: (
        isinstance(actual, str) and actual.startswith(expected)
    ),
    "gt": _ordered(operator.gt),
    "gte": _ordered(operator.ge),
    "lt": _ordered(operator.lt),
    "lte": _ordered(operator.le),
    "exists": lambda actual, expected, now: True,
    "before": _dated(operator.lt),
    "after": _dated(operator.gt),
    "within_last_days": _within_last_days,
}
# Each negation is the exact complement of a positive operator.
NEGATIONS = {"not_equals": "equals", "not_in": "in", "not_exists": "exists"}
OPERATORS = frozenset({*TESTS, *NEGATIONS})
ORDERINGS = frozenset({"gt", "gte", "lt", "lte"})
LOGICS: dict[str, Callable[[Iterator[bool]], bool]] = {"AND": all, "OR": any}

# ---------------------------------------------------------------- matching


def _lookup(data: Mapping[str, Any], parts: list[str]) -> Any:
    value: Any = data
    for part in parts:
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return MISSING if value is None else value


def _country(user: User) -> str | None:
    try:
        return phone_region(user.phone)
    except phonenumbers.NumberParseException:
        return None


BUILTIN_VALUES: dict[str, Callable[[User], Any]] = {
    "consent_state": lambda user: user.consent.state.value,
    "country": _country,
    "created_at": lambda user: user.created_at,
    "timezone": lambda user: user.timezone,
}


def attribute_parts(path: str) -> list[str]:
    """The attribute path of a field name, without the `attributes.` prefix."""
    if path.startswith(ATTRIBUTES_PREFIX):
        path = path[len(ATTRIBUTES_PREFIX) :]
    return path.split(".")


def user_resolver(user: User) -> Resolver:
    def resolve(path: str) -> Any:
        builtin = BUILTIN_VALUES.get(path)
        if builtin is not None:
            value = builtin(user)
            return MISSING if value is None else value
        return _lookup(user.attributes, attribute_parts(path))

    return resolve


def properties_resolver(properties: Mapping[str, Any]) -> Resolver:
    return lambda path: _lookup(properties, path.split("."))


def evaluate(node: Mapping[str, Any], resolve: Resolver, now: datetime) -> bool:
    """The DSL's meaning; `resolve` maps a field name to a value or MISSING."""
    if "not" in node:
        return not evaluate(node["not"], resolve, now)
    if "conditions" in node:
        combine = LOGICS[str(node["logic"]).upper()]
        return combine(evaluate(child, resolve, now) for child in node["conditions"])
    name = node["operator"]
    positive = NEGATIONS.get(name, name)
    actual = resolve(node["attribute"])
    result = actual is not MISSING and TESTS[positive](actual, node.get("value"), now)
    return not result if name in NEGATIONS else result


def user_matches(definition: Mapping[str, Any], user: User, now: datetime) -> bool:
    return evaluate(definition, user_resolver(user), _utc(now))


def matches_properties(
    definition: Mapping[str, Any], properties: Mapping[str, Any], now: datetime
) -> bool:
    """A triggered campaign's `where`: attribute paths read the event properties."""
    return evaluate(definition, properties_resolver(properties), _utc(now))


def _utc(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


# ---------------------------------------------------------------- validation


def _finite_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _too_long(value: Any) -> bool:
    return isinstance(value, str) and len(value.encode()) > MAX_VALUE_BYTES


TOO_LONG = f"must be at most {MAX_VALUE_BYTES} bytes long"


def _scalar(value: Any) -> str | None:
    if _too_long(value):
        return TOO_LONG
    if isinstance(value, str | bool) or _finite_number(value):
        return None
    return "must be a string, a finite number or a boolean"


def _scalar_list(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list"
    if len(value) > MAX_LIST_VALUES:
        return f"may hold at most {MAX_LIST_VALUES} values"
    for index, item in enumerate(value):
        reason = _scalar(item)
        if reason:
            return f"item {index} {reason}"
    return None


def _prefix(value: Any) -> str | None:
    if _too_long(value):
        return TOO_LONG
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _orderable(value: Any) -> str | None:
    if _too_long(value):
        return TOO_LONG
    if isinstance(value, str) or _finite_number(value):
        return None
    return "must be a number or a string (ISO dates compare as dates)"


def _no_value(value: Any) -> str | None:
    return None if value is MISSING or value is None else "takes no value"


def _iso_date(value: Any) -> str | None:
    if isinstance(value, str) and parse_date(value) is not None:
        return None
    return "must be an ISO date or datetime, e.g. 2026-01-31 or 2026-01-31T09:00Z"


def _days(value: Any) -> str | None:
    if _finite_number(value) and 0 < value <= MAX_DAYS:
        return None
    return f"must be a number of days in (0, {MAX_DAYS}]"


VALUE_RULES: dict[str, Callable[[Any], str | None]] = {
    "equals": _scalar,
    "not_equals": _scalar,
    "in": _scalar_list,
    "not_in": _scalar_list,
    "contains": _scalar,
    "starts_with": _prefix,
    "gt": _orderable,
    "gte": _orderable,
    "lt": _orderable,
    "lte": _orderable,
    "exists": _no_value,
    "not_exists": _no_value,
    "before": _iso_date,
    "after": _iso_date,
    "within_last_days": _days,
}


def _each(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """Apply a single-value check to a value or to each value of a list."""

    def run(value: Any) -> str | None:
        values = value if isinstance(value, list) else [value]
        return next((r for r in map(check, values) if r), None)

    return run


def _consent_value(value: Any) -> str | None:
    if value in ConsentState.__members__:
        return None
    return f"consent_state is one of {', '.join(ConsentState)}"


def _country_value(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[A-Z]{2}", value):
        return None
    return (
        "country is the phone's ISO 3166 region, e.g. 'LK'; "
        "use 'attributes.country' for a country attribute"
    )


@dataclass(frozen=True)
class BuiltinField:
    operators: frozenset[str]
    check_value: Callable[[Any], str | None] | None = None
    # The operators whose value `check_value` checks (None: all of them).
    checked: frozenset[str] | None = None


_EQUALITY = frozenset({"equals", "not_equals", "in", "not_in"})
_PRESENCE = frozenset({"exists", "not_exists"})
BUILTIN_FIELDS: dict[str, BuiltinField] = {
    "consent_state": BuiltinField(_EQUALITY, _each(_consent_value)),
    "country": BuiltinField(_EQUALITY | _PRESENCE, _each(_country_value)),
    "created_at": BuiltinField(
        ORDERINGS | _PRESENCE | {"before", "after", "within_last_days"},
        _iso_date,
        checked=ORDERINGS,
    ),
    "timezone": BuiltinField(
        _EQUALITY | _PRESENCE | {"contains", "starts_with"}, _each(_scalar)
    ),
}

NODE_KEYS = {
    "condition": frozenset({"attribute", "operator", "value"}),
    "group": frozenset({"logic", "conditions"}),
    "not": frozenset({"not"}),
}


@dataclass
class _Validation:
    builtins: Mapping[str, BuiltinField]
    conditions: int = 0


def validate_definition(definition: Any) -> None:
    """Raise SegmentDefinitionError naming the JSON path of the first bad node."""
    _validate_node(definition, "$", 1, _Validation(BUILTIN_FIELDS))


def validate_properties_definition(definition: Any) -> None:
    """Validate a triggered campaign's `where`: no built-in fields there."""
    _validate_node(definition, "$", 1, _Validation({}))


def _node_kind(node: Mapping[str, Any], path: str) -> str:
    if "attribute" in node or "operator" in node:
        kind = "condition"
    elif "logic" in node or "conditions" in node:
        kind = "group"
    elif "not" in node:
        kind = "not"
    else:
        raise SegmentDefinitionError(
            path,
            "expected a condition {attribute, operator, value}, "
            "a group {logic, conditions} or {not}",
        )
    unknown = next((key for key in node if key not in NODE_KEYS[kind]), None)
    if unknown is not None:
        raise SegmentDefinitionError(f"{path}.{unknown}", f"unknown key in a {kind}")
    return kind


def _validate_node(node: Any, path: str, depth: int, state: _Validation) -> None:
    if depth > MAX_DEPTH:
        raise SegmentDefinitionError(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, Mapping):
        raise SegmentDefinitionError(path, "a condition must be an object")
    kind = _node_kind(node, path)
    if kind == "not":
        _validate_node(node["not"], f"{path}.not", depth + 1, state)
    elif kind == "group":
        _validate_group(node, path, depth, state)
    else:
        _validate_condition(node, path, state)


def _validate_group(
    node: Mapping[str, Any], path: str, depth: int, state: _Validation
) -> None:
    logic = node.get("logic")
    if not isinstance(logic, str) or logic.upper() not in LOGICS:
        raise SegmentDefinitionError(f"{path}.logic", "logic must be AND or OR")
    conditions = node.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        raise SegmentDefinitionError(
            f"{path}.conditions", "conditions must be a non-empty list"
        )
    for index, child in enumerate(conditions):
        _validate_node(child, f"{path}.conditions[{index}]", depth + 1, state)


def _validate_field(name: Any, path: str) -> None:
    if not isinstance(name, str) or not name:
        raise SegmentDefinitionError(path, "attribute must be a non-empty string")
    if any(not part for part in attribute_parts(name)) or name.strip() != name:
        raise SegmentDefinitionError(path, f"{name!r} is not a dotted attribute path")


def _validate_condition(node: Mapping[str, Any], path: str, state: _Validation) -> None:
    state.conditions += 1
    if state.conditions > MAX_CONDITIONS:
        raise SegmentDefinitionError(path, f"more than {MAX_CONDITIONS} conditions")
    name = node.get("attribute")
    _validate_field(name, f"{path}.attribute")
    op = node.get("operator")
    if op not in OPERATORS:
        raise SegmentDefinitionError(
            f"{path}.operator",
            f"unknown operator {op!r}; use one of {', '.join(sorted(OPERATORS))}",
        )
    value = node.get("value", MISSING)
    if value is MISSING and op not in _PRESENCE:
        raise SegmentDefinitionError(f"{path}.value", f"{op} needs a value")
    reason = VALUE_RULES[op](value)
    if reason:
        raise SegmentDefinitionError(f"{path}.value", f"{op}: value {reason}")
    builtin = state.builtins.get(str(name))
    if builtin is not None:
        _validate_builtin(builtin, str(name), str(op), value, path)


def _validate_builtin(
    builtin: BuiltinField, name: str, op: str, value: Any, path: str
) -> None:
    if op not in builtin.operators:
        raise SegmentDefinitionError(
            f"{path}.operator", f"{name} does not support {op}"
        )
    checked = op not in _PRESENCE and (builtin.checked is None or op in builtin.checked)
    reason = builtin.check_value(value) if builtin.check_value and checked else None
    if reason:
        raise SegmentDefinitionError(f"{path}.value", reason)


# ---------------------------------------------------------------- pushdown

BUILTIN_FIELD_PATHS = {
    "consent_state": "consent.state",
    "timezone": "timezone",
    "created_at": "created_at",
}
RANGE_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# Lower ranks are pushed first: attribute equality is usually the most
# selective, consent_state the least (most users are OPT_IN).
RANK_EQUALS, RANK_IN, RANK_RANGE, RANK_COUNTRY, RANK_CONSENT, RANK_CONSENT_IN = range(6)


@dataclass(frozen=True)
class Candidate:
    rank: int
    filters: tuple[Filter, ...]
    # A range needs the query ordered by its field (None: the document id).
    range_field: str | None = None
    value_type: str | None = None


@dataclass(frozen=True)
class QueryPlan:
    """What the Firestore query filters on; the matcher checks the rest."""

    filters: tuple[Filter, ...] = ()
    order_by: tuple[str, ...] = field(default=())


def _conjuncts(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Conditions that every match satisfies (members of top-level ANDs)."""
    conditions = node.get("conditions")
    if isinstance(conditions, list):
        if str(node.get("logic")).upper() == "AND" or len(conditions) == 1:
            for child in conditions:
                yield from _conjuncts(child)
    elif "operator" in node:
        yield node


def _field_path(name: str) -> str | None:
    if name in BUILTIN_FIELD_PATHS:
        return BUILTIN_FIELD_PATHS[name]
    if name in BUILTIN_VALUES:
        return None
    return attribute_field(*attribute_parts(name))


def _distinct(values: list[Any]) -> list[Any]:
    keyed = {(_type_of(value), value): value for value in values}
    return list(keyed.values())


def _next_prefix(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`."""
    following = ord(prefix[-1]) + 1
    if following > 0x10FFFF or 0xD800 <= following <= 0xDFFF:
        return None
    return prefix[:-1] + chr(following)


def _equality_candidate(name: str, op: str, value: Any) -> Candidate | None:
    path = _field_path(name)
    if path is None:
        return _country_candidate(value) if name == "country" else None
    consent = name == "consent_state"
    if op == "equals":
        rank = RANK_CONSENT if consent else RANK_EQUALS
        return Candidate(rank, ((path, "==", value),))
    values = _distinct(value)
    if len(values) > FIRESTORE_IN_LIMIT:
        return None
    rank = RANK_CONSENT_IN if consent else RANK_IN
    return Candidate(rank, ((path, "in", values),))


def _country_candidate(value: Any) -> Candidate | None:
    """Numbers of a region share its calling code: a document id range."""
    code = phonenumbers.country_code_for_region(value) if isinstance(value, str) else 0
    if not code:
        return None
    # ':' sorts right after '9', so the range holds every "+<code><digits>".
    low, high = f"+{code}", f"+{code}:"
    return Candidate(RANK_COUNTRY, ((DOCUMENT_ID, ">=", low), (DOCUMENT_ID, "<", high)))


def _range_candidate(name: str, op: str, value: Any, now: datetime) -> Candidate | None:
    path = _field_path(name)
    if path is None:
        return None
    if name == "created_at":
        return _created_at_candidate(op, value, now)
    if op == "starts_with":
        high = _next_prefix(value)
        if high is None:
            return None
        filters = ((path, ">=", value), (path, "<", high))
        return Candidate(RANK_RANGE, filters, path, "string")
    # Attribute dates may be strings in any ISO form, which do not sort as
    # dates; only numbers and plain strings keep Firestore's order.
    if op not in RANGE_OPERATORS or (isinstance(value, str) and parse_date(value)):
        return None
    kind = _type_of(value)
    return Candidate(RANK_RANGE, ((path, RANGE_OPERATORS[op], value),), path, kind)


def _created_at_candidate(op: str, value: Any, now: datetime) -> Candidate | None:
    """`created_at` is always a timestamp, so date ranges push down."""
    path = "created_at"
    if op == "within_last_days":
        filters: tuple[Filter, ...] = (
            (path, ">=", now - timedelta(days=value)),
            (path, "<=", now),
        )
        return Candidate(RANK_RANGE, filters, path, "date")
    symbol = {"before": "<", "after": ">", **RANGE_OPERATORS}.get(op)
    if symbol is None:
        return None
    return Candidate(RANK_RANGE, ((path, symbol, parse_date(value)),), path, "date")


def _candidate(node: Mapping[str, Any], now: datetime) -> Candidate | None:
    name, op, value = node["attribute"], node["operator"], node.get("value")
    if op in ("equals", "in"):
        return _equality_candidate(name, op, value)
    if op in RANGE_OPERATORS or op in {
        "starts_with",
        "before",
        "after",
        "within_last_days",
    }:
        return _range_candidate(name, op, value, now)
    return None


def plan_query(definition: Mapping[str, Any], now: datetime) -> QueryPlan:
    """Choose the conjunct(s) to push into the Firestore query.

    No composite index is needed: one field's `in` or range, or equalities
    only (Firestore serves those by merging single-field indexes).
    """
    found = [_candidate(node, _utc(now)) for node in _conjuncts(definition)]
    candidates = [c for c in found if c is not None]
    if not candidates:
        return QueryPlan()
    best = min(candidates, key=lambda c: c.rank)
    if best.range_field is not None:
        same_field = [
            c
            for c in candidates
            if (c.range_field, c.value_type) == (best.range_field, best.value_type)
        ]
        filters = tuple(f for c in same_field for f in c.filters)
        return QueryPlan(filters, (best.range_field,))
    if best.rank != RANK_EQUALS:
        return QueryPlan(best.filters)
    # Equalities on several fields combine without a composite index.
    equalities = {
        c.filters[0][0]: c.filters[0]
        for c in reversed(candidates)
        if c.rank in (RANK_EQUALS, RANK_CONSENT)
    }
    return QueryPlan(tuple(equalities.values()))


# ---------------------------------------------------------------- evaluation


def iter_segment_users(
    db: Database,
    definition: Mapping[str, Any],
    now: datetime,
    page_size: int = SCAN_PAGE_SIZE,
) -> Iterator[User]:
    """Yield matching users, paging with cursors so memory stays flat."""
    validate_definition(definition)
    plan = plan_query(definition, now)
    for user in scan_users(db, plan.filters, plan.order_by, page_size):
        if user_matches(definition, user, now):
            yield user


@dataclass
class SegmentPreview:
    count: int = 0
    eligible: int = 0
    sample: list[User] = field(default_factory=list)


def preview_segment(
    db: Database,
    definition: Mapping[str, Any],
    now: datetime,
    sample_size: int = 10,
) -> SegmentPreview:
    """Count the segment and its OPT_IN members; keep the first few as a sample."""
    preview = SegmentPreview()
    for user in iter_segment_users(db, definition, now):
        preview.count += 1
        if may_receive(user.consent.state):
            preview.eligible += 1
        if len(preview.sample) < sample_size:
            preview.sample.append(user)
    return preview
