"""Segments API: CRUD and previews."""

from __future__ import annotations

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
)
from shared.api.paging import paged
from shared.audience.segments import (
    SegmentDefinitionError,
    SegmentPreview,
    preview_segment,
    validate_definition,
)
from shared.platform.logging import mask_phone
from shared.store.campaigns import unfinished_campaigns_using
from shared.store.segments import (
    Segment,
    SegmentFields,
    delete_segment_unless_used,
    every_segment,
    get_segment,
    new_segment_id,
    store_new_segment,
    update_segment,
)
from shared.store.users import User

router = Router()


class PreviewRequest(BaseModel):
    model_config = {"extra": "forbid"}

    definition: dict[str, Any]


def check_definition(definition: Any) -> None:
    try:
        validate_definition(definition)
    except SegmentDefinitionError as exc:
        raise ApiError(
            422,
            "invalid_segment",
            f"segment definition is not valid at {exc.path}: {exc.reason}",
            [{"path": exc.path, "error": exc.reason}],
        ) from exc


def load_segment(context: ApiContext, segment_id: str) -> Segment:
    segment = get_segment(context.db, segment_id)
    if segment is None:
        raise not_found("segment")
    return segment


@router.add("POST", "/v1/segments")
def create_segment(request: ApiRequest, context: ApiContext) -> ApiResponse:
    fields = parse_body(request, SegmentFields)
    check_definition(fields.definition)
    now = context.clock()
    segment = Segment(
        **fields.model_dump(), id=new_segment_id(), created_at=now, updated_at=now
    )
    store_new_segment(context.db, segment)
    return ApiResponse(201, segment.model_dump(mode="json"))


@router.add("GET", "/v1/segments")
def list_segments(request: ApiRequest, context: ApiContext) -> ApiResponse:
    query, collection = every_segment(context.db)
    page = paged(
        request,
        query,
        collection,
        lambda snapshot: Segment.from_snapshot(snapshot).model_dump(mode="json"),
    )
    return ApiResponse(200, page)


@router.add("GET", "/v1/segments/{segment_id}")
def read_segment(request: ApiRequest, context: ApiContext) -> ApiResponse:
    segment = load_segment(context, request.path_params["segment_id"])
    return ApiResponse(200, segment.model_dump(mode="json"))


@router.add("PUT", "/v1/segments/{segment_id}")
def replace_segment(request: ApiRequest, context: ApiContext) -> ApiResponse:
    fields = parse_body(request, SegmentFields)
    check_definition(fields.definition)
    segment = load_segment(context, request.path_params["segment_id"])
    updated = segment.model_copy(
        update={**fields.model_dump(), "updated_at": context.clock()}
    )
    update_segment(context.db, updated)
    return ApiResponse(200, updated.model_dump(mode="json"))


@router.add("DELETE", "/v1/segments/{segment_id}")
def delete_segment(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """Delete unless a campaign that is not final uses the segment (409)."""
    segment_id = request.path_params["segment_id"]
    in_use = delete_segment_unless_used(
        context.db,
        segment_id,
        lambda transaction: [
            {"campaign_id": campaign_id, "status": status}
            for campaign_id, status in unfinished_campaigns_using(
                context.db, transaction, "segment_id", segment_id
            )
        ],
    )
    if in_use is None:
        raise not_found("segment")
    if in_use:
        raise ApiError(
            409,
            "segment_in_use",
            "campaigns that are not final use this segment",
            in_use,
        )
    return ApiResponse(204)


def _sample_body(user: User) -> dict[str, Any]:
    return {"phone": mask_phone(user.phone), "consent_state": user.consent.state}


def preview_body(preview: SegmentPreview) -> dict[str, Any]:
    return {
        "count": preview.count,
        "eligible": preview.eligible,
        "sample": [_sample_body(user) for user in preview.sample],
    }


@router.add("POST", "/v1/segments/preview")
def preview_definition(request: ApiRequest, context: ApiContext) -> ApiResponse:
    body = parse_body(request, PreviewRequest)
    check_definition(body.definition)
    preview = preview_segment(context.db, body.definition, context.clock())
    return ApiResponse(200, preview_body(preview))


@router.add("POST", "/v1/segments/{segment_id}/preview")
def preview_stored_segment(request: ApiRequest, context: ApiContext) -> ApiResponse:
    segment = load_segment(context, request.path_params["segment_id"])
    # Stored before a rule tightened? Say so rather than fail.
    check_definition(segment.definition)
    preview = preview_segment(context.db, segment.definition, context.clock())
    return ApiResponse(200, preview_body(preview))
