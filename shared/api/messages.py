"""Messages API and the health check."""

from __future__ import annotations

from shared.api.context import ApiContext
from shared.api.http import ApiError, ApiRequest, ApiResponse, Router, not_found
from shared.api.paging import newest_first, paged
from shared.api.users import phone_param
from shared.store import messages as message_store
from shared.store.messages import MessageStatus

router = Router()


@router.add("GET", "/v1/messages/{message_id}")
def read_message(request: ApiRequest, context: ApiContext) -> ApiResponse:
    message = message_store.get_message(context.db, request.path_params["message_id"])
    if message is None:
        raise not_found("message")
    return ApiResponse(200, message.to_api())


@router.add("GET", "/v1/campaigns/{campaign_id}/messages")
def list_campaign_messages(request: ApiRequest, context: ApiContext) -> ApiResponse:
    status = request.query.get("status")
    wanted: MessageStatus | None = None
    if status:
        try:
            wanted = MessageStatus(status.upper())
        except ValueError as exc:
            raise ApiError(400, "invalid_status", f"unknown status {status}") from exc
    phone = request.query.get("phone")
    query, collection = message_store.page_query(
        context.db,
        campaign_id=request.path_params["campaign_id"],
        status=wanted,
        # Ids carry no readable phone, so one recipient is found by this filter.
        phone=phone_param(request, context, phone) if phone else None,
    )
    return ApiResponse(200, paged(request, query, collection, message_store.to_api))


@router.add("GET", "/v1/users/{phone}/messages")
def list_user_messages(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """One contact's messages across campaigns, newest first."""
    query, collection = message_store.page_query(
        context.db, phone=phone_param(request, context)
    )
    page = newest_first(request, query, collection, "created_at", message_store.to_api)
    return ApiResponse(200, page)


@router.add("GET", "/healthz")
def healthz(request: ApiRequest, context: ApiContext) -> ApiResponse:
    try:
        context.db.collection("_health").document("ping").get(timeout=5)
    except Exception as exc:
        raise ApiError(503, "firestore_unreachable", str(exc)) from exc
    return ApiResponse(200, {"ok": True, "firestore": "reachable"})
