"""Segments API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    ApiResponse,
    Router,
    not_found,
    parse_body,
)
from shared.audience.segments import SegmentDefinitionError, validate_definition

router = Router()
SEGMENTS = "segments"


class SegmentFields(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200)
    definition: dict[str, Any]


class Segment(SegmentFields):
    id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None


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


@router.add("POST", "/v1/segments")
def create_segment(request: ApiRequest, context: ApiContext) -> ApiResponse:
    fields = parse_body(request, SegmentFields)
    check_definition(fields.definition)
    now = context.clock()
    segment = Segment(
        **fields.model_dump(), id=uuid.uuid4().hex[:20], created_at=now, updated_at=now
    )
    context.db.collection(SEGMENTS).document(segment.id).create(
        segment.model_dump(exclude={"id"})
    )
    return ApiResponse(201, segment.model_dump(mode="json"))


@router.add("GET", "/v1/segments/{segment_id}")
def read_segment(request: ApiRequest, context: ApiContext) -> ApiResponse:
    snapshot = (
        context.db.collection(SEGMENTS)
        .document(request.path_params["segment_id"])
        .get()
    )
    if not snapshot.exists:
        raise not_found("segment")
    segment = Segment.model_validate({**(snapshot.to_dict() or {}), "id": snapshot.id})
    return ApiResponse(200, segment.model_dump(mode="json"))
