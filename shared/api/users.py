"""Users API: create, list, read, merge, erase; consent and its history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, Field, field_validator

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    ApiResponse,
    Router,
    not_found,
    parse_body,
)
from shared.api.paging import page_limit, paged
from shared.audience.consent import set_consent
from shared.audience.phones import InvalidPhone, normalize_phone
from shared.audience.users import (
    UserErased,
    UserExists,
    UserNotFound,
    check_attributes,
    create_user,
    is_valid_timezone,
    patch_user,
)
from shared.platform.logging import mask_phone
from shared.privacy.erasure import erase_phone
from shared.store.users import (
    ConsentState,
    InvalidHistoryToken,
    User,
    consent_history,
    every_user,
    user_of_snapshot,
)
from shared.store.users import (
    get_user as read_user,
)

router = Router()


def _valid_timezone(value: str | None) -> str | None:
    if value is not None and not is_valid_timezone(value):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Asia/Colombo')")
    return value


class UserCreate(BaseModel):
    model_config = {"extra": "forbid"}

    phone: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None
    consent_state: ConsentState = ConsentState.OPT_IN

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_attributes(value)
        # On create a null attribute means "absent".
        return {name: item for name, item in value.items() if item is not None}

    _timezone = field_validator("timezone")(_valid_timezone)


class UserPatch(BaseModel):
    """A merge: listed attributes are set, null ones deleted, others kept."""

    model_config = {"extra": "forbid"}

    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_attributes(value)
        return value

    _timezone = field_validator("timezone")(_valid_timezone)


class ConsentUpdate(BaseModel):
    model_config = {"extra": "forbid"}

    state: ConsentState
    source: str = Field("api", min_length=1, max_length=64)
    evidence: str | None = Field(None, max_length=500)


def phone_param(
    request: ApiRequest, context: ApiContext, raw: str | None = None
) -> str:
    """The E.164 phone of the body (`raw`) or of the path ('+1…' or '%2B1…')."""
    text = raw if raw is not None else unquote(request.path_params["phone"])
    try:
        return normalize_phone(text, context.core.default_region)
    except InvalidPhone as exc:
        raise ApiError(
            422, "invalid_phone", str(exc), [{"field": "phone", "error": str(exc)}]
        ) from exc


def user_body(user: User) -> dict[str, Any]:
    return user.model_dump(mode="json")


def _user_from_snapshot(snapshot: Any) -> dict[str, Any]:
    # `snapshot`: a page's document, which only the store reads.
    return user_body(user_of_snapshot(snapshot))


@router.add("POST", "/v1/users")
def post_user(request: ApiRequest, context: ApiContext) -> ApiResponse:
    body = parse_body(request, UserCreate)
    phone = phone_param(request, context, body.phone)
    try:
        user = create_user(
            context.db,
            phone,
            body.attributes,
            body.timezone,
            body.consent_state,
            context.clock(),
        )
    except UserExists as exc:
        raise ApiError(409, "already_exists", f"user {phone} already exists") from exc
    return ApiResponse(201, user_body(user))


@router.add("GET", "/v1/users")
def list_users(request: ApiRequest, context: ApiContext) -> ApiResponse:
    state = request.query.get("consent_state")
    if state and state not in ConsentState.__members__:
        raise ApiError(
            400,
            "invalid_query",
            f"consent_state must be one of {', '.join(ConsentState)}",
        )
    query, collection = every_user(context.db, ConsentState(state) if state else None)
    return ApiResponse(200, paged(request, query, collection, _user_from_snapshot))


def load_user(context: ApiContext, phone: str) -> User:
    user = read_user(context.db, phone)
    if user is None:
        raise not_found("user")
    return user


@router.add("GET", "/v1/users/{phone}")
def get_user(request: ApiRequest, context: ApiContext) -> ApiResponse:
    return ApiResponse(
        200, user_body(load_user(context, phone_param(request, context)))
    )


@router.add("PATCH", "/v1/users/{phone}")
def patch_user_attributes(request: ApiRequest, context: ApiContext) -> ApiResponse:
    phone = phone_param(request, context)
    body = parse_body(request, UserPatch)
    options = {"timezone": body.timezone} if "timezone" in body.model_fields_set else {}
    try:
        user = patch_user(
            context.db, phone, body.attributes, context.clock(), **options
        )
    except UserNotFound as exc:
        raise not_found("user") from exc
    except UserErased as exc:
        raise ApiError(
            409,
            "user_erased",
            "this user was erased; POST /v1/users creates the profile again",
        ) from exc
    return ApiResponse(200, user_body(user))


@router.add("DELETE", "/v1/users/{phone}")
def delete_user(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """Erase the number everywhere (docs/architecture.md §3); say what went.

    Idempotent: a retry after a failure halfway erases what is left, and a
    second call on an erased number answers 404 unless something remained.
    """
    phone = phone_param(request, context)
    retention = timedelta(days=context.core.message_retention_days)
    report = erase_phone(context.db, phone, context.clock(), retention)
    if not any(report["erased"].values()):
        raise not_found("user")
    return ApiResponse(200, {"phone": mask_phone(phone), **report})


@router.add("PUT", "/v1/users/{phone}/consent")
def put_consent(request: ApiRequest, context: ApiContext) -> ApiResponse:
    phone = phone_param(request, context)
    body = parse_body(request, ConsentUpdate)
    change = set_consent(
        context.db,
        phone,
        body.state,
        source=body.source,
        now=context.clock(),
        evidence=body.evidence,
    )
    if change is None:
        raise not_found("user")
    return ApiResponse(200, user_body(load_user(context, phone)))


def _event_body(entry: dict[str, Any]) -> dict[str, Any]:
    at = entry.get("at")
    return {
        "id": entry["id"],
        "from": entry.get("from"),
        "to": entry.get("to"),
        "source": entry.get("source"),
        "at": at.isoformat() if isinstance(at, datetime) else at,
        "evidence": entry.get("evidence"),
    }


@router.add("GET", "/v1/users/{phone}/consent")
def get_consent_history(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """The consent history, newest first, paged by (at, id)."""
    phone = phone_param(request, context)
    load_user(context, phone)
    try:
        page = consent_history(
            context.db, phone, page_limit(request), request.query.get("page_token")
        )
    except InvalidHistoryToken as exc:
        raise ApiError(400, "invalid_page_token", "page_token is not valid") from exc
    return ApiResponse(
        200,
        {
            "items": [_event_body(entry) for entry in page.entries],
            "next_page_token": page.next_token,
        },
    )
