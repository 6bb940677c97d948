"""The Publisher port and its Pub/Sub adapter, plus the parser of push events.

The adapter uses google-cloud-pubsub; with PUBSUB_EMULATOR_HOST set the library
talks to the emulator, so local runs use the same code path.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from concurrent import futures
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from pydantic import BaseModel, ValidationError

from shared.platform.config import core_settings
from shared.platform.once import once


class Topic(StrEnum):
    CAMPAIGN_LAUNCHES = "campaign-launches"
    RECIPIENT_BATCHES = "recipient-batches"
    DELIVERY_RECEIPTS = "delivery-receipts"
    INBOUND_MESSAGES = "inbound-messages"
    EVENTS = "events"
    IMPORT_CHUNKS = "import-chunks"

    @property
    def dead_letter(self) -> str:
        return f"{self.value}-dlq"


class Publisher(Protocol):
    def publish(self, topic: Topic, payload: BaseModel, **attributes: str) -> None:
        """Publish one message and wait until the service has it."""

    def publish_many(
        self, topic: Topic, payloads: Sequence[BaseModel], **attributes: str
    ) -> None:
        """Publish several messages and wait until the service has all of them."""


# The gRPC errors the publisher library retries a publish on.
_RETRIED_PUBLISH_ERRORS = if_exception_type(
    gexc.Aborted,
    gexc.Cancelled,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.ServiceUnavailable,
    gexc.Unknown,
)


class PubSubPublisher:
    # Under Twilio's 15 s webhook timeout, so intake can still answer 5xx.
    def __init__(self, project: str, timeout_seconds: float = 10.0) -> None:
        self._project = project
        self._timeout = timeout_seconds
        self._client = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.002)
        )

    def publish(self, topic: Topic, payload: BaseModel, **attributes: str) -> None:
        # One message, one blocking Publish RPC: no batch, future and commit
        # thread per message (the batching client's cost when every batch
        # holds one message, as a webhook's does). Retries stay within the
        # timeout, the gRPC codes are the batching client's.
        message = pubsub_v1.types.PubsubMessage(
            data=payload.model_dump_json().encode(), attributes=attributes
        )
        self._client._gapic_publish(
            topic=self._client.topic_path(self._project, topic.value),
            messages=[message],
            retry=Retry(predicate=_RETRIED_PUBLISH_ERRORS, timeout=self._timeout),
            timeout=self._timeout,
        )

    def publish_many(
        self, topic: Topic, payloads: Sequence[BaseModel], **attributes: str
    ) -> None:
        path = self._client.topic_path(self._project, topic.value)
        pending = [
            self._client.publish(path, p.model_dump_json().encode(), **attributes)
            for p in payloads
        ]
        # Raises the first publish error, so the caller can answer 5xx or retry.
        for done in futures.as_completed(pending, timeout=self._timeout):
            done.result()


@once
def pubsub_publisher() -> PubSubPublisher:
    return PubSubPublisher(core_settings().gcp_project)


PayloadT = TypeVar("PayloadT", bound=BaseModel)


class PoisonMessage(ValueError):
    """A Pub/Sub message whose payload can never be processed."""


def decode_push_data(event_data: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The data and attributes of a Pub/Sub message inside a CloudEvent."""
    message = event_data.get("message") or {}
    raw = message.get("data") or ""
    return base64.b64decode(raw), dict(message.get("attributes") or {})


def parse_pubsub_payload(
    event_data: Mapping[str, Any], model: type[PayloadT]
) -> PayloadT:
    data, _ = decode_push_data(event_data)
    try:
        return model.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise PoisonMessage(f"{model.__name__}: {exc}") from exc
