"""Ingesting events: parse a posted body, validate each event, store it, publish it.

Store first, then publish. Each accepted event is created as
`events/{event_id}` with status `received`; the created ones are then
published to `events`, and the event_router records its outcome on the same
document (status `matched` or `unmatched`). `create()` is the duplicate check:
an event_id that already exists is accepted and ignored.

A crash or error between store and publish cannot strand an event, as long as
the caller retries (any failure answers 503): the retried event finds its
document still `received`, which means the router has never recorded it, so it
is published again. An event the router has recorded is never published twice.
Publishing an event that was in fact published already is harmless, because
the router is idempotent (deterministic message ids, create-only writes).
This keeps ingestion at one write per event, with no `published` flag to flip.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.audience.phones import InvalidPhone, normalize_phone
from shared.audience.segments import (
    SegmentDefinitionError,
    validate_properties_definition,
)
from shared.audience.users import InvalidAttributes, check_attributes
from shared.payloads import IngestedEvent
from shared.platform.clock import as_utc
from shared.platform.firestore import Database
from shared.platform.pubsub import Publisher, Topic
from shared.store.campaigns import Trigger
from shared.store.events import (
    EventStatus,
    EventWriter,
    EventWritesFailed,
    events_with_status,
    new_event_doc,
)

MAX_EVENTS_PER_REQUEST = 500
MAX_PROPERTIES_BYTES = 16 * 1024
# A full batch of the largest events, plus room for the other fields.
MAX_BODY_BYTES = MAX_EVENTS_PER_REQUEST * (MAX_PROPERTIES_BYTES + 1024)
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
# Event ids become document ids and parts of message ids and task names, so
# they keep to characters that are safe in all three.
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
EVENT_FIELDS = frozenset({"event_id", "type", "phone", "properties", "occurred_at"})
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    }
)
# An event still `received` at its `republish_at` counts as lost (its publish
# failed and the caller did not retry): the scheduler publishes it again and
# moves `republish_at` on by as much. It must be due once per interval, not
# on every tick: an event merely waiting in the router's backlog is not lost,
# and a copy per tick would add to that very backlog.
REPUBLISH_AFTER = timedelta(minutes=2)


class InvalidEvent(ValueError):
    """One event that cannot be accepted; the rest of its batch still is."""


class EventBodyError(ValueError):
    """A body that holds no readable events at all (HTTP 400)."""


class TooManyEvents(ValueError):
    """More events than one request may carry (HTTP 413)."""


class EventsUnavailable(RuntimeError):
    """Storing or publishing failed; the caller should retry the batch (503)."""


# ---------------------------------------------------------------- the body


@dataclass(frozen=True)
class UnreadableLine:
    """An NDJSON line that is not JSON: rejected alone, at its index."""

    error: str


def parse_event_body(body: bytes, content_type: str) -> list[Any]:
    """The raw events of a body: one object, a JSON list, or NDJSON."""
    if content_type in NDJSON_TYPES:
        items = _ndjson_items(body)
    else:
        items = _json_items(body)
    if not items:
        raise EventBodyError("the body holds no events")
    if len(items) > MAX_EVENTS_PER_REQUEST:
        raise TooManyEvents(
            f"{len(items)} events; a request may carry at most {MAX_EVENTS_PER_REQUEST}"
        )
    return items


def _json_items(body: bytes) -> list[Any]:
    try:
        data = json.loads(body)
    except RecursionError as exc:
        raise EventBodyError("the body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        if _looks_like_ndjson(body):
            return _ndjson_items(body)
        raise EventBodyError(f"body is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise EventBodyError("expected an event object, a list of events, or NDJSON")


def _lines(body: bytes) -> list[bytes]:
    return [line for line in body.splitlines() if line.strip()]


def _looks_like_ndjson(body: bytes) -> bool:
    lines = _lines(body)
    if len(lines) < 2:
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def _ndjson_items(body: bytes) -> list[Any]:
    items: list[Any] = []
    for line in _lines(body):
        try:
            items.append(json.loads(line))
        except RecursionError:
            items.append(UnreadableLine("line is nested too deeply"))
        except (ValueError, UnicodeDecodeError) as exc:
            items.append(UnreadableLine(f"line is not valid JSON: {exc}"))
    return items


# ---------------------------------------------------------------- one event


def validate_event(raw: Any, now: datetime, default_region: str) -> IngestedEvent:
    """The event as it will be stored and published; raises InvalidEvent."""
    if isinstance(raw, UnreadableLine):
        raise InvalidEvent(raw.error)
    if not isinstance(raw, Mapping):
        raise InvalidEvent("an event must be a JSON object")
    unknown = sorted(str(key) for key in raw if key not in EVENT_FIELDS)
    if unknown:
        raise InvalidEvent(f"unknown field {unknown[0]!r}")
    return IngestedEvent(
        event_id=_event_id(raw.get("event_id")),
        type=_event_type(raw.get("type")),
        phone=_phone(raw.get("phone"), default_region),
        properties=_properties(raw.get("properties")),
        occurred_at=_occurred_at(raw.get("occurred_at"), now),
    )


def new_event_id() -> str:
    return uuid.uuid4().hex


def _event_id(value: Any) -> str:
    if value is None:
        return new_event_id()
    if not isinstance(value, str) or not EVENT_ID.match(value):
        raise InvalidEvent(
            "event_id: 1-128 characters of letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    return value


def is_event_type(value: Any) -> bool:
    return isinstance(value, str) and EVENT_TYPE.match(value) is not None


def _event_type(value: Any) -> str:
    if value is None:
        raise InvalidEvent("type: required")
    if not is_event_type(value):
        raise InvalidEvent(
            "type: a lower-case identifier of at most 64 characters "
            "(letters, digits, '_', '.', '-'), e.g. order.shipped"
        )
    return str(value)


def _phone(value: Any, default_region: str) -> str:
    if value is None:
        raise InvalidEvent("phone: required")
    try:
        return normalize_phone(value, default_region)
    except InvalidPhone as exc:
        raise InvalidEvent(f"phone: {exc}") from exc


def _properties(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent("properties: must be a JSON object")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_PROPERTIES_BYTES:
        raise InvalidEvent(
            f"properties: {size} bytes serialized; at most {MAX_PROPERTIES_BYTES}"
        )
    try:
        # The same rules as user attributes: `where` reads them as DSL paths.
        check_attributes(value)
    except InvalidAttributes as exc:
        raise InvalidEvent(f"properties: {exc}") from exc
    return value


def _occurred_at(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise InvalidEvent("occurred_at: an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidEvent(f"occurred_at: not an ISO 8601 date-time: {exc}") from exc
    return as_utc(parsed)


def validate_trigger(trigger: Trigger) -> None:
    """A campaign trigger events can match; SegmentDefinitionError names the path."""
    if not is_event_type(trigger.event):
        raise SegmentDefinitionError(
            "trigger.event", "not an event type that ingestion accepts"
        )
    if trigger.where is None:
        return
    try:
        validate_properties_definition(trigger.where)
    except SegmentDefinitionError as exc:
        raise SegmentDefinitionError(
            "trigger.where" + exc.path.removeprefix("$"), exc.reason
        ) from exc


# ---------------------------------------------------------------- a batch


@dataclass(frozen=True)
class Rejection:
    index: int
    error: str


@dataclass
class IngestResult:
    # Aligned with the request's events: the (possibly generated) id of each
    # accepted event, None where the event was rejected.
    event_ids: list[str | None]
    duplicate_ids: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for event_id in self.event_ids if event_id is not None)


def ingest_events(
    db: Database,
    publisher: Publisher,
    items: Sequence[Any],
    now: datetime,
    default_region: str,
    retention: timedelta,
) -> IngestResult:
    """Validate, store and publish a batch; a bad event never sinks the rest."""
    store = EventStore(db, now, retention)
    ids: list[str | None] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(items):
        try:
            event = validate_event(raw, now, default_region)
        except InvalidEvent as exc:
            ids.append(None)
            rejected.append(Rejection(index, str(exc)))
            continue
        ids.append(event.event_id)
        store.add(event)
    created, existing = store.close()
    to_publish = created + unrouted_events(db, existing)
    try:
        publish_events(publisher, to_publish)
    except Exception as exc:
        # Stored but maybe unpublished: the retry finds them `received` and
        # publishes them again (see the module docstring).
        raise EventsUnavailable(f"publishing events failed: {exc}") from exc
    return IngestResult(ids, _duplicates(ids, existing), rejected)


def _duplicates(ids: Sequence[str | None], existing: set[str]) -> list[str]:
    """Ids stored before this request, or repeated within it."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for event_id in ids:
        if event_id is None:
            continue
        if event_id in seen or event_id in existing:
            duplicates.append(event_id)
        seen.add(event_id)
    return duplicates


def event_doc(
    event: IngestedEvent, now: datetime, retention: timedelta
) -> dict[str, Any]:
    return new_event_doc(event, now, now + retention, now + REPUBLISH_AFTER)


class EventStore:
    """Stores a batch of events, each created once (see the module docstring)."""

    def __init__(self, db: Database, now: datetime, retention: timedelta):
        self._now = now
        self._retention = retention
        self._added: dict[str, IngestedEvent] = {}
        self._writer = EventWriter(db)

    def add(self, event: IngestedEvent) -> None:
        if event.event_id in self._added:
            return
        self._added[event.event_id] = event
        self._writer.create(
            event.event_id, event_doc(event, self._now, self._retention)
        )

    def close(self) -> tuple[list[IngestedEvent], set[str]]:
        """Wait for every write: the events created, and the ids that existed."""
        try:
            created, existing = self._writer.close()
        except EventWritesFailed as exc:
            # Nothing is published: the retried batch publishes what was stored.
            raise EventsUnavailable(str(exc)) from exc
        return [e for i, e in self._added.items() if i in created], existing


def unrouted_events(db: Database, ids: Iterable[str]) -> list[IngestedEvent]:
    """Stored events the router has not recorded yet: their publish may be lost.

    They are published again as the stored version: the first write wins.
    """
    return events_with_status(db, ids, EventStatus.RECEIVED)


def publish_events(publisher: Publisher, events: Sequence[IngestedEvent]) -> None:
    """Publish with the attribute `type`, so subscriptions may filter on it."""
    by_type: dict[str, list[IngestedEvent]] = defaultdict(list)
    for event in events:
        by_type[event.type].append(event)
    for event_type, group in by_type.items():
        publisher.publish_many(Topic.EVENTS, group, type=event_type)
