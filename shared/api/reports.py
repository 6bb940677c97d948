"""Reports API: campaign summaries, recent inbound, the dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from shared.api.context import ApiContext
from shared.api.http import (
    ApiRequest,
    Contract,
    Router,
    Tag,
    not_found,
)
from shared.api.paging import PAGING, Page, paged
from shared.campaigns.summary import CampaignSummary, campaign_summary
from shared.inbound.keywords import Classification
from shared.platform.firestore import Database, count_each
from shared.platform.logging import mask_phone
from shared.platform.shared_reads import SharedReads
from shared.store import campaigns as campaign_store
from shared.store import inbound as inbound_store
from shared.store import messages as message_store
from shared.store import users as user_store

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


def _inbound_item(data: dict[str, Any]) -> InboundMessage:
    phone = data.get("phone")
    return InboundMessage(
        id=data["id"],
        phone=mask_phone(phone) if phone else None,
        body=data.get("body") or "",
        classification=data.get("classification") or Classification.REPLY,
        received_at=data.get("received_at"),
        processed_at=data.get("processed_at"),
    )


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
    return paged(request, inbound_store.recent_inbound(context.db), _inbound_item)


# ---------------------------------------------------------------- dashboard


def build_dashboard(db: Database, now: datetime) -> Dashboard:
    since = now - DASHBOARD_WINDOW
    panels = {
        "users": user_store.by_consent_state_queries(db),
        "campaigns": campaign_store.by_status_queries(db),
        "messages": message_store.recent_by_status_queries(db, since),
        "inbound": inbound_store.received_since_by_classification_queries(
            db, since, [classification.value for classification in Classification]
        ),
    }
    # Every cell's count() at once: (panel, key) → count.
    counts = count_each(
        {
            (name, key): query
            for name, queries in panels.items()
            for key, query in queries.items()
        }
    )

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
    # About thirty count() queries: consoles polling at once share one set,
    # begun after each of them asked (never an older one).
    return _dashboards.read(
        "dashboard", lambda: build_dashboard(context.db, context.clock())
    )


_dashboards: SharedReads[Dashboard] = SharedReads()
