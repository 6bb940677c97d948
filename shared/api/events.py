"""Events API: post events for triggered campaigns; read what one caused."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    Contract,
    Router,
    Tag,
    not_found,
)
from shared.api.paging import PAGING, Page, paged
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
from shared.events.router import EventReport, describe_event
from shared.platform.logging import mask_phone
from shared.store.campaigns import Trigger
from shared.store.events import every_event

router = Router()


class EventIn(BaseModel):
    event_id: str | None = Field(
        default=None, description="seen before → accepted, ignored"
    )
    type: str = Field(examples=["order_shipped"])
    phone: str
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = None


class EventRejection(BaseModel):
    index: int
    error: str


class EventsAccepted(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[EventRejection]
    event_ids: list[str | None] = Field(
        description="one per event sent, in order; null where it was rejected"
    )
    duplicate_ids: list[str]


# The body is read by the ingest, not validated against EventIn up front.
EVENT_ITEM = {"$ref": "#/components/schemas/EventIn"}
EVENT_CONTENT = {
    "application/json": {
        "schema": {
            "oneOf": [
                EVENT_ITEM,
                {"type": "array", "items": EVENT_ITEM, "maxItems": 500},
            ]
        }
    },
    "application/x-ndjson": {"schema": {"type": "string"}},
}


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


def ingest_body(result: IngestResult) -> EventsAccepted:
    return EventsAccepted(
        accepted=result.accepted,
        duplicates=len(result.duplicate_ids),
        rejected=[
            EventRejection(index=r.index, error=r.error) for r in result.rejected
        ],
        event_ids=result.event_ids,
        duplicate_ids=result.duplicate_ids,
    )


@router.route(
    "POST",
    "/v1/events",
    Contract(
        summary="Ingest one event, a list (≤ 500) or NDJSON",
        tag=Tag.EVENTS,
        request_content=EVENT_CONTENT,
        request_models=(EventIn,),
        response=EventsAccepted,
        status=202,
        errors=(400, 413, 503),
    ),
)
def post_events(request: ApiRequest, context: ApiContext) -> EventsAccepted:
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
    return ingest_body(result)


@router.route(
    "GET",
    "/v1/events/{event_id}",
    Contract(
        summary="An event and the messages it caused",
        tag=Tag.EVENTS,
        response=EventReport,
        errors=(404,),
    ),
)
def read_event(request: ApiRequest, context: ApiContext) -> EventReport:
    report = describe_event(context.db, request.path_params["event_id"])
    if report is None:
        raise not_found("event")
    return report


def _event_summary(data: dict[str, Any]) -> EventSummary:
    phone = data.get("phone")
    return EventSummary.model_validate(
        {**data, "phone": mask_phone(phone) if isinstance(phone, str) else None}
    )


@router.route(
    "GET",
    "/v1/events",
    Contract(
        summary="Recent events, newest first, phones masked",
        tag=Tag.EVENTS,
        response=Page[EventSummary],
        query=PAGING,
        errors=(400,),
    ),
)
def list_events(request: ApiRequest, context: ApiContext) -> Page[EventSummary]:
    """Recent events, newest first, phones masked."""
    return paged(request, every_event(context.db), _event_summary)
