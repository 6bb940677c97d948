"""Campaigns API: create, read, and the lifecycle actions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.api.context import ApiContext
from shared.api.events import check_trigger
from shared.api.http import (
    ApiError,
    ApiRequest,
    Contract,
    QueryParam,
    Router,
    Tag,
    not_found,
    parse_body,
    parse_model,
)
from shared.api.paging import PAGING, Page, as_is, paged
from shared.campaigns.dry_run import dry_run
from shared.campaigns.lifecycle import (
    CampaignNotFound,
    IllegalTransition,
    launch_campaign,
    transition,
)
from shared.campaigns.replan import resume_held_messages, skip_queued_messages
from shared.campaigns.transitions import EDITABLE_STATUSES, CampaignAction
from shared.store import campaigns as campaign_store
from shared.store.campaigns import (
    Campaign,
    CampaignSettings,
    CampaignStatus,
    FrequencyCap,
    QuietHours,
    Sender,
)
from shared.store.segments import get_segment
from shared.store.templates import get_template

router = Router()


class LaunchRequest(BaseModel):
    model_config = {"extra": "forbid"}

    schedule_at: datetime | None = None


class ResumedCampaign(Campaign):
    resumed_messages: int


class CancelledCampaign(Campaign):
    skipped_messages: int


class DryRunReport(BaseModel):
    campaign_id: str
    targeted: int
    eligible: int
    skips: dict[str, int]
    quiet_hours_deferrals_now: int
    total_segments: int
    rate_limit_mps: float
    estimated_duration_seconds: float
    estimated_duration: str


def load_campaign(context: ApiContext, campaign_id: str) -> Campaign:
    campaign = campaign_store.get_campaign(context.db, campaign_id)
    if campaign is None:
        raise not_found("campaign")
    return campaign


@router.route(
    "POST",
    "/v1/campaigns",
    Contract(
        summary="Create a campaign in DRAFT",
        tag=Tag.CAMPAIGNS,
        request=CampaignSettings,
        response=Campaign,
        status=201,
    ),
)
def create_campaign(request: ApiRequest, context: ApiContext) -> Campaign:
    settings = parse_body(request, CampaignSettings)
    if get_template(context.db, settings.template_id) is None:
        raise ApiError(422, "unknown_template", "template_id names no template")
    if settings.trigger is None and not settings.segment_id:
        raise ApiError(422, "segment_required", "a broadcast campaign needs segment_id")
    check_trigger(settings.trigger)
    now = context.clock()
    campaign = Campaign(
        **settings.model_dump(by_alias=True),
        id=uuid.uuid4().hex[:20],
        created_at=now,
        updated_at=now,
    )
    campaign_store.create_campaign(context.db, campaign)
    return campaign


@router.route(
    "GET",
    "/v1/campaigns",
    Contract(
        summary="List campaigns",
        tag=Tag.CAMPAIGNS,
        response=Page[Campaign],
        query=(QueryParam("status", "a campaign status"), *PAGING),
        errors=(400,),
    ),
)
def list_campaigns(request: ApiRequest, context: ApiContext) -> Page[Campaign]:
    status = request.query.get("status")
    if status and status.upper() not in CampaignStatus.__members__:
        raise ApiError(400, "invalid_status", f"unknown status {status}")
    campaigns = campaign_store.every_campaign(
        context.db, CampaignStatus(status.upper()) if status else None
    )
    return paged(request, campaigns, as_is)


class CampaignPatch(BaseModel):
    """Fields an operator may change while a campaign is DRAFT or SCHEDULED."""

    model_config = {"extra": "forbid", "populate_by_name": True}

    name: str | None = Field(None, min_length=1, max_length=200)
    template_id: str | None = None
    segment_id: str | None = None
    rate_limit_mps: float | None = Field(None, gt=0, le=1000)
    quiet_hours: QuietHours | Literal["default"] | None = "default"
    default_timezone: str | None = None
    frequency_cap: FrequencyCap | None = None
    sender: Sender | None = None
    schedule_at: datetime | None = None


@router.route(
    "PATCH",
    "/v1/campaigns/{campaign_id}",
    Contract(
        summary="Edit a DRAFT or SCHEDULED campaign",
        tag=Tag.CAMPAIGNS,
        request=CampaignPatch,
        response=Campaign,
        errors=(404, 409),
    ),
)
def patch_campaign(request: ApiRequest, context: ApiContext) -> Campaign:
    raw = request.json()
    patch = parse_model(raw, CampaignPatch)
    changes = patch.model_dump(mode="python", by_alias=True, include=set(raw))
    if (
        changes.get("template_id") is not None
        and get_template(context.db, changes["template_id"]) is None
    ):
        raise ApiError(422, "unknown_template", "template_id names no template")

    def change(campaign: Campaign, stored: dict[str, Any]) -> dict[str, Any]:
        if campaign.status not in EDITABLE_STATUSES:
            raise ApiError(
                409,
                "not_editable",
                f"a {campaign.status.value} campaign cannot be edited",
                [{"current_status": campaign.status.value}],
            )
        update = {**changes, "updated_at": context.clock()}
        parse_model({**stored, **update}, Campaign)
        return update

    return campaign_store.update_in_transaction(
        context.db,
        request.path_params["campaign_id"],
        change,
        lambda: not_found("campaign"),
    )


@router.route(
    "GET",
    "/v1/campaigns/{campaign_id}",
    Contract(
        summary="Read a campaign", tag=Tag.CAMPAIGNS, response=Campaign, errors=(404,)
    ),
)
def read_campaign(request: ApiRequest, context: ApiContext) -> Campaign:
    return load_campaign(context, request.path_params["campaign_id"])


def _lifecycle_error(exc: Exception) -> ApiError:
    if isinstance(exc, IllegalTransition):
        return ApiError(
            409,
            "illegal_transition",
            str(exc),
            [{"current_status": exc.current.value}],
        )
    return not_found("campaign")


@router.route(
    "POST",
    "/v1/campaigns/{campaign_id}/launch",
    Contract(
        summary="Launch now or at schedule_at (→ RUNNING or SCHEDULED)",
        tag=Tag.CAMPAIGNS,
        request=LaunchRequest,
        request_required=False,
        response=Campaign,
        status=202,
        errors=(404, 409),
    ),
)
def launch(request: ApiRequest, context: ApiContext) -> Campaign:
    body = parse_model(request.json() if request.body.strip() else {}, LaunchRequest)
    try:
        campaign = launch_campaign(
            context.db,
            context.publisher,
            request.path_params["campaign_id"],
            context.clock(),
            body.schedule_at,
        )
    except (IllegalTransition, CampaignNotFound) as exc:
        raise _lifecycle_error(exc) from exc
    return campaign


def _transition(
    request: ApiRequest, context: ApiContext, action: CampaignAction
) -> Campaign:
    try:
        return transition(
            context.db, request.path_params["campaign_id"], action, context.clock()
        )
    except (IllegalTransition, CampaignNotFound) as exc:
        raise _lifecycle_error(exc) from exc


@router.route(
    "POST",
    "/v1/campaigns/{campaign_id}/pause",
    Contract(summary="Pause", tag=Tag.CAMPAIGNS, response=Campaign, errors=(404, 409)),
)
def pause(request: ApiRequest, context: ApiContext) -> Campaign:
    """Unsent messages are held by the sender when their time comes."""
    return _transition(request, context, CampaignAction.PAUSE)


@router.route(
    "POST",
    "/v1/campaigns/{campaign_id}/resume",
    Contract(
        summary="Resume; held messages are re-planned",
        tag=Tag.CAMPAIGNS,
        response=ResumedCampaign,
        errors=(404, 409),
    ),
)
def resume(request: ApiRequest, context: ApiContext) -> ResumedCampaign:
    campaign = _transition(request, context, CampaignAction.RESUME)
    resumed = 0
    # Triggered campaigns have no launch id; their held messages resume too.
    if campaign.is_triggered or campaign.launch_id:
        resumed = resume_held_messages(
            context.db, context.tasks(), campaign, context.clock()
        )
    return ResumedCampaign(**campaign.model_dump(), resumed_messages=resumed)


@router.route(
    "POST",
    "/v1/campaigns/{campaign_id}/cancel",
    Contract(
        summary="Cancel; queued messages become SKIPPED",
        tag=Tag.CAMPAIGNS,
        response=CancelledCampaign,
        errors=(404, 409),
    ),
)
def cancel(request: ApiRequest, context: ApiContext) -> CancelledCampaign:
    """Queued messages become SKIPPED(campaign_cancelled); the scheduler
    finishes what does not fit in this request's time budget."""
    campaign = _transition(request, context, CampaignAction.CANCEL)
    outcome = skip_queued_messages(
        context.db, campaign.id, "campaign_cancelled", context.clock(), budget_s=15
    )
    if outcome.finished:
        campaign_store.mark_cancel_swept(context.db, campaign.id)
    return CancelledCampaign(**campaign.model_dump(), skipped_messages=outcome.changed)


@router.route(
    "POST",
    "/v1/campaigns/{campaign_id}/dry-run",
    Contract(
        summary="Eligible count, skips by reason, segments, estimated duration",
        tag=Tag.CAMPAIGNS,
        response=DryRunReport,
        errors=(404, 409, 422),
    ),
)
def dry_run_campaign(request: ApiRequest, context: ApiContext) -> DryRunReport:
    campaign = load_campaign(context, request.path_params["campaign_id"])
    if not campaign.segment_id:
        raise ApiError(
            422, "segment_required", "a dry run needs the campaign's segment"
        )
    template = get_template(context.db, campaign.template_id)
    segment = get_segment(context.db, campaign.segment_id)
    if template is None or segment is None:
        raise ApiError(409, "missing_dependency", "the template or segment is gone")
    report = dry_run(
        context.db,
        campaign,
        template,
        segment.definition,
        context.core,
        context.clock(),
    )
    return DryRunReport(campaign_id=campaign.id, **report)
