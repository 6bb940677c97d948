"""Pub/Sub message bodies: one pydantic model per topic (docs/architecture.md §4),
and the readers of the Twilio webhook parameters the webhook payloads carry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class CampaignLaunch(BaseModel):
    campaign_id: str
    launch_id: str


class BatchRecipient(BaseModel):
    phone: str
    attributes: dict[str, Any] = Field(default_factory=dict)


class RecipientBatch(BaseModel):
    campaign_id: str
    launch_id: str
    batch_no: int = Field(ge=0)
    phones: list[str] = Field(max_length=500)
    # The evaluator already read these users; carrying their attributes spares
    # fan-out a second read of each. Without them, fan-out reads the users.
    recipients: list[BatchRecipient] | None = Field(None, max_length=500)


class SendTaskBody(BaseModel):
    """The body of a `message-sends` task.

    Beyond `message_id` it carries what the send needs (the rendered message)
    and `version`, the message's update time when the task was enqueued. The
    sender claims with that time as a precondition: if nothing touched the
    message since, the claim succeeds without reading it first; otherwise the
    sender reads the message and decides from what it finds.
    """

    message_id: str = Field(min_length=1, max_length=1500)
    version: str | None = None
    reconcile: bool = False
    message: dict[str, Any] | None = None


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


# Twilio sends the same value under old and new names (`SmsSid`/`MessageSid`,
# `SmsStatus`/`MessageStatus`); the newer name wins when both are present.


def message_sid(params: Mapping[str, str]) -> str | None:
    return params.get("MessageSid") or params.get("SmsSid") or None


def inbound_sid(params: Mapping[str, str]) -> str | None:
    return (
        params.get("MessageSid")
        or params.get("SmsMessageSid")
        or params.get("SmsSid")
        or None
    )


def message_status(params: Mapping[str, str]) -> str:
    return (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()


def error_code(params: Mapping[str, str]) -> str | None:
    code = (params.get("ErrorCode") or "").strip()
    return code or None


def params_digest(params: Mapping[str, str]) -> str:
    """A stable id for parameters that carry no SID (so a redelivery matches)."""
    canonical = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class IngestedEvent(BaseModel):
    event_id: str
    type: str
    phone: str
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime


IMPORT_CHUNK_ROWS = 2000


class ImportRow(BaseModel):
    """One validated contact row: phone in E.164, consent a ConsentState value."""

    phone: str
    row: int = Field(ge=1)
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None
    consent: str | None = None


class ImportChunk(BaseModel):
    """A chunk of `import-chunks`: rows of one import, each phone in one chunk."""

    import_id: str = Field(min_length=1, max_length=100)
    chunk_no: int = Field(ge=0)
    # The import's time: every chunk (and every redelivery) writes the same.
    imported_at: datetime
    rows: list[ImportRow] = Field(max_length=IMPORT_CHUNK_ROWS)
