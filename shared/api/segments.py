"""Segments API: CRUD and previews."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    ApiResponse,
    Contract,
    Router,
    Tag,
    not_found,
    parse_body,
)
from shared.api.paging import PAGING, Page, as_is, paged
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
from shared.store.users import ConsentState, User

router = Router()


class PreviewRequest(BaseModel):
    model_config = {"extra": "forbid"}

    definition: dict[str, Any]


class SegmentSample(BaseModel):
    phone: str = Field(description="masked")
    consent_state: ConsentState


class SegmentPreviewView(BaseModel):
    count: int
    eligible: int = Field(description="members who are OPT_IN")
    sample: list[SegmentSample]


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


@router.route(
    "POST",
    "/v1/segments",
    Contract(
        summary="Create a segment",
        tag=Tag.SEGMENTS,
        request=SegmentFields,
        response=Segment,
        status=201,
    ),
)
def create_segment(request: ApiRequest, context: ApiContext) -> Segment:
    fields = parse_body(request, SegmentFields)
    check_definition(fields.definition)
    now = context.clock()
    segment = Segment(
        **fields.model_dump(), id=new_segment_id(), created_at=now, updated_at=now
    )
    store_new_segment(context.db, segment)
    return segment


@router.route(
    "GET",
    "/v1/segments",
    Contract(
        summary="List segments",
        tag=Tag.SEGMENTS,
        response=Page[Segment],
        query=PAGING,
        errors=(400,),
    ),
)
def list_segments(request: ApiRequest, context: ApiContext) -> Page[Segment]:
    return paged(request, every_segment(context.db), as_is)


@router.route(
    "GET",
    "/v1/segments/{segment_id}",
    Contract(
        summary="Read a segment", tag=Tag.SEGMENTS, response=Segment, errors=(404,)
    ),
)
def read_segment(request: ApiRequest, context: ApiContext) -> Segment:
    return load_segment(context, request.path_params["segment_id"])


@router.route(
    "PUT",
    "/v1/segments/{segment_id}",
    Contract(
        summary="Replace a segment",
        tag=Tag.SEGMENTS,
        request=SegmentFields,
        response=Segment,
        errors=(404,),
    ),
)
def replace_segment(request: ApiRequest, context: ApiContext) -> Segment:
    fields = parse_body(request, SegmentFields)
    check_definition(fields.definition)
    segment = load_segment(context, request.path_params["segment_id"])
    updated = segment.model_copy(
        update={**fields.model_dump(), "updated_at": context.clock()}
    )
    update_segment(context.db, updated)
    return updated


@router.route(
    "DELETE",
    "/v1/segments/{segment_id}",
    Contract(
        summary="Delete a segment (409 while unfinished campaigns use it)",
        tag=Tag.SEGMENTS,
        status=204,
        errors=(404, 409),
    ),
)
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


def _sample_body(user: User) -> SegmentSample:
    return SegmentSample(phone=mask_phone(user.phone), consent_state=user.consent.state)


def preview_body(preview: SegmentPreview) -> SegmentPreviewView:
    return SegmentPreviewView(
        count=preview.count,
        eligible=preview.eligible,
        sample=[_sample_body(user) for user in preview.sample],
    )


@router.route(
    "POST",
    "/v1/segments/preview",
    Contract(
        summary="Preview a definition: count, eligible, sample",
        tag=Tag.SEGMENTS,
        request=PreviewRequest,
        response=SegmentPreviewView,
    ),
)
def preview_definition(request: ApiRequest, context: ApiContext) -> SegmentPreviewView:
    body = parse_body(request, PreviewRequest)
    check_definition(body.definition)
    preview = preview_segment(context.db, body.definition, context.clock())
    return preview_body(preview)


@router.route(
    "POST",
    "/v1/segments/{segment_id}/preview",
    Contract(
        summary="Preview a stored segment",
        tag=Tag.SEGMENTS,
        response=SegmentPreviewView,
        errors=(404,),
    ),
)
def preview_stored_segment(
    request: ApiRequest, context: ApiContext
) -> SegmentPreviewView:
    segment = load_segment(context, request.path_params["segment_id"])
    # Stored before a rule tightened? Say so rather than fail.
    check_definition(segment.definition)
    preview = preview_segment(context.db, segment.definition, context.clock())
    return preview_body(preview)
