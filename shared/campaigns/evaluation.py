"""Launch evaluation: stream a campaign's segment into recipient batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python

from shared.audience.segments import (
    SegmentDefinitionError,
    iter_segment_users,
    validate_definition,
)
from shared.campaigns.lifecycle import IllegalTransition, transition
from shared.campaigns.transitions import CampaignAction
from shared.payloads import BatchRecipient, CampaignLaunch, RecipientBatch
from shared.platform.firestore import Database
from shared.platform.pubsub import Publisher, Topic
from shared.store import campaigns as campaign_store
from shared.store.campaigns import Campaign, CampaignStatus
from shared.store.segments import segment_definition
from shared.store.users import User

BATCH_SIZE = 500
PUBLISH_EVERY = 20  # batches per publish_many round trip


@dataclass(frozen=True)
class EvaluationResult:
    evaluated: bool
    batches: int = 0
    recipients: int = 0
    reason: str | None = None


def _recipient(user: User) -> BatchRecipient:
    # Attributes may hold Firestore timestamps; the batch travels as JSON.
    attributes = to_jsonable_python(user.attributes, fallback=str)
    return BatchRecipient(phone=user.phone, attributes=attributes)


def batches_of(
    users: Iterator[User],
    campaign_id: str,
    launch_id: str,
    batch_size: int = BATCH_SIZE,
) -> Iterator[RecipientBatch]:
    chunk: list[BatchRecipient] = []
    number = 0
    for user in users:
        chunk.append(_recipient(user))
        if len(chunk) == batch_size:
            yield _batch(campaign_id, launch_id, number, chunk)
            chunk, number = [], number + 1
    if chunk:
        yield _batch(campaign_id, launch_id, number, chunk)


def _batch(
    campaign_id: str, launch_id: str, number: int, chunk: list[BatchRecipient]
) -> RecipientBatch:
    return RecipientBatch(
        campaign_id=campaign_id,
        launch_id=launch_id,
        batch_no=number,
        phones=[r.phone for r in chunk],
        recipients=chunk,
    )


def _launch_problem(campaign: Campaign | None, launch: CampaignLaunch) -> str | None:
    if campaign is None:
        return "campaign_not_found"
    if campaign.launch_id != launch.launch_id:
        return "stale_launch"
    if campaign.status not in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
        return f"campaign_{campaign.status.lower()}"
    if campaign.batches_planned is not None:
        return "already_evaluated"
    return None


def _definition_problem(definition: Any) -> str | None:
    if definition is None:
        return "segment_not_found"
    try:
        validate_definition(definition)
    except SegmentDefinitionError as error:
        # Stored before a rule tightened, or written around the API.
        return f"invalid_segment: {error.path} {error.reason}"
    return None


def _fail_campaign(db: Database, campaign_id: str, reason: str, now: datetime) -> None:
    try:
        transition(
            db, campaign_id, CampaignAction.FAIL, now, {"failure_reason": reason}
        )
    except IllegalTransition:
        pass  # cancelled meanwhile, or a redelivery after the first failed it


def evaluate_launch(
    db: Database,
    publisher: Publisher,
    launch: CampaignLaunch,
    now: datetime,
    batch_size: int = BATCH_SIZE,
) -> EvaluationResult:
    """Publish the segment as batches of ≤ `batch_size` (at most 500), then
    record the plan.

    A redelivered launch whose plan is recorded does nothing; one that crashed
    half way publishes its batches again, which fan-out absorbs (messages are
    created with create(), task names repeat).
    """
    campaign = campaign_store.get_campaign(db, launch.campaign_id)
    problem = _launch_problem(campaign, launch)
    if problem or campaign is None:
        return EvaluationResult(False, reason=problem)
    definition = segment_definition(db, campaign.segment_id or "-")
    problem = _definition_problem(definition)
    if problem or definition is None:
        # Retrying cannot help: the campaign fails with the reason, visibly.
        _fail_campaign(db, campaign.id, problem or "segment_not_found", now)
        return EvaluationResult(False, reason=problem)
    batches = recipients = 0
    pending: list[RecipientBatch] = []
    users = iter_segment_users(db, definition, now)
    for batch in batches_of(users, campaign.id, launch.launch_id, batch_size):
        pending.append(batch)
        batches += 1
        recipients += len(batch.phones)
        if len(pending) == PUBLISH_EVERY:
            publisher.publish_many(Topic.RECIPIENT_BATCHES, pending)
            pending = []
            campaign_store.update_campaign(
                db, campaign.id, {"batches_published": batches}
            )
    publisher.publish_many(Topic.RECIPIENT_BATCHES, pending)
    campaign_store.update_campaign(
        db, campaign.id, {"batches_planned": batches, "recipients_planned": recipients}
    )
    return EvaluationResult(True, batches, recipients)
