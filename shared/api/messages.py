"""Messages API and the health check."""

from __future__ import annotations

from google.cloud import firestore
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
from shared.api.paging import PAGING, Page, newest_first, paged
from shared.api.users import phone_param
from shared.delivery.messages import MESSAGES, Message, message_ref
from shared.delivery.status import MessageStatus, rank_of, status_of

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

    @classmethod
    def read(cls, snapshot: firestore.DocumentSnapshot) -> MessageView:
        return cls.of(Message.from_snapshot(snapshot))


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
    snapshot = message_ref(context.db, request.path_params["message_id"]).get()
    if not snapshot.exists:
        raise not_found("message")
    return MessageView.of(Message.from_snapshot(snapshot))


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
    collection = context.db.collection(MESSAGES)
    query = collection.where(
        filter=firestore.FieldFilter(
            "campaign_id", "==", request.path_params["campaign_id"]
        )
    )
    status = request.query.get("status")
    if status:
        try:
            rank = rank_of(MessageStatus(status.upper()))
        except ValueError as exc:
            raise ApiError(400, "invalid_status", f"unknown status {status}") from exc
        query = query.where(filter=firestore.FieldFilter("status_rank", "==", rank))
    phone = request.query.get("phone")
    if phone:
        # Ids carry no readable phone, so one recipient is found by this filter.
        query = query.where(
            filter=firestore.FieldFilter(
                "phone", "==", phone_param(request, context, phone)
            )
        )
    return paged(request, query, collection, MessageView.read)


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
    collection = context.db.collection(MESSAGES)
    query = collection.where(
        filter=firestore.FieldFilter("phone", "==", phone_param(request, context))
    )
    return newest_first(request, query, collection, "created_at", MessageView.read)


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
        context.db.collection("_health").document("ping").get(timeout=5)
    except Exception as exc:
        raise ApiError(503, "firestore_unreachable", str(exc)) from exc
    return Health(ok=True, firestore="reachable")
