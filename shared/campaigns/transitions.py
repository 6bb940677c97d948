"""The campaign lifecycle state machine, as data."""

from __future__ import annotations

from enum import StrEnum

from shared.store.campaigns import Campaign, CampaignStatus


class CampaignAction(StrEnum):
    SCHEDULE = "schedule"
    START = "start"
    ACTIVATE = "activate"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    COMPLETE = "complete"
    FAIL = "fail"


S = CampaignStatus
A = CampaignAction
# (action, from) → to. Anything else is an illegal transition (HTTP 409).
BROADCAST_TRANSITIONS: dict[tuple[CampaignAction, CampaignStatus], CampaignStatus] = {
    (A.SCHEDULE, S.DRAFT): S.SCHEDULED,
    (A.START, S.DRAFT): S.RUNNING,
    (A.START, S.SCHEDULED): S.RUNNING,
    (A.PAUSE, S.SCHEDULED): S.PAUSED,
    (A.PAUSE, S.RUNNING): S.PAUSED,
    # Resume goes back to the status paused from (`paused_from`).
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
TRIGGERED_TRANSITIONS: dict[tuple[CampaignAction, CampaignStatus], CampaignStatus] = {
    (A.ACTIVATE, S.DRAFT): S.ACTIVE,
    (A.PAUSE, S.ACTIVE): S.PAUSED,
    (A.RESUME, S.PAUSED): S.ACTIVE,
    (A.CANCEL, S.DRAFT): S.CANCELLED,
    (A.CANCEL, S.ACTIVE): S.CANCELLED,
    (A.CANCEL, S.PAUSED): S.CANCELLED,
}
EDITABLE_STATUSES = frozenset({S.DRAFT, S.SCHEDULED})


def transitions_for(
    campaign: Campaign,
) -> dict[tuple[CampaignAction, CampaignStatus], S]:
    return TRIGGERED_TRANSITIONS if campaign.is_triggered else BROADCAST_TRANSITIONS
