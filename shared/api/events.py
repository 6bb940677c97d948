"""Events API: post events for triggered campaigns; read what one caused."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from shared.api.context import ApiContext
from shared.api.http import ApiError, ApiRequest, ApiResponse, Router, not_found
from shared.api.paging import newest_first
from shared.audience.segments import SegmentDefinitionError
from shared.events.ingest import (
    MAX_BODY_BYTES,
    EventBodyError,
    EventsUnavailable,
    IngestResult,
    TooManyEvents,
    ingest_events,
    parse_event_body,
    validate_trigger,
)
from shared.events.router import describe_event
from shared.platform.logging import mask_phone
from shared.store.campaigns import Trigger
from shared.store.events import event_fields, every_event

router = Router()


class EventSummary(BaseModel):
    """One ingested event in a list; GET /v1/events/{event_id} has its messages."""

    event_id: str
    type: str | None = None
    phone: str | None = Field(default=None, description="masked: +1415***0100")
    occurred_at: datetime | None = None
    received_at: datetime | None = None
    status: str | None = Field(default=None, examples=["MATCHED"])
    matched: list[dict[str, str]] = Field(
        default_factory=list, description="campaign_id and message_id of each match"
    )
    not_matched: list[dict[str, str]] = Field(
        default_factory=list, description="campaign_id and reason of each miss"
    )


class EventPage(BaseModel):
    items: list[EventSummary]
    next_page_token: str | None = None


def check_trigger(trigger: Trigger | None) -> None:
    """422 naming the path of a trigger no event could match (campaign create)."""
    if trigger is None:
        return
    try:
        validate_trigger(trigger)
    except SegmentDefinitionError as exc:
        raise ApiError(
            422,
            "invalid_trigger",
            f"trigger is not valid at {exc.path}: {exc.reason}",
            [{"path": exc.path, "error": exc.reason}],
        ) from exc


def _items(request: ApiRequest) -> list[Any]:
    if len(request.body) > MAX_BODY_BYTES:
        raise ApiError(
            413, "payload_too_large", f"a request may be at most {MAX_BODY_BYTES} bytes"
        )
    try:
        return parse_event_body(request.body, request.content_type)
    except TooManyEvents as exc:
        raise ApiError(413, "too_many_events", str(exc)) from exc
    except EventBodyError as exc:
        raise ApiError(400, "invalid_body", str(exc)) from exc


def ingest_body(result: IngestResult) -> dict[str, Any]:
    return {
        "accepted": result.accepted,
        "duplicates": len(result.duplicate_ids),
        "rejected": [{"index": r.index, "error": r.error} for r in result.rejected],
        "event_ids": result.event_ids,
        "duplicate_ids": result.duplicate_ids,
    }


@router.add("POST", "/v1/events")
def post_events(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """One event, a JSON list of at most 500, or NDJSON → 202."""
    items = _items(request)
    try:
        result = ingest_events(
            context.db,
            context.publisher,
            items,
            context.clock(),
            context.core.default_region,
            retention=timedelta(days=context.core.raw_retention_days),
        )
    except EventsUnavailable as exc:
        raise ApiError(
            503, "unavailable", f"{exc}; retry the request (it is idempotent)"
        ) from exc
    return ApiResponse(202, ingest_body(result))


@router.add("GET", "/v1/events/{event_id}")
def read_event(request: ApiRequest, context: ApiContext) -> ApiResponse:
    report = describe_event(context.db, request.path_params["event_id"])
    if report is None:
        raise not_found("event")
    return ApiResponse(200, report.model_dump(mode="json"))


def _event_summary(snapshot: Any) -> dict[str, Any]:
    # `snapshot`: a page's document, which only the store reads.
    data = event_fields(snapshot)
    phone = data.get("phone")
    summary = EventSummary.model_validate(
        {**data, "phone": mask_phone(phone) if isinstance(phone, str) else None}
    )
    return summary.model_dump(mode="json")


@router.add("GET", "/v1/events")
def list_events(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """Recent events, newest first, phones masked."""
    query, collection = every_event(context.db)
    page = newest_first(request, query, collection, "received_at", _event_summary)
    return ApiResponse(200, page)
