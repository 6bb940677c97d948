"""The campaign state machines as data: every legal and every illegal move."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from shared.campaigns.lifecycle import IllegalTransition, next_status
from shared.campaigns.transitions import (
    BROADCAST_TRANSITIONS,
    TRIGGERED_TRANSITIONS,
    CampaignAction,
    transitions_for,
)
from shared.store.campaigns import FINAL_CAMPAIGN_STATUSES, Campaign, CampaignStatus

A = CampaignAction
S = CampaignStatus

BROADCAST_STATUSES = [s for s in S if s is not S.ACTIVE]
TRIGGERED_STATUSES = [S.DRAFT, S.ACTIVE, S.PAUSED, S.CANCELLED]


def campaign(
    status: CampaignStatus, *, triggered: bool = False, **fields: Any
) -> Campaign:
    return Campaign(
        id="c1",
        name="Spring sale",
        template_id="t1",
        segment_id=None if triggered else "s1",
        trigger={"event": "order_shipped"} if triggered else None,
        status=status,
        **fields,
    )


def _name(case: tuple[CampaignAction, CampaignStatus]) -> str:
    return f"{case[0].value}-{case[1].value}"


# --- broadcast campaigns -------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "current", "target"),
    [(a, s, t) for (a, s), t in BROADCAST_TRANSITIONS.items()],
    ids=lambda v: getattr(v, "value", str(v)),
)
def test_every_legal_broadcast_transition(
    action: CampaignAction, current: CampaignStatus, target: CampaignStatus
) -> None:
    assert next_status(campaign(current), action) is target


BROADCAST_ILLEGAL = [
    (a, s)
    for a, s in itertools.product(A, BROADCAST_STATUSES)
    if (a, s) not in BROADCAST_TRANSITIONS
]


@pytest.mark.parametrize(
    ("action", "current"), BROADCAST_ILLEGAL, ids=map(_name, BROADCAST_ILLEGAL)
)
def test_every_illegal_broadcast_transition_names_the_current_status(
    action: CampaignAction, current: CampaignStatus
) -> None:
    with pytest.raises(IllegalTransition) as raised:
        next_status(campaign(current), action)
    assert raised.value.current is current
    assert raised.value.action is action
    assert current.value in str(raised.value)


def test_the_broadcast_table_is_the_designed_machine() -> None:
    assert BROADCAST_TRANSITIONS == {
        (A.SCHEDULE, S.DRAFT): S.SCHEDULED,
        (A.START, S.DRAFT): S.RUNNING,
        (A.START, S.SCHEDULED): S.RUNNING,
        (A.PAUSE, S.SCHEDULED): S.PAUSED,
        (A.PAUSE, S.RUNNING): S.PAUSED,
        (A.RESUME, S.PAUSED): S.RUNNING,
        (A.CANCEL, S.DRAFT): S.CANCELLED,
        (A.CANCEL, S.SCHEDULED): S.CANCELLED,
        (A.CANCEL, S.RUNNING): S.CANCELLED,
        (A.CANCEL, S.PAUSED): S.CANCELLED,
        (A.COMPLETE, S.RUNNING): S.COMPLETED,
        (A.FAIL, S.SCHEDULED): S.FAILED,
        (A.FAIL, S.RUNNING): S.FAILED,
        (A.FAIL, S.PAUSED): S.FAILED,
    }


@pytest.mark.parametrize("paused_from", [S.SCHEDULED, S.RUNNING])
def test_resume_returns_to_the_status_paused_from(paused_from: S) -> None:
    paused = campaign(S.PAUSED, paused_from=paused_from)
    assert next_status(paused, A.RESUME) is paused_from


def test_resume_without_paused_from_falls_back_to_the_table() -> None:
    assert next_status(campaign(S.PAUSED), A.RESUME) is S.RUNNING


def test_paused_from_does_not_make_an_illegal_resume_legal() -> None:
    running = campaign(S.RUNNING, paused_from=S.SCHEDULED)
    with pytest.raises(IllegalTransition) as raised:
        next_status(running, A.RESUME)
    assert raised.value.current is S.RUNNING


@pytest.mark.parametrize("status", sorted(FINAL_CAMPAIGN_STATUSES))
@pytest.mark.parametrize("triggered", [False, True], ids=["broadcast", "triggered"])
def test_final_statuses_allow_nothing(status: S, triggered: bool) -> None:
    for action in A:
        with pytest.raises(IllegalTransition):
            next_status(campaign(status, triggered=triggered), action)


@pytest.mark.parametrize(
    "status", [s for s in BROADCAST_STATUSES if s not in FINAL_CAMPAIGN_STATUSES]
)
def test_a_broadcast_campaign_can_be_cancelled_from_any_non_final_status(
    status: S,
) -> None:
    assert next_status(campaign(status), A.CANCEL) is S.CANCELLED


# --- triggered campaigns -------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "current", "target"),
    [(a, s, t) for (a, s), t in TRIGGERED_TRANSITIONS.items()],
    ids=lambda v: getattr(v, "value", str(v)),
)
def test_every_legal_triggered_transition(
    action: CampaignAction, current: CampaignStatus, target: CampaignStatus
) -> None:
    assert next_status(campaign(current, triggered=True), action) is target


TRIGGERED_ILLEGAL = [
    (a, s)
    for a, s in itertools.product(A, TRIGGERED_STATUSES)
    if (a, s) not in TRIGGERED_TRANSITIONS
]


@pytest.mark.parametrize(
    ("action", "current"), TRIGGERED_ILLEGAL, ids=map(_name, TRIGGERED_ILLEGAL)
)
def test_every_illegal_triggered_transition_names_the_current_status(
    action: CampaignAction, current: CampaignStatus
) -> None:
    with pytest.raises(IllegalTransition) as raised:
        next_status(campaign(current, triggered=True), action)
    assert raised.value.current is current


def test_the_triggered_table_is_the_designed_machine() -> None:
    assert TRIGGERED_TRANSITIONS == {
        (A.ACTIVATE, S.DRAFT): S.ACTIVE,
        (A.PAUSE, S.ACTIVE): S.PAUSED,
        (A.RESUME, S.PAUSED): S.ACTIVE,
        (A.CANCEL, S.DRAFT): S.CANCELLED,
        (A.CANCEL, S.ACTIVE): S.CANCELLED,
        (A.CANCEL, S.PAUSED): S.CANCELLED,
    }


def test_a_triggered_campaign_resumes_to_active() -> None:
    paused = campaign(S.PAUSED, triggered=True, paused_from=S.ACTIVE)
    assert next_status(paused, A.RESUME) is S.ACTIVE
    assert next_status(campaign(S.PAUSED, triggered=True), A.RESUME) is S.ACTIVE


@pytest.mark.parametrize("action", [A.START, A.SCHEDULE, A.COMPLETE, A.FAIL])
def test_a_triggered_campaign_never_starts_schedules_or_completes(
    action: CampaignAction,
) -> None:
    for status in TRIGGERED_STATUSES:
        with pytest.raises(IllegalTransition):
            next_status(campaign(status, triggered=True), action)


def test_a_broadcast_campaign_cannot_be_activated() -> None:
    with pytest.raises(IllegalTransition) as raised:
        next_status(campaign(S.DRAFT), A.ACTIVATE)
    assert raised.value.current is S.DRAFT


def test_the_table_is_chosen_by_the_trigger() -> None:
    assert transitions_for(campaign(S.DRAFT)) is BROADCAST_TRANSITIONS
    assert transitions_for(campaign(S.DRAFT, triggered=True)) is TRIGGERED_TRANSITIONS
