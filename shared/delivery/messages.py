"""Message ids, retention and the send task that carries a message."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from pydantic_core import to_jsonable_python

from shared.payloads import SendTaskBody
from shared.platform.config import core_settings
from shared.platform.privacy import recipient_key
from shared.platform.tasks import SendTask, task_name_for


def message_expire_at(final_at: datetime) -> datetime:
    """When a message's TTL policy deletes it: MESSAGE_RETENTION_DAYS after
    its final status (docs/architecture.md §3). Written in the same update that
    sets the status, so retention costs no extra write."""
    days = core_settings().message_retention_days
    return final_at + timedelta(days=days)


def message_id_for(campaign_id: str, phone: str, event_id: str | None = None) -> str:
    """Deterministic, so a retried fan-out finds the message it already made.

    The phone appears only as its keyed hash (docs/architecture.md §3): the id
    rides in task names and callback URLs, which platform logs record.
    """
    base = f"{campaign_id}_{recipient_key(phone)}"
    return f"{base}_{event_id}" if event_id else base


# What a send task carries of its message, so the sender need not read it.
TASK_FIELDS = (
    "campaign_id",
    "phone",
    "body",
    "encoding",
    "segments",
    "channel",
    "content_sid",
    "content_variables",
    "event_id",
    "send_at",
    "generation",
)


def encode_version(update_time: Any) -> str:
    """A document update time as text, keeping its nanoseconds."""
    if hasattr(update_time, "rfc3339"):
        return str(update_time.rfc3339())
    return str(update_time.isoformat())


def decode_version(text: str) -> DatetimeWithNanoseconds:
    return DatetimeWithNanoseconds.from_rfc3339(text)


def send_task(
    message_id: str,
    data: Mapping[str, Any],
    version: Any | None,
    *,
    reconcile: bool = False,
    name_suffix: str = "",
) -> SendTask:
    """The Cloud Task that sends a message at its `send_at`."""
    generation = int(data.get("generation", 0))
    body = SendTaskBody(
        message_id=message_id,
        version=encode_version(version) if version is not None else None,
        reconcile=reconcile,
        message=(
            to_jsonable_python({k: data.get(k) for k in TASK_FIELDS})
            if version is not None
            else None
        ),
    )
    return SendTask(
        name=task_name_for(message_id, generation) + name_suffix,
        body=body.model_dump(mode="json", exclude_none=True),
        schedule_time=data["send_at"],
    )
