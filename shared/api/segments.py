"""Segments API: CRUD and previews."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from google.cloud import firestore
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
from shared.api.paging import PAGING, Page, paged
from shared.audience.segments import (
    SEGMENTS,
    SegmentDefinitionError,
    SegmentPreview,
    preview_segment,
    validate_definition,
)
from shared.audience.users import ConsentState, User
from shared.campaigns.models import unfinished_campaigns_using
from shared.platform.logging import mask_phone

router = Router()


class SegmentFields(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200)
    definition: dict[str, Any]


class Segment(SegmentFields):
    id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None


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


def segment_ref(context: ApiContext, segment_id: str) -> firestore.DocumentReference:
    return context.db.collection(SEGMENTS).document(segment_id)


def _segment(snapshot: firestore.DocumentSnapshot) -> Segment:
    return Segment.model_validate({**(snapshot.to_dict() or {}), "id": snapshot.id})


def load_segment(context: ApiContext, segment_id: str) -> Segment:
    snapshot = segment_ref(context, segment_id).get()
    if not snapshot.exists:
        raise not_found("segment")
    return _segment(snapshot)


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
        **fields.model_dump(), id=uuid.uuid4().hex[:20], created_at=now, updated_at=now
    )
    segment_ref(context, segment.id).create(segment.model_dump(exclude={"id"}))
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
    collection = context.db.collection(SEGMENTS)
    return paged(request, firestore.Query(collection), collection, _segment)


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
    segment_ref(context, segment.id).update(
        updated.model_dump(include={"name", "definition", "updated_at"})
    )
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
    ref = segment_ref(context, request.path_params["segment_id"])

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> list[dict[str, Any]]:
        if not ref.get(transaction=transaction).exists:
            raise not_found("segment")
        in_use = [
            {"campaign_id": campaign_id, "status": status}
            for campaign_id, status in unfinished_campaigns_using(
                context.db, transaction, "segment_id", ref.id
            )
        ]
        if not in_use:
            transaction.delete(ref)
        return in_use

    in_use = apply(context.db.transaction())
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
