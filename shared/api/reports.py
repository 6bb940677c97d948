"""Reports API: campaign summaries, recent inbound, the dashboard."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore
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
from shared.api.paging import PAGING, Page, page_limit
from shared.campaigns.summary import CampaignSummary, campaign_summary
from shared.inbound.keywords import Classification
from shared.platform.firestore import count_each
from shared.platform.logging import mask_phone
from shared.store import campaigns as campaign_store
from shared.store import messages as message_store
from shared.store.inbound import INBOUND
from shared.store.users import USERS, ConsentState

router = Router()

DASHBOARD_WINDOW = timedelta(hours=24)


class InboundMessage(BaseModel):
    id: str
    phone: str | None = Field(default=None, description="masked: +1415***0100")
    body: str = Field(default="", description="the sender's own text")
    classification: Classification
    received_at: datetime | None = None
    processed_at: datetime | None = None


class InboundCounts(BaseModel):
    total: int
    by_classification: dict[str, int]


class Dashboard(BaseModel):
    generated_at: datetime
    window_hours: int
    users_by_consent_state: dict[str, int]
    campaigns_by_status: dict[str, int]
    messages_by_status: dict[str, int] = Field(
        description="messages created in the window, per status"
    )
    inbound: InboundCounts = Field(description="inbound received in the window")


@router.route(
    "GET",
    "/v1/campaigns/{campaign_id}/summary",
    Contract(
        summary="Campaign report (frozen once COMPLETED)",
        tag=Tag.REPORTS,
        response=CampaignSummary,
        errors=(404,),
    ),
)
def read_campaign_summary(request: ApiRequest, context: ApiContext) -> CampaignSummary:
    summary = campaign_summary(
        context.db, request.path_params["campaign_id"], context.clock()
    )
    if summary is None:
        raise not_found("campaign")
    return summary


# ---------------------------------------------------------------- inbound


def _inbound_item(snapshot: firestore.DocumentSnapshot) -> InboundMessage:
    data = snapshot.to_dict() or {}
    phone = data.get("phone")
    return InboundMessage(
        id=snapshot.id,
        phone=mask_phone(phone) if phone else None,
        body=data.get("body") or "",
        classification=data.get("classification") or Classification.REPLY,
        received_at=data.get("received_at"),
        processed_at=data.get("processed_at"),
    )


def _inbound_token(item: InboundMessage) -> str:
    at = item.received_at.isoformat() if item.received_at else ""
    return base64.urlsafe_b64encode(json.dumps([at, item.id]).encode()).decode()


def _inbound_cursor(
    collection: firestore.CollectionReference, token: str
) -> dict[str, Any]:
    try:
        at, inbound_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return {
            "received_at": datetime.fromisoformat(at),
            "__name__": collection.document(inbound_id),
        }
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ApiError(400, "invalid_page_token", "page_token is not valid") from exc


@router.route(
    "GET",
    "/v1/inbound",
    Contract(
        summary="Recent inbound, newest first, phones masked",
        tag=Tag.REPORTS,
        response=Page[InboundMessage],
        query=PAGING,
        errors=(400,),
    ),
)
def list_inbound(request: ApiRequest, context: ApiContext) -> Page[InboundMessage]:
    """The most recent inbound messages first, paged by (received_at, id)."""
    limit = page_limit(request)
    collection = context.db.collection(INBOUND)
    query = (
        collection.order_by("received_at", direction=firestore.Query.DESCENDING)
        .order_by("__name__", direction=firestore.Query.DESCENDING)
        .limit(limit + 1)
    )
    token = request.query.get("page_token")
    if token:
        query = query.start_after(_inbound_cursor(collection, token))
    items = [_inbound_item(snapshot) for snapshot in query.stream()]
    more = len(items) > limit
    items = items[:limit]
    return Page[InboundMessage](
        items=items, next_page_token=_inbound_token(items[-1]) if more else None
    )


# ---------------------------------------------------------------- dashboard


def _where(field_path: str, op: str, value: object) -> firestore.FieldFilter:
    return firestore.FieldFilter(field_path, op, value)


def dashboard_queries(
    db: firestore.Client, since: datetime
) -> dict[tuple[str, str], firestore.Query]:
    """(panel, key) → the query whose count() fills that cell."""
    users = db.collection(USERS)
    recent_inbound = db.collection(INBOUND).where(
        filter=_where("received_at", ">=", since)
    )
    queries: dict[tuple[str, str], firestore.Query] = {}
    for state in ConsentState:
        queries["users", state.value] = users.where(
            filter=_where("consent.state", "==", state.value)
        )
    for status, query in campaign_store.by_status_queries(db).items():
        queries["campaigns", status] = query
    for status, query in message_store.recent_by_status_queries(db, since).items():
        queries["messages", status] = query
    for classification in Classification:
        queries["inbound", classification.value] = recent_inbound.where(
            filter=_where("classification", "==", classification.value)
        )
    return queries


def build_dashboard(db: firestore.Client, now: datetime) -> Dashboard:
    counts = count_each(dashboard_queries(db, now - DASHBOARD_WINDOW))

    def panel(name: str) -> dict[str, int]:
        return {key: count for (group, key), count in counts.items() if group == name}

    inbound = panel("inbound")
    return Dashboard(
        generated_at=now,
        window_hours=int(DASHBOARD_WINDOW.total_seconds() // 3600),
        users_by_consent_state=panel("users"),
        campaigns_by_status=panel("campaigns"),
        messages_by_status=panel("messages"),
        inbound=InboundCounts(total=sum(inbound.values()), by_classification=inbound),
    )


@router.route(
    "GET",
    "/v1/dashboard",
    Contract(
        summary="Users, campaigns, and the last 24 h of messages and inbound",
        tag=Tag.REPORTS,
        response=Dashboard,
    ),
)
def read_dashboard(request: ApiRequest, context: ApiContext) -> Dashboard:
    return build_dashboard(context.db, context.clock())
