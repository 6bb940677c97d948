"""docs/architecture.md §6: Firestore-backed evaluation equals in-memory evaluation.

Hypothesis generates users and definitions; each example writes its users to
a clean emulator database, evaluates with pushdown and cursor paging (small
pages, so cursors are exercised), and compares with a plain in-memory
evaluation of the same DSL over the same users.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local import emulators
from shared.audience.phones import normalize_phone
from shared.audience.segments import (
    SegmentDefinitionError,
    iter_segment_users,
    plan_query,
    user_matches,
    validate_definition,
)
from shared.store.users import Consent, ConsentState, User, user_doc, user_ref

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
PHONES = [
    normalize_phone(p)
    for p in (
        *(f"+1415555{n:04d}" for n in range(100, 110)),
        *(f"+9477123{n:04d}" for n in range(4560, 4570)),
        *(f"+44740012{n:04d}" for n in range(3450, 3455)),
        *(f"+15062345{n:03d}" for n in range(670, 673)),
    )
]
moments = st.integers(-400, 30).map(
    lambda days: NOW + timedelta(days=days, hours=days % 7)
)
iso_dates = moments.map(lambda m: m.date().isoformat()) | moments.map(
    lambda m: m.isoformat()
)
cities = st.sampled_from(["Colombo", "Kandy", "colombo", "Galle", "Ćolombo"])
numbers = st.integers(-5, 100) | st.floats(-5, 100, allow_nan=False)
scalars = cities | numbers | st.booleans() | st.sampled_from(["30", "", "2026-01-01"])
ATTRIBUTE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "city": cities | numbers,
    "age": numbers | st.booleans() | st.sampled_from(["30", "thirty"]),
    "tags": st.lists(cities | numbers, max_size=3),
    "joined": iso_dates | moments | st.just("someday"),
    "address": st.fixed_dictionaries({}, optional={"city": cities | st.none()}),
    "flag": st.booleans() | st.none(),
    "name": st.sampled_from(["Ann", "Anna", "Bob", "", "Ånn", "anna"]),
    "country": st.sampled_from(["Sri Lanka", "US", "LK"]),
}


@st.composite
def users(draw: st.DrawFn) -> list[User]:
    phones = draw(st.lists(st.sampled_from(PHONES), unique=True, max_size=14))
    return [
        User(
            phone=phone,
            attributes=draw(st.fixed_dictionaries({}, optional=ATTRIBUTE_VALUES)),
            timezone=draw(st.sampled_from([None, "Asia/Colombo", "America/Chicago"])),
            consent=Consent(state=draw(st.sampled_from(list(ConsentState)))),
            created_at=draw(st.none() | moments),
        )
        for phone in phones
    ]


FIELDS = [*ATTRIBUTE_VALUES, "address.city", "attributes.country", "absent"]


def values_for(operator: str) -> st.SearchStrategy[Any]:
    return {
        "in": st.lists(scalars, min_size=1, max_size=4),
        "not_in": st.lists(scalars, min_size=1, max_size=4),
        "starts_with": st.sampled_from(["A", "An", "Col", "Ć", "c"]),
        "before": iso_dates,
        "after": iso_dates,
        "within_last_days": st.sampled_from([1, 7, 30.5, 365]),
        "exists": st.none(),
        "not_exists": st.none(),
    }.get(operator, scalars | iso_dates)


@st.composite
def attribute_conditions(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(
        st.sampled_from(
            [
                "equals",
                "not_equals",
                "in",
                "not_in",
                "contains",
                "starts_with",
                "gt",
                "gte",
                "lt",
                "lte",
                "exists",
                "not_exists",
                "before",
                "after",
                "within_last_days",
            ]
        )
    )
    node = {"attribute": draw(st.sampled_from(FIELDS)), "operator": operator}
    value = draw(values_for(operator))
    return node if value is None else {**node, "value": value}


builtin_conditions = st.one_of(
    st.builds(
        lambda op, v: {"attribute": "consent_state", "operator": op, "value": v},
        st.sampled_from(["equals", "not_equals"]),
        st.sampled_from([s.value for s in ConsentState]),
    ),
    st.builds(
        lambda v: {"attribute": "consent_state", "operator": "in", "value": v},
        st.lists(st.sampled_from([s.value for s in ConsentState]), min_size=1),
    ),
    st.builds(
        lambda op, v: {"attribute": "country", "operator": op, "value": v},
        st.sampled_from(["equals", "not_equals"]),
        st.sampled_from(["US", "LK", "GB", "CA"]),
    ),
    st.builds(
        lambda op, v: {"attribute": "created_at", "operator": op, "value": v},
        st.sampled_from(["before", "after", "gt", "lte"]),
        iso_dates,
    ),
    st.builds(
        lambda v: {
            "attribute": "created_at",
            "operator": "within_last_days",
            "value": v,
        },
        st.sampled_from([1, 10, 100]),
    ),
    st.builds(
        lambda op, v: {"attribute": "timezone", "operator": op, "value": v},
        st.sampled_from(["equals", "starts_with", "not_equals"]),
        st.sampled_from(["Asia/Colombo", "America/"]),
    ),
)


def definitions() -> st.SearchStrategy[dict[str, Any]]:
    leaves = attribute_conditions() | builtin_conditions
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.builds(
                lambda logic, conditions: {"logic": logic, "conditions": conditions},
                st.sampled_from(["AND", "OR"]),
                st.lists(children, min_size=1, max_size=3),
            ),
            st.builds(lambda child: {"not": child}, children),
        ),
        max_leaves=6,
    )


def is_valid(definition: dict[str, Any]) -> bool:
    try:
        validate_definition(definition)
    except SegmentDefinitionError:
        return False
    return True


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    population=users(),
    definition=definitions().filter(is_valid),
    page_size=st.integers(1, 6),
)
def test_firestore_evaluation_equals_in_memory_evaluation(
    db: Any,
    firestore_host: str,
    population: list[User],
    definition: dict[str, Any],
    page_size: int,
) -> None:
    emulators.reset_firestore(firestore_host, db.project)
    batch = db.batch()
    for user in population:
        batch.set(user_ref(db, user.phone), user_doc(user))
    batch.commit()

    from_firestore = [
        user.phone for user in iter_segment_users(db, definition, NOW, page_size)
    ]
    in_memory = [u.phone for u in population if user_matches(definition, u, NOW)]

    assert sorted(from_firestore) == sorted(in_memory), plan_query(definition, NOW)
    assert len(set(from_firestore)) == len(from_firestore)


def test_pushdown_reads_only_candidates(db: Any) -> None:
    from shared.platform.firestore import operations

    batch = db.batch()
    for index, phone in enumerate(PHONES):
        city = "Colombo" if index % 5 == 0 else "Kandy"
        user = User(phone=phone, attributes={"city": city, "age": index})
        batch.set(user_ref(db, phone), user_doc(user))
    batch.commit()
    definition = {
        "logic": "AND",
        "conditions": [
            {"attribute": "city", "operator": "equals", "value": "Colombo"},
            {"attribute": "age", "operator": "gt", "value": 9},
        ],
    }
    before = operations.snapshot().get("reads", 0)
    matched = list(iter_segment_users(db, definition, NOW, page_size=100))
    reads = operations.snapshot().get("reads", 0) - before
    colombo = [index for index in range(len(PHONES)) if index % 5 == 0]
    assert sorted(u.attributes["age"] for u in matched) == [i for i in colombo if i > 9]
    assert reads == len(colombo)
