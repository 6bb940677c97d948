"""Messages API and the health check."""

from __future__ import annotations

from google.cloud import firestore

from shared.api.context import ApiContext
from shared.api.http import ApiError, ApiRequest, ApiResponse, Router, not_found
from shared.api.paging import newest_first, paged
from shared.api.users import phone_param
from shared.store.messages import MESSAGES, Message, MessageStatus, message_ref, rank_of

router = Router()


@router.add("GET", "/v1/messages/{message_id}")
def read_message(request: ApiRequest, context: ApiContext) -> ApiResponse:
    snapshot = message_ref(context.db, request.path_params["message_id"]).get()
    if not snapshot.exists:
        raise not_found("message")
    return ApiResponse(200, Message.from_snapshot(snapshot).to_api())


@router.add("GET", "/v1/campaigns/{campaign_id}/messages")
def list_campaign_messages(request: ApiRequest, context: ApiContext) -> ApiResponse:
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
    return ApiResponse(
        200,
        paged(request, query, collection, lambda s: Message.from_snapshot(s).to_api()),
    )


@router.add("GET", "/v1/users/{phone}/messages")
def list_user_messages(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """One contact's messages across campaigns, newest first."""
    collection = context.db.collection(MESSAGES)
    query = collection.where(
        filter=firestore.FieldFilter("phone", "==", phone_param(request, context))
    )
    page = newest_first(
        request,
        query,
        collection,
        "created_at",
        lambda s: Message.from_snapshot(s).to_api(),
    )
    return ApiResponse(200, page)


@router.add("GET", "/healthz")
def healthz(request: ApiRequest, context: ApiContext) -> ApiResponse:
    try:
        context.db.collection("_health").document("ping").get(timeout=5)
    except Exception as exc:
        raise ApiError(503, "firestore_unreachable", str(exc)) from exc
    return ApiResponse(200, {"ok": True, "firestore": "reachable"})
