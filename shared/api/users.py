"""Users API: create, list, read, merge, erase; consent and its history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, Field, field_serializer, field_validator

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    Contract,
    QueryParam,
    Router,
    Tag,
    not_found,
    parse_body,
)
from shared.api.paging import PAGING, Page, as_is, paged
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
    User,
    consent_history,
    every_user,
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


class ErasedCounts(BaseModel):
    # In the order erasure goes through the collections.
    messages: int = Field(description="redacted: phone, body, receipts, error text")
    inbound: int
    events: int
    unmatched_receipts: int
    consent_events: int
    users: int


class ErasureReport(BaseModel):
    phone: str = Field(description="masked")
    erased: ErasedCounts
    suppressed: bool = Field(description="an opted-out number's suppression entry")
    summaries_frozen: int = Field(
        description="completed campaigns' summaries frozen before erasing"
    )


class ConsentEventView(BaseModel):
    model_config = {"populate_by_name": True}

    id: str
    from_: ConsentState | None = Field(None, alias="from")
    to: ConsentState
    source: str
    at: datetime | None = Field(None, json_schema_extra={"format": "date-time"})
    evidence: str | None = None

    @field_serializer("at")
    def _at(self, at: datetime | None) -> str | None:
        # Python's ISO form ("+00:00"), as the history has always been sent.
        return at.isoformat() if at else None


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


@router.route(
    "POST",
    "/v1/users",
    Contract(
        summary="Create a user",
        tag=Tag.USERS,
        request=UserCreate,
        response=User,
        status=201,
        errors=(409,),
    ),
)
def post_user(request: ApiRequest, context: ApiContext) -> User:
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
    return user


@router.route(
    "GET",
    "/v1/users",
    Contract(
        summary="List users",
        tag=Tag.USERS,
        response=Page[User],
        query=(QueryParam("consent_state", "OPT_IN, OPT_OUT or STOP"), *PAGING),
        errors=(400,),
    ),
)
def list_users(request: ApiRequest, context: ApiContext) -> Page[User]:
    state = request.query.get("consent_state")
    if state and state not in ConsentState.__members__:
        raise ApiError(
            400,
            "invalid_query",
            f"consent_state must be one of {', '.join(ConsentState)}",
        )
    users = every_user(context.db, ConsentState(state) if state else None)
    return paged(request, users, as_is)


def load_user(context: ApiContext, phone: str) -> User:
    user = read_user(context.db, phone)
    if user is None:
        raise not_found("user")
    return user


@router.route(
    "GET",
    "/v1/users/{phone}",
    Contract(summary="Read a user", tag=Tag.USERS, response=User, errors=(404, 422)),
)
def get_user(request: ApiRequest, context: ApiContext) -> User:
    return load_user(context, phone_param(request, context))


@router.route(
    "PATCH",
    "/v1/users/{phone}",
    Contract(
        summary="Merge attributes (null deletes a key)",
        tag=Tag.USERS,
        request=UserPatch,
        response=User,
        errors=(404, 409),
    ),
)
def patch_user_attributes(request: ApiRequest, context: ApiContext) -> User:
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
    return user


@router.route(
    "DELETE",
    "/v1/users/{phone}",
    Contract(
        summary=(
            "Erase the number everywhere (profile, consent history, messages,"
            " inbound, events, unmatched receipts); an opted-out number keeps only"
            " a keyed-hash suppression entry. Idempotent; says what was erased"
        ),
        tag=Tag.USERS,
        response=ErasureReport,
        errors=(404, 422),
    ),
)
def delete_user(request: ApiRequest, context: ApiContext) -> ErasureReport:
    """Erase the number everywhere (docs/architecture.md §3); say what went.

    Idempotent: a retry after a failure halfway erases what is left, and a
    second call on an erased number answers 404 unless something remained.
    """
    phone = phone_param(request, context)
    retention = timedelta(days=context.core.message_retention_days)
    report = erase_phone(context.db, phone, context.clock(), retention)
    if not any(report["erased"].values()):
        raise not_found("user")
    return ErasureReport(phone=mask_phone(phone), **report)


@router.route(
    "PUT",
    "/v1/users/{phone}/consent",
    Contract(
        summary="Set consent with its source",
        tag=Tag.USERS,
        request=ConsentUpdate,
        response=User,
        errors=(404,),
    ),
)
def put_consent(request: ApiRequest, context: ApiContext) -> User:
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
    return load_user(context, phone)


def _event_body(entry: dict[str, Any]) -> ConsentEventView:
    return ConsentEventView.model_validate(entry)


@router.route(
    "GET",
    "/v1/users/{phone}/consent",
    Contract(
        summary="Consent history, newest first",
        tag=Tag.USERS,
        response=Page[ConsentEventView],
        query=PAGING,
        errors=(400, 404, 422),
    ),
)
def get_consent_history(
    request: ApiRequest, context: ApiContext
) -> Page[ConsentEventView]:
    """The consent history, newest first, paged by (at, id)."""
    phone = phone_param(request, context)
    load_user(context, phone)
    return paged(request, consent_history(context.db, phone), _event_body)
