"""Users API: create, read, consent."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
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
from shared.audience.consent import set_consent
from shared.audience.phones import InvalidPhone, normalize_phone
from shared.audience.users import (
    Consent,
    ConsentState,
    User,
    consent_event,
    record_consent_change,
    user_ref,
)

router = Router()


class UserCreate(BaseModel):
    model_config = {"extra": "forbid"}

    phone: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None
    consent_state: ConsentState = ConsentState.OPT_IN


class ConsentUpdate(BaseModel):
    model_config = {"extra": "forbid"}

    state: ConsentState
    source: str = Field("api", min_length=1, max_length=64)
    evidence: str | None = Field(None, max_length=500)


def phone_param(
    request: ApiRequest, context: ApiContext, raw: str | None = None
) -> str:
    try:
        return normalize_phone(
            raw or request.path_params["phone"], context.core.default_region
        )
    except InvalidPhone as exc:
        raise ApiError(
            422, "invalid_phone", str(exc), [{"field": "phone", "error": str(exc)}]
        ) from exc


def user_body(user: User) -> dict[str, Any]:
    return user.model_dump(mode="json")


@router.add("POST", "/v1/users")
def create_user(request: ApiRequest, context: ApiContext) -> ApiResponse:
    body = parse_body(request, UserCreate)
    phone = phone_param(request, context, body.phone)
    now = context.clock()
    user = User(
        phone=phone,
        attributes=body.attributes,
        timezone=body.timezone,
        consent=Consent(state=body.consent_state, updated_at=now, source="api"),
        created_at=now,
        updated_at=now,
    )
    batch = context.db.batch()
    batch.create(user_ref(context.db, phone), user.model_dump())
    record_consent_change(
        batch, context.db, phone, consent_event(None, body.consent_state, "api", now)
    )
    try:
        batch.commit()
    except gexc.AlreadyExists as exc:
        raise ApiError(409, "already_exists", f"user {phone} already exists") from exc
    return ApiResponse(201, user_body(user))


def load_user(context: ApiContext, phone: str) -> User:
    snapshot = user_ref(context.db, phone).get()
    if not snapshot.exists:
        raise not_found("user")
    return User.from_doc(snapshot.to_dict() or {})


@router.add("GET", "/v1/users/{phone}")
def get_user(request: ApiRequest, context: ApiContext) -> ApiResponse:
    return ApiResponse(
        200, user_body(load_user(context, phone_param(request, context)))
    )


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
