"""Campaign state transitions, each in one Firestore transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.campaigns.transitions import CampaignAction, transitions_for
from shared.payloads import CampaignLaunch
from shared.platform.firestore import Database
from shared.platform.pubsub import Publisher, Topic
from shared.store import campaigns as campaign_store
from shared.store.campaigns import Campaign, CampaignStatus


class CampaignNotFound(LookupError):
    pass


class IllegalTransition(Exception):
    def __init__(self, action: CampaignAction, current: CampaignStatus) -> None:
        super().__init__(f"cannot {action.value} a campaign that is {current.value}")
        self.action = action
        self.current = current


def next_status(campaign: Campaign, action: CampaignAction) -> CampaignStatus:
    target = transitions_for(campaign).get((action, campaign.status))
    if target is None:
        raise IllegalTransition(action, campaign.status)
    if action is CampaignAction.RESUME and campaign.paused_from:
        return campaign.paused_from
    return target


def transition(
    db: Database,
    campaign_id: str,
    action: CampaignAction,
    now: datetime,
    changes: dict[str, Any] | None = None,
) -> Campaign:
    """Apply `action` atomically; raises IllegalTransition with the status."""

    def change(campaign: Campaign, _: dict[str, Any]) -> dict[str, Any]:
        update: dict[str, Any] = {
            "status": next_status(campaign, action).value,
            "updated_at": now,
            **(changes or {}),
        }
        if action is CampaignAction.PAUSE:
            update["paused_from"] = campaign.status.value
        if action is CampaignAction.CANCEL:
            update["cancel_swept"] = False
        return update

    return campaign_store.update_in_transaction(
        db, campaign_id, change, lambda: CampaignNotFound(campaign_id)
    )


def launch_campaign(
    db: Database,
    publisher: Publisher,
    campaign_id: str,
    now: datetime,
    schedule_at: datetime | None = None,
) -> Campaign:
    """DRAFT → ACTIVE (triggered), SCHEDULED (future schedule_at) or RUNNING."""
    campaign = campaign_store.get_campaign(db, campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    if campaign.is_triggered:
        return transition(db, campaign_id, CampaignAction.ACTIVATE, now)
    when = schedule_at or campaign.schedule_at
    if when is not None and when > now:
        return transition(
            db, campaign_id, CampaignAction.SCHEDULE, now, {"schedule_at": when}
        )
    return start_campaign(db, publisher, campaign_id, now)


def start_campaign(
    db: Database, publisher: Publisher, campaign_id: str, now: datetime
) -> Campaign:
    """→ RUNNING with a fresh launch id, then publish the launch.

    If the publish is lost, the scheduler re-publishes the same launch id for a
    RUNNING campaign that has not been evaluated; the evaluator dedupes on it.
    """
    launch_id = uuid.uuid4().hex
    campaign = transition(
        db,
        campaign_id,
        CampaignAction.START,
        now,
        {"launch_id": launch_id, "launched_at": now},
    )
    publish_launch(publisher, campaign_id, launch_id)
    return campaign


def publish_launch(publisher: Publisher, campaign_id: str, launch_id: str) -> None:
    publisher.publish(
        Topic.CAMPAIGN_LAUNCHES,
        CampaignLaunch(campaign_id=campaign_id, launch_id=launch_id),
    )
