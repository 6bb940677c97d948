"""The OpenAPI 3.1 document of the REST API, generated from the pydantic models.

`OPERATIONS` is the one table of per-route metadata: (method, path pattern) →
summary, request and response models, success status, query parameters and
error statuses. The request and response models live with the code that uses
them; the few response shapes that handlers build as plain dicts are described
here by documentation models. The paths come from the router itself, so the
document lists exactly what the API serves; a route missing from the table
still appears, with a bare description (a test keeps the table complete).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.api.campaigns import CampaignPatch, LaunchRequest
from shared.api.events import EventPage
from shared.api.http import Route, Router
from shared.api.reports import Dashboard, InboundPage
from shared.api.segments import PreviewRequest, Segment, SegmentFields
from shared.api.templates import DraftRenderRequest, RenderRequest
from shared.api.users import ConsentUpdate, UserCreate, UserPatch
from shared.campaigns.summary import CampaignSummary
from shared.events.router import EventReport
from shared.store.campaigns import Campaign, CampaignSettings
from shared.store.imports import ImportReport
from shared.store.messages import Message, MessageStatus
from shared.store.templates import Template, TemplateFields
from shared.store.users import ConsentState, User

API_TITLE = "Event Stream Engine API"
API_VERSION = "1.0.0"
REF_TEMPLATE = "#/components/schemas/{model}"

ItemT = TypeVar("ItemT")


# ------------------------------------------------ shapes handlers build as dicts


class ErasedCounts(BaseModel):
    users: int
    consent_events: int
    messages: int = Field(description="redacted: phone, body, receipts, error text")
    inbound: int
    events: int
    unmatched_receipts: int


class ErasureReport(BaseModel):
    phone: str = Field(description="masked")
    erased: ErasedCounts
    suppressed: bool = Field(description="an opted-out number's suppression entry")
    summaries_frozen: int = Field(
        description="completed campaigns' summaries frozen before erasing"
    )


class ErrorBody(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str
    details: list[Any] = Field(default_factory=list)


class ErrorEnvelope(BaseModel):
    """Every 4xx answer: {"error": {"code", "message", "details"}}."""

    error: ErrorBody


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_page_token: str | None = None


class ConsentEventView(BaseModel):
    id: str
    from_: ConsentState | None = Field(None, alias="from")
    to: ConsentState
    source: str
    at: datetime | None = None
    evidence: str | None = None


class TemplateView(Template):
    encoding: str = Field(examples=["GSM-7"])
    segments: int


class RenderView(BaseModel):
    body: str
    encoding: str
    segments: int
    characters: int
    missing_variables: list[str]
    content_variables: dict[str, str] | None = None


class SegmentSample(BaseModel):
    phone: str = Field(description="masked")
    consent_state: ConsentState


class SegmentPreviewView(BaseModel):
    count: int
    eligible: int = Field(description="members who are OPT_IN")
    sample: list[SegmentSample]


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


def _with_message_status(schema: dict[str, Any]) -> None:
    schema["properties"]["status"] = {
        "type": "string",
        "enum": [status.value for status in MessageStatus],
        "description": "derived from status_rank",
    }
    schema.setdefault("required", []).append("status")


class MessageView(Message):
    """A message as the API shows it: its document plus the derived status."""

    model_config = ConfigDict(json_schema_extra=_with_message_status)


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
    event_ids: list[str]
    duplicate_ids: list[str]


class Health(BaseModel):
    ok: bool
    firestore: str


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class QueryParam:
    name: str
    description: str
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    response: type[BaseModel] | Mapping[str, Any] | None = None
    status: int = 200
    request: type[BaseModel] | None = None
    # A body the handler reads itself (files, lists): content type → schema.
    request_content: Mapping[str, Any] | None = None
    request_required: bool = True
    query: tuple[QueryParam, ...] = ()
    errors: tuple[int, ...] = ()
    public: bool = False


PAGING = (
    QueryParam("limit", "page size, 1..500 (default 50)", {"type": "integer"}),
    QueryParam("page_token", "next_page_token of the previous page"),
)
IMPORT_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
    "application/x-ndjson": {"schema": {"type": "string"}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    },
}
EVENT_ITEM = {"$ref": REF_TEMPLATE.format(model="EventIn")}
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
ANY_OBJECT: Mapping[str, Any] = {"type": "object"}


class Tag(StrEnum):
    USERS = "users"
    IMPORTS = "imports"
    EVENTS = "events"
    TEMPLATES = "templates"
    SEGMENTS = "segments"
    CAMPAIGNS = "campaigns"
    MESSAGES = "messages"
    REPORTS = "reports"
    HEALTH = "health"


CAMPAIGN = "/v1/campaigns/{campaign_id}"

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/users"): Operation(
        "Create a user",
        Tag.USERS,
        response=User,
        status=201,
        request=UserCreate,
        errors=(409,),
    ),
    ("GET", "/v1/users"): Operation(
        "List users",
        Tag.USERS,
        response=Page[User],
        query=(QueryParam("consent_state", "OPT_IN, OPT_OUT or STOP"), *PAGING),
        errors=(400,),
    ),
    ("GET", "/v1/users/{phone}"): Operation(
        "Read a user", Tag.USERS, response=User, errors=(404, 422)
    ),
    ("PATCH", "/v1/users/{phone}"): Operation(
        "Merge attributes (null deletes a key)",
        Tag.USERS,
        response=User,
        request=UserPatch,
        errors=(404, 409),
    ),
    ("DELETE", "/v1/users/{phone}"): Operation(
        "Erase the number everywhere (profile, consent history, messages,"
        " inbound, events, unmatched receipts); an opted-out number keeps only"
        " a keyed-hash suppression entry. Idempotent; says what was erased",
        Tag.USERS,
        response=ErasureReport,
        errors=(404, 422),
    ),
    ("PUT", "/v1/users/{phone}/consent"): Operation(
        "Set consent with its source",
        Tag.USERS,
        response=User,
        request=ConsentUpdate,
        errors=(404,),
    ),
    ("GET", "/v1/users/{phone}/consent"): Operation(
        "Consent history, newest first",
        Tag.USERS,
        response=Page[ConsentEventView],
        query=PAGING,
        errors=(400, 404, 422),
    ),
    ("GET", "/v1/users/{phone}/messages"): Operation(
        "A contact's messages across campaigns, newest first",
        Tag.MESSAGES,
        response=Page[MessageView],
        query=PAGING,
        errors=(400, 422),
    ),
    ("POST", "/v1/imports"): Operation(
        "Import contacts (CSV, JSON array, NDJSON or multipart file, at most "
        "32 MiB): rows validated now, upserted asynchronously; poll the report",
        Tag.IMPORTS,
        response=ImportReport,
        status=202,
        request_content=IMPORT_CONTENT,
        errors=(400, 413, 415, 422, 503),
    ),
    ("GET", "/v1/imports/{import_id}"): Operation(
        "Read an import report: RUNNING with chunks_done/chunks_planned, then "
        "COMPLETED (or FAILED)",
        Tag.IMPORTS,
        response=ImportReport,
        errors=(404,),
    ),
    ("POST", "/v1/events"): Operation(
        "Ingest one event, a list (≤ 500) or NDJSON",
        Tag.EVENTS,
        response=EventsAccepted,
        status=202,
        request_content=EVENT_CONTENT,
        errors=(400, 413, 503),
    ),
    ("GET", "/v1/events"): Operation(
        "Recent events, newest first, phones masked",
        Tag.EVENTS,
        response=EventPage,
        query=PAGING,
        errors=(400,),
    ),
    ("GET", "/v1/events/{event_id}"): Operation(
        "An event and the messages it caused",
        Tag.EVENTS,
        response=EventReport,
        errors=(404,),
    ),
    ("POST", "/v1/templates"): Operation(
        "Create a template",
        Tag.TEMPLATES,
        response=TemplateView,
        status=201,
        request=TemplateFields,
    ),
    ("GET", "/v1/templates"): Operation(
        "List templates",
        Tag.TEMPLATES,
        response=Page[TemplateView],
        query=PAGING,
        errors=(400,),
    ),
    ("GET", "/v1/templates/{template_id}"): Operation(
        "Read a template", Tag.TEMPLATES, response=TemplateView, errors=(404,)
    ),
    ("PUT", "/v1/templates/{template_id}"): Operation(
        "Replace a template",
        Tag.TEMPLATES,
        response=TemplateView,
        request=TemplateFields,
        errors=(404,),
    ),
    ("DELETE", "/v1/templates/{template_id}"): Operation(
        "Delete a template (409 while unfinished campaigns use it)",
        Tag.TEMPLATES,
        status=204,
        errors=(404, 409),
    ),
    ("POST", "/v1/templates/{template_id}/render"): Operation(
        "Render for given attributes or a stored user",
        Tag.TEMPLATES,
        response=RenderView,
        request=RenderRequest,
        errors=(404,),
    ),
    ("POST", "/v1/templates/render"): Operation(
        "Render an unsaved template for given attributes or a stored user",
        Tag.TEMPLATES,
        response=RenderView,
        request=DraftRenderRequest,
        errors=(404,),
    ),
    ("POST", "/v1/segments"): Operation(
        "Create a segment",
        Tag.SEGMENTS,
        response=Segment,
        status=201,
        request=SegmentFields,
    ),
    ("GET", "/v1/segments"): Operation(
        "List segments",
        Tag.SEGMENTS,
        response=Page[Segment],
        query=PAGING,
        errors=(400,),
    ),
    ("GET", "/v1/segments/{segment_id}"): Operation(
        "Read a segment", Tag.SEGMENTS, response=Segment, errors=(404,)
    ),
    ("PUT", "/v1/segments/{segment_id}"): Operation(
        "Replace a segment",
        Tag.SEGMENTS,
        response=Segment,
        request=SegmentFields,
        errors=(404,),
    ),
    ("DELETE", "/v1/segments/{segment_id}"): Operation(
        "Delete a segment (409 while unfinished campaigns use it)",
        Tag.SEGMENTS,
        status=204,
        errors=(404, 409),
    ),
    ("POST", "/v1/segments/preview"): Operation(
        "Preview a definition: count, eligible, sample",
        Tag.SEGMENTS,
        response=SegmentPreviewView,
        request=PreviewRequest,
    ),
    ("POST", "/v1/segments/{segment_id}/preview"): Operation(
        "Preview a stored segment",
        Tag.SEGMENTS,
        response=SegmentPreviewView,
        errors=(404,),
    ),
    ("POST", "/v1/campaigns"): Operation(
        "Create a campaign in DRAFT",
        Tag.CAMPAIGNS,
        response=Campaign,
        status=201,
        request=CampaignSettings,
    ),
    ("GET", "/v1/campaigns"): Operation(
        "List campaigns",
        Tag.CAMPAIGNS,
        response=Page[Campaign],
        query=(QueryParam("status", "a campaign status"), *PAGING),
        errors=(400,),
    ),
    ("GET", CAMPAIGN): Operation(
        "Read a campaign", Tag.CAMPAIGNS, response=Campaign, errors=(404,)
    ),
    ("PATCH", CAMPAIGN): Operation(
        "Edit a DRAFT or SCHEDULED campaign",
        Tag.CAMPAIGNS,
        response=Campaign,
        request=CampaignPatch,
        errors=(404, 409),
    ),
    ("POST", f"{CAMPAIGN}/launch"): Operation(
        "Launch now or at schedule_at (→ RUNNING or SCHEDULED)",
        Tag.CAMPAIGNS,
        response=Campaign,
        status=202,
        request=LaunchRequest,
        request_required=False,
        errors=(404, 409),
    ),
    ("POST", f"{CAMPAIGN}/pause"): Operation(
        "Pause", Tag.CAMPAIGNS, response=Campaign, errors=(404, 409)
    ),
    ("POST", f"{CAMPAIGN}/resume"): Operation(
        "Resume; held messages are re-planned",
        Tag.CAMPAIGNS,
        response=ResumedCampaign,
        errors=(404, 409),
    ),
    ("POST", f"{CAMPAIGN}/cancel"): Operation(
        "Cancel; queued messages become SKIPPED",
        Tag.CAMPAIGNS,
        response=CancelledCampaign,
        errors=(404, 409),
    ),
    ("POST", f"{CAMPAIGN}/dry-run"): Operation(
        "Eligible count, skips by reason, segments, estimated duration",
        Tag.CAMPAIGNS,
        response=DryRunReport,
        errors=(404, 409, 422),
    ),
    ("GET", f"{CAMPAIGN}/summary"): Operation(
        "Campaign report (frozen once COMPLETED)",
        Tag.REPORTS,
        response=CampaignSummary,
        errors=(404,),
    ),
    ("GET", f"{CAMPAIGN}/messages"): Operation(
        "A campaign's messages",
        Tag.MESSAGES,
        response=Page[MessageView],
        query=(
            QueryParam("status", "a message status"),
            QueryParam("phone", "one recipient's message (E.164 or national)"),
            *PAGING,
        ),
        errors=(400,),
    ),
    ("GET", "/v1/messages/{message_id}"): Operation(
        "One message with its audit trail and receipts",
        Tag.MESSAGES,
        response=MessageView,
        errors=(404,),
    ),
    ("GET", "/v1/inbound"): Operation(
        "Recent inbound, newest first, phones masked",
        Tag.REPORTS,
        response=InboundPage,
        query=PAGING,
        errors=(400,),
    ),
    ("GET", "/v1/dashboard"): Operation(
        "Users, campaigns, and the last 24 h of messages and inbound",
        Tag.REPORTS,
        response=Dashboard,
    ),
    ("GET", "/v1/openapi.json"): Operation(
        "This document", Tag.REPORTS, response=ANY_OBJECT
    ),
    ("GET", "/healthz"): Operation(
        "Liveness and Firestore reachability",
        Tag.HEALTH,
        response=Health,
        errors=(503,),
        public=True,
    ),
}

SUCCESS_DESCRIPTIONS: dict[int, str] = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
}
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: unreadable JSON, query parameter or page token",
    401: "Missing or wrong API key",
    404: "Not found",
    409: "Conflict with the current state (the details name it)",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed (the details name each field)",
    503: "A dependency is unavailable; retry",
}
PATH_PARAMETERS: dict[str, str] = {
    "phone": "E.164, as '+14155550100' or '%2B14155550100'",
    "message_id": (
        "{campaign_id}_{recipient_key}[_{event_id}]; no phone in it: find a"
        " recipient's message with ?phone="
    ),
}
_PARAMETER = re.compile(r"\{(\w+)\}")


# ---------------------------------------------------------------- generation


def _models_of(
    operation: Operation,
) -> Iterable[tuple[type[BaseModel], JsonSchemaMode]]:
    if operation.request is not None:
        yield operation.request, "validation"
    if isinstance(operation.response, type):
        yield operation.response, "serialization"


def schema_components(
    operations: Iterable[Operation],
) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Each model's $ref, and every schema they need, for components.schemas."""
    pairs: set[tuple[type[BaseModel], JsonSchemaMode]] = {
        (ErrorEnvelope, "serialization"),
        (EventIn, "validation"),
    }
    for operation in operations:
        pairs.update(_models_of(operation))
    refs, definitions = models_json_schema(
        sorted(pairs, key=lambda pair: (pair[0].__name__, pair[1])),
        ref_template=REF_TEMPLATE,
    )
    return dict(refs), definitions.get("$defs", {})


def _json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error_statuses(operation: Operation) -> list[int]:
    statuses = set(operation.errors)
    if not operation.public:
        # Every authenticated route reads or writes Firestore (503 on contention).
        statuses.update({401, 503})
    if operation.request is not None:
        statuses.update({400, 422})
    return sorted(statuses)


def _responses(operation: Operation, refs: Mapping[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": SUCCESS_DESCRIPTIONS[operation.status]}
    if isinstance(operation.response, type):
        success["content"] = _json_content(refs[operation.response, "serialization"])
    elif operation.response is not None:
        success["content"] = _json_content(operation.response)
    error = _json_content(refs[ErrorEnvelope, "serialization"])
    responses = {str(operation.status): success}
    for status in _error_statuses(operation):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": error,
        }
    return responses


def _parameters(pattern: str, operation: Operation) -> list[dict[str, Any]]:
    path = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            **(
                {"description": PATH_PARAMETERS[name]}
                if name in PATH_PARAMETERS
                else {}
            ),
        }
        for name in _PARAMETER.findall(pattern)
    ]
    query = [
        {
            "name": param.name,
            "in": "query",
            "required": False,
            "description": param.description,
            "schema": dict(param.schema or {"type": "string"}),
        }
        for param in operation.query
    ]
    return path + query


def _request_body(
    operation: Operation, refs: Mapping[Any, Any]
) -> dict[str, Any] | None:
    if operation.request is not None:
        content = _json_content(refs[operation.request, "validation"])
    elif operation.request_content is not None:
        content = dict(operation.request_content)
    else:
        return None
    return {"required": operation.request_required, "content": content}


def undocumented(route: Route) -> Operation:
    """A route the table does not list yet: its docstring, a bare response."""
    doc = (route.handler.__doc__ or route.handler.__name__).strip().splitlines()[0]
    return Operation(doc, "undocumented")


def operation_object(
    route: Route, operation: Operation, refs: Mapping[Any, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": operation.summary,
        "tags": [operation.tag],
        "parameters": _parameters(route.pattern, operation),
        "responses": _responses(operation, refs),
    }
    request_body = _request_body(operation, refs)
    if request_body is not None:
        body["requestBody"] = request_body
    if operation.public:
        body["security"] = []
    return body


def operations_for(router: Router) -> list[tuple[Route, Operation]]:
    return [
        (route, OPERATIONS.get((route.method, route.pattern)) or undocumented(route))
        for route in router.routes
    ]


@lru_cache(maxsize=4)
def openapi_document(router: Router) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route `router` serves."""
    served = operations_for(router)
    refs, schemas = schema_components(operation for _, operation in served)
    paths: dict[str, dict[str, Any]] = {}
    for route, operation in served:
        paths.setdefault(route.pattern, {})[route.method.lower()] = operation_object(
            route, operation, refs
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": API_TITLE, "version": API_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }
