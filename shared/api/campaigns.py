"""Campaigns API: create, read, and the lifecycle actions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    ApiResponse,
    Router,
    not_found,
    parse_body,
    parse_model,
)
from shared.campaigns.lifecycle import (
    CampaignNotFound,
    IllegalTransition,
    launch_campaign,
    transition,
)
from shared.campaigns.models import (
    Campaign,
    CampaignAction,
    CampaignSettings,
    campaign_ref,
)
from shared.content.store import get_template

router = Router()


class LaunchRequest(BaseModel):
    model_config = {"extra": "forbid"}

    schedule_at: datetime | None = None


def campaign_body(campaign: Campaign) -> dict[str, Any]:
    return campaign.model_dump(mode="json", by_alias=True)


def load_campaign(context: ApiContext, campaign_id: str) -> Campaign:
    snapshot = campaign_ref(context.db, campaign_id).get()
    if not snapshot.exists:
        raise not_found("campaign")
    return Campaign.from_snapshot(snapshot)


@router.add("POST", "/v1/campaigns")
def create_campaign(request: ApiRequest, context: ApiContext) -> ApiResponse:
    settings = parse_body(request, CampaignSettings)
    if get_template(context.db, settings.template_id) is None:
        raise ApiError(422, "unknown_template", "template_id names no template")
    if settings.trigger is None and not settings.segment_id:
        raise ApiError(422, "segment_required", "a broadcast campaign needs segment_id")
    now = context.clock()
    campaign = Campaign(
        **settings.model_dump(by_alias=True),
        id=uuid.uuid4().hex[:20],
        created_at=now,
        updated_at=now,
    )
    campaign_ref(context.db, campaign.id).create(
        campaign.model_dump(mode="python", by_alias=True, exclude={"id"})
    )
    return ApiResponse(201, campaign_body(campaign))


@router.add("GET", "/v1/campaigns/{campaign_id}")
def read_campaign(request: ApiRequest, context: ApiContext) -> ApiResponse:
    return ApiResponse(
        200, campaign_body(load_campaign(context, request.path_params["campaign_id"]))
    )


def _lifecycle_error(exc: Exception) -> ApiError:
    if isinstance(exc, IllegalTransition):
        return ApiError(
            409,
            "illegal_transition",
            str(exc),
            [{"current_status": exc.current.value}],
        )
    return not_found("campaign")


@router.add("POST", "/v1/campaigns/{campaign_id}/launch")
def launch(request: ApiRequest, context: ApiContext) -> ApiResponse:
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
    return ApiResponse(202, campaign_body(campaign))


def _action(action: CampaignAction) -> Any:
    def handler(request: ApiRequest, context: ApiContext) -> ApiResponse:
        try:
            campaign = transition(
                context.db, request.path_params["campaign_id"], action, context.clock()
            )
        except (IllegalTransition, CampaignNotFound) as exc:
            raise _lifecycle_error(exc) from exc
        return ApiResponse(200, campaign_body(campaign))

    return handler


for _action_name in (
    CampaignAction.PAUSE,
    CampaignAction.RESUME,
    CampaignAction.CANCEL,
):
    router.add("POST", f"/v1/campaigns/{{campaign_id}}/{_action_name.value}")(
        _action(_action_name)
    )
