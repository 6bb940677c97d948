"""Messages API and the health check."""

from __future__ import annotations

from pydantic import BaseModel, computed_field

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    Contract,
    QueryParam,
    Router,
    Tag,
    not_found,
)
from shared.api.paging import PAGING, Page, paged
from shared.api.users import phone_param
from shared.platform.firestore import ping
from shared.store import messages as message_store
from shared.store.messages import Message, MessageStatus, status_of

router = Router()


class MessageView(Message):
    """A message as the API shows it: its document plus the derived status."""

    @computed_field(description="derived from status_rank")  # type: ignore[prop-decorator]
    @property
    def status(self) -> MessageStatus:
        return status_of(self.status_rank)

    @classmethod
    def of(cls, message: Message) -> MessageView:
        # The same fields, already validated: only the view's status is added.
        return cls.model_construct(message.model_fields_set, **dict(message))


class Health(BaseModel):
    ok: bool
    firestore: str


@router.route(
    "GET",
    "/v1/messages/{message_id}",
    Contract(
        summary="One message with its audit trail and receipts",
        tag=Tag.MESSAGES,
        response=MessageView,
        errors=(404,),
    ),
)
def read_message(request: ApiRequest, context: ApiContext) -> MessageView:
    message = message_store.get_message(context.db, request.path_params["message_id"])
    if message is None:
        raise not_found("message")
    return MessageView.of(message)


@router.route(
    "GET",
    "/v1/campaigns/{campaign_id}/messages",
    Contract(
        summary="A campaign's messages",
        tag=Tag.MESSAGES,
        response=Page[MessageView],
        query=(
            QueryParam("status", "a message status"),
            QueryParam("phone", "one recipient's message (E.164 or national)"),
            *PAGING,
        ),
        errors=(400,),
    ),
)
def list_campaign_messages(
    request: ApiRequest, context: ApiContext
) -> Page[MessageView]:
    status = request.query.get("status")
    wanted: MessageStatus | None = None
    if status:
        try:
            wanted = MessageStatus(status.upper())
        except ValueError as exc:
            raise ApiError(400, "invalid_status", f"unknown status {status}") from exc
    phone = request.query.get("phone")
    messages = message_store.campaign_messages(
        context.db,
        request.path_params["campaign_id"],
        status=wanted,
        # Ids carry no readable phone, so one recipient is found by this filter.
        phone=phone_param(request, context, phone) if phone else None,
    )
    return paged(request, messages, MessageView.of)


@router.route(
    "GET",
    "/v1/users/{phone}/messages",
    Contract(
        summary="A contact's messages across campaigns, newest first",
        tag=Tag.MESSAGES,
        response=Page[MessageView],
        query=PAGING,
        errors=(400, 422),
    ),
)
def list_user_messages(request: ApiRequest, context: ApiContext) -> Page[MessageView]:
    """One contact's messages across campaigns, newest first."""
    messages = message_store.messages_to(context.db, phone_param(request, context))
    return paged(request, messages, MessageView.of)


@router.route(
    "GET",
    "/healthz",
    Contract(
        summary="Liveness and Firestore reachability",
        tag=Tag.HEALTH,
        response=Health,
        errors=(503,),
        public=True,
    ),
)
def healthz(request: ApiRequest, context: ApiContext) -> Health:
    try:
        ping(context.db, timeout=5)
    except Exception as exc:
        raise ApiError(503, "firestore_unreachable", str(exc)) from exc
    return Health(ok=True, firestore="reachable")
