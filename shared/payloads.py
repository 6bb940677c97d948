"""Pub/Sub message bodies: one pydantic model per topic (DESIGN §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class CampaignLaunch(BaseModel):
    campaign_id: str
    launch_id: str


class RecipientBatch(BaseModel):
    campaign_id: str
    launch_id: str
    batch_no: int = Field(ge=0)
    phones: list[str] = Field(max_length=500)


class StatusCallback(BaseModel):
    """A Twilio status callback: its form parameters, as received."""

    params: dict[str, str]
    query: dict[str, str] = Field(default_factory=dict)
    received_at: datetime
    idempotency_token: str | None = None


class InboundWebhook(BaseModel):
    """A Twilio inbound message: its form parameters, as received."""

    params: dict[str, str]
    received_at: datetime


class IngestedEvent(BaseModel):
    event_id: str
    type: str
    phone: str
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime
