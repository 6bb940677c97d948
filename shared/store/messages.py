"""The `messages` collection: the message document, its status ranks, and
every read and write of the collection.

A message stores only `status_rank`; its status is read off the rank. Ranks are
unique per status and only grow (a Firestore `Maximum` transform), so status
callbacks apply as blind writes: no read, no transaction, and a callback that
arrives late can never move a message backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud.firestore_v1.base_document import BaseDocumentReference
from google.cloud.firestore_v1.bulk_writer import BulkWriteFailure, BulkWriter
from google.cloud.firestore_v1.types.write import WriteResult
from pydantic import BaseModel, Field

from shared.platform.blind_update import blind_update
from shared.platform.bulk import (
    BulkCreateResult,
    create_all_if_absent,
    requeue_if_still_queued,
    write_in_batches,
)
from shared.platform.firestore import count_each, count_of, operations
from shared.platform.paging import Listing

T = TypeVar("T")

MESSAGES = "messages"


class MessageStatus(StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    UNDELIVERED = "UNDELIVERED"
    FAILED = "FAILED"
    DELIVERED = "DELIVERED"
    READ = "READ"
    SKIPPED = "SKIPPED"


# A positive delivery report outranks an earlier failure report: carriers send
# late DLRs, and a delivered receipt is the stronger evidence.
STATUS_RANK: dict[MessageStatus, int] = {
    MessageStatus.QUEUED: 10,
    MessageStatus.SENDING: 20,
    MessageStatus.SENT: 30,
    MessageStatus.UNDELIVERED: 40,
    MessageStatus.FAILED: 50,
    MessageStatus.DELIVERED: 60,
    MessageStatus.READ: 70,
    MessageStatus.SKIPPED: 90,
}
_STATUS_BY_RANK = {rank: status for status, rank in STATUS_RANK.items()}
# The rank every message starts at, and the one sweeps and re-plans look for.
QUEUED_RANK = STATUS_RANK[MessageStatus.QUEUED]

FINAL_STATUSES = frozenset(
    {
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
        MessageStatus.SKIPPED,
    }
)
# Statuses that mean Twilio accepted the message: it must never be sent again.
ACCEPTED_STATUSES = frozenset(
    {
        MessageStatus.SENT,
        MessageStatus.UNDELIVERED,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
    }
)


def rank_of(status: MessageStatus) -> int:
    return STATUS_RANK[status]


def status_of(rank: int) -> MessageStatus:
    return _STATUS_BY_RANK[rank]


def is_final(status: MessageStatus) -> bool:
    return status in FINAL_STATUSES


class Message(BaseModel):
    id: str
    campaign_id: str
    phone: str
    body: str
    encoding: str
    segments: int
    status_rank: int
    send_at: datetime
    generation: int = 0
    channel: str = "sms"
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None
    event_id: str | None = None
    first_in_campaign: bool = True
    provider_sid: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    attempt_id: str | None = None
    claimed_at: datetime | None = None
    lease_until: datetime | None = None
    held: bool = False
    skip_reason: str | None = None
    audit: list[dict[str, Any]] = Field(default_factory=list)
    receipts: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def status(self) -> MessageStatus:
        return status_of(self.status_rank)

    @classmethod
    def from_snapshot(cls, snapshot: firestore.DocumentSnapshot) -> Message:
        return cls.model_validate({**(snapshot.to_dict() or {}), "id": snapshot.id})


def message_ref(db: firestore.Client, message_id: str) -> firestore.DocumentReference:
    return db.collection(MESSAGES).document(message_id)


# ---------------------------------------------------------------- field values
# What a write puts in a field besides plain values: Firestore transforms.


def audit_append(entries: Iterable[Mapping[str, Any]]) -> Any:
    """Appends `entries` to the message's audit trail."""
    return firestore.ArrayUnion(list(entries))


def receipts_append(entries: Iterable[Mapping[str, Any]]) -> Any:
    return firestore.ArrayUnion(list(entries))


def rank_raised_to(status: MessageStatus) -> Any:
    """`status_rank` only grows: a blind write never moves a message back."""
    return firestore.Maximum(rank_of(status))


def incremented(by: int = 1) -> Any:
    return firestore.Increment(by)


# ---------------------------------------------------------------- one message


@dataclass(frozen=True)
class StoredMessage:
    """A message document as read, with the update time a conditional write
    expects to find."""

    id: str
    data: dict[str, Any]
    version: Any


def _stored(snapshot: firestore.DocumentSnapshot) -> StoredMessage:
    return StoredMessage(snapshot.id, snapshot.to_dict() or {}, snapshot.update_time)


def read_message(db: firestore.Client, message_id: str) -> StoredMessage | None:
    """The message and its version (counted: the send path's read)."""
    operations.add("reads")
    snapshot = message_ref(db, message_id).get()
    return _stored(snapshot) if snapshot.exists else None


def get_message(db: firestore.Client, message_id: str) -> Message | None:
    snapshot = message_ref(db, message_id).get()
    return Message.from_snapshot(snapshot) if snapshot.exists else None


def update_if_unchanged(
    db: firestore.Client, message_id: str, version: Any, fields: Mapping[str, Any]
) -> Any:
    """Update unless the message changed since `version`; its new version.

    Raises google.api_core.exceptions.FailedPrecondition if it changed.
    """
    operations.add("writes")
    option = db.write_option(last_update_time=version)
    return message_ref(db, message_id).update(dict(fields), option=option).update_time


def update(
    db: firestore.Client,
    message_id: str,
    fields: Mapping[str, Any],
    *,
    deadline: float | None = None,
) -> None:
    """A blind update (raises google.api_core.exceptions.NotFound if absent).

    With a `deadline` (seconds), the client's retries stop within it too: for a
    caller that must answer its own caller in time.
    """
    operations.add("writes")
    if deadline is None:
        blind_update(db, MESSAGES, message_id, fields)
        return
    blind_update(
        db,
        MESSAGES,
        message_id,
        fields,
        retry=Retry(timeout=deadline),
        timeout=deadline,
    )


# ---------------------------------------------------------------- creating


def create_if_absent(
    db: firestore.Client, docs: Sequence[tuple[str, Mapping[str, Any]]]
) -> BulkCreateResult:
    """Create the messages that do not exist yet, in bulk."""
    collection = db.collection(MESSAGES)
    return create_all_if_absent(
        db, [(collection.document(message_id), doc) for message_id, doc in docs]
    )


def create(db: firestore.Client, message_id: str, doc: Mapping[str, Any]) -> Any:
    """Create one message; its version, or None if it existed already."""
    operations.add("writes")
    try:
        return message_ref(db, message_id).create(dict(doc)).update_time
    except gexc.AlreadyExists:
        return None


def create_all_or_none(
    db: firestore.Client,
    docs: Sequence[tuple[str, Mapping[str, Any]]],
    merge_also: tuple[firestore.DocumentReference, Mapping[str, Any]],
) -> list[Any] | None:
    """Create every message and merge `merge_also` in one atomic commit.

    The versions of the messages in order, or None (nothing written) if one
    of the messages existed already.
    """
    batch = db.batch()
    for message_id, doc in docs:
        batch.create(message_ref(db, message_id), dict(doc))
    ref, fields = merge_also
    batch.set(ref, dict(fields), merge=True)
    try:
        results = batch.commit()
    except gexc.AlreadyExists:
        return None
    operations.add("writes", len(docs) + 1)
    # Results come in write order; the last one is `merge_also`'s.
    return [result.update_time for result in results[: len(docs)]]


def _waiting_to_send(data: Mapping[str, Any]) -> bool:
    return data.get("status_rank") == QUEUED_RANK and not data.get("held")


def tasks_of_still_queued(
    db: firestore.Client,
    message_ids: Iterable[str],
    task_for: Callable[[str, Mapping[str, Any], Any], T],
) -> list[T]:
    """Re-enqueue-if-still-queued: the send tasks of the messages among
    `message_ids` still QUEUED and not held, each from its stored document."""
    collection = db.collection(MESSAGES)
    refs = [collection.document(i) for i in message_ids]
    return requeue_if_still_queued(db, refs, _waiting_to_send, task_for)


# ---------------------------------------------------------------- queries


def _where(field_path: str, op: str, value: object) -> firestore.FieldFilter:
    return firestore.FieldFilter(field_path, op, value)


def _of_campaign(db: firestore.Client, campaign_id: str) -> firestore.Query:
    return db.collection(MESSAGES).where(
        filter=_where("campaign_id", "==", campaign_id)
    )


def count_sent_to_since(db: firestore.Client, phone: str, since: datetime) -> int:
    """Messages sent to `phone` since `since` (frequency caps)."""
    return count_of(
        db.collection(MESSAGES)
        .where(filter=_where("phone", "==", phone))
        .where(filter=_where("sent_at", ">=", since))
    )


def id_by_provider_sid(db: firestore.Client, sid: str) -> str | None:
    operations.add("reads")
    query = db.collection(MESSAGES).where(filter=_where("provider_sid", "==", sid))
    found = list(query.limit(1).stream())
    return found[0].id if found else None


def ids_holding_sid(db: firestore.Client, sid: str) -> list[str]:
    """The ids of (at most two) messages that recorded `sid`."""
    operations.add("reads")
    query = db.collection(MESSAGES).where(filter=_where("provider_sid", "==", sid))
    return [snapshot.id for snapshot in query.limit(2).stream()]


def of_event(db: firestore.Client, event_id: str, limit: int) -> list[StoredMessage]:
    """The messages an event caused (any delivery of it), up to `limit`."""
    query = db.collection(MESSAGES).where(filter=_where("event_id", "==", event_id))
    return [_stored(s) for s in query.limit(limit).stream()]


def campaign_messages(
    db: firestore.Client,
    campaign_id: str,
    *,
    status: MessageStatus | None = None,
    phone: str | None = None,
) -> Listing[Message]:
    """A campaign's messages (of one status, to one phone, if given), by id."""
    collection = db.collection(MESSAGES)
    query = collection.where(filter=_where("campaign_id", "==", campaign_id))
    if status is not None:
        query = query.where(filter=_where("status_rank", "==", rank_of(status)))
    if phone is not None:
        query = query.where(filter=_where("phone", "==", phone))
    return Listing(query, collection, Message.from_snapshot)


def messages_to(db: firestore.Client, phone: str) -> Listing[Message]:
    """One phone's messages across campaigns, newest created first."""
    collection = db.collection(MESSAGES)
    query = collection.where(filter=_where("phone", "==", phone))
    return Listing(query, collection, Message.from_snapshot, newest_by="created_at")


# ---------------------------------------------------------------- pages


PAGE = 500


def _pages(query: firestore.Query) -> Iterator[list[StoredMessage]]:
    # Each page changes the documents that matched, so the next page is the
    # same query again, until it comes back short.
    while True:
        page = list(query.limit(PAGE).stream())
        operations.add("reads", len(page))
        if page:
            yield [_stored(snapshot) for snapshot in page]
        if len(page) < PAGE:
            return


def pages_held(db: firestore.Client, campaign_id: str) -> Iterator[list[StoredMessage]]:
    """The campaign's held QUEUED messages, a page at a time; each page must
    be taken out of the selection before the next is read."""
    return _pages(
        _of_campaign(db, campaign_id)
        .where(filter=_where("held", "==", True))
        .where(filter=_where("status_rank", "==", QUEUED_RANK))
    )


def pages_queued(
    db: firestore.Client, campaign_id: str
) -> Iterator[list[StoredMessage]]:
    """The campaign's QUEUED messages, a page at a time (as `pages_held`)."""
    return _pages(
        _of_campaign(db, campaign_id).where(
            filter=_where("status_rank", "==", QUEUED_RANK)
        )
    )


def write_if_unchanged(
    db: firestore.Client,
    page: Sequence[StoredMessage],
    changes: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Update each message unless it changed since read; return new versions."""
    versions: dict[str, Any] = {}

    def on_result(
        ref: BaseDocumentReference, result: WriteResult, _: BulkWriter
    ) -> None:
        versions[ref.id] = result.update_time

    def on_error(failure: BulkWriteFailure, _: BulkWriter) -> bool:
        # FAILED_PRECONDITION: a sender got there first; leave that message.
        return failure.code != 9 and failure.attempts < 5

    writer = db.bulk_writer()
    writer.on_write_result(on_result)
    writer.on_write_error(on_error)
    for message in page:
        option = db.write_option(last_update_time=message.version)
        writer.update(
            message_ref(db, message.id), dict(changes[message.id]), option=option
        )
    writer.close()
    operations.add("writes", len(page))
    return versions


# ---------------------------------------------------------------- sweeps


def stuck_sending(
    db: firestore.Client, now: datetime, limit: int
) -> list[StoredMessage]:
    """SENDING messages whose lease expired before `now`."""
    query = (
        db.collection(MESSAGES)
        .where(filter=_where("status_rank", "==", rank_of(MessageStatus.SENDING)))
        .where(filter=_where("lease_until", "<", now))
        .limit(limit)
    )
    return [_stored(snapshot) for snapshot in query.stream()]


def stranded_queued(
    db: firestore.Client, cutoff: datetime, limit: int
) -> list[StoredMessage]:
    """QUEUED messages, not held, whose send time is before `cutoff`."""
    query = (
        db.collection(MESSAGES)
        .where(filter=_where("held", "==", False))
        .where(filter=_where("status_rank", "==", rank_of(MessageStatus.QUEUED)))
        .where(filter=_where("send_at", "<", cutoff))
        .limit(limit)
    )
    page = list(query.stream())
    operations.add("reads", max(1, len(page)))
    return [_stored(snapshot) for snapshot in page]


# ---------------------------------------------------------------- counts

# Below every timestamp: `sent_at >= EPOCH` selects the messages Twilio accepted.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def count_unsent(db: firestore.Client, campaign_id: str) -> int:
    """The campaign's messages still QUEUED or SENDING."""
    unsent = [rank_of(MessageStatus.QUEUED), rank_of(MessageStatus.SENDING)]
    return count_of(
        _of_campaign(db, campaign_id).where(filter=_where("status_rank", "in", unsent))
    )


def any_sent_after(db: firestore.Client, campaign_id: str, after: datetime) -> bool:
    """Whether a message of the campaign is SENT (no final status yet) and was
    sent by the sender after `after`, or reported sent by a callback after it (a
    send that was ambiguous to the sender has only the callback's time)."""
    sent = _of_campaign(db, campaign_id).where(
        filter=_where("status_rank", "==", rank_of(MessageStatus.SENT))
    )
    counts = count_each(
        {
            field: sent.where(filter=_where(field, ">", after))
            for field in ("sent_at", "sent_reported_at")
        }
    )
    return any(counts.values())


def count_by_status(db: firestore.Client, campaign_id: str) -> dict[str, int]:
    """Messages per status, counted side by side."""
    return count_each(
        {
            status.value: _of_campaign(db, campaign_id).where(
                filter=_where("status_rank", "==", rank)
            )
            for status, rank in STATUS_RANK.items()
        }
    )


def count_by_skip_reason(
    db: firestore.Client, campaign_id: str, reasons: Iterable[str]
) -> dict[str, int]:
    return count_each(
        {
            reason: _of_campaign(db, campaign_id).where(
                filter=_where("skip_reason", "==", reason)
            )
            for reason in reasons
        }
    )


def count_by_error_code(
    db: firestore.Client,
    campaign_id: str,
    statuses: Iterable[MessageStatus],
    codes: Iterable[str],
) -> dict[str, int]:
    """Messages in one of `statuses` per error code among `codes`."""
    ranks = [rank_of(status) for status in statuses]
    return count_each(
        {
            code: _of_campaign(db, campaign_id)
            .where(filter=_where("status_rank", "in", ranks))
            .where(filter=_where("error_code", "==", code))
            for code in codes
        }
    )


@dataclass(frozen=True)
class SentTotals:
    sent: int
    segments: int
    first: datetime | None
    last: datetime | None


def _edge_send(query: firestore.Query, direction: str) -> datetime | None:
    operations.add("reads")
    edge = query.order_by("sent_at", direction=direction).limit(1)
    for snapshot in edge.select(["sent_at"]).stream():
        sent_at: datetime = snapshot.get("sent_at")
        return sent_at
    return None


def sent_totals(db: firestore.Client, campaign_id: str) -> SentTotals:
    """Messages sent and their segments (one aggregation), first and last send."""
    sent = _of_campaign(db, campaign_id).where(filter=_where("sent_at", ">=", EPOCH))
    operations.add("reads")
    aggregation: Any = sent.count(alias="sent")
    aggregation = aggregation.sum("segments", alias="segments")
    values = {result.alias: result.value for result in aggregation.get()[0]}
    return SentTotals(
        sent=int(values["sent"]),
        segments=int(values["segments"] or 0),
        first=_edge_send(sent, firestore.Query.ASCENDING),
        last=_edge_send(sent, firestore.Query.DESCENDING),
    )


def sent_at_of(db: firestore.Client, message_ids: Sequence[str]) -> dict[str, datetime]:
    """The send time of each message among `message_ids` that was sent."""
    refs = [db.collection(MESSAGES).document(i) for i in message_ids]
    sent: dict[str, datetime] = {}
    for snapshot in db.get_all(refs, field_paths=["sent_at"]):
        operations.add("reads")
        sent_at = (snapshot.to_dict() or {}).get("sent_at")
        if sent_at is not None:
            sent[snapshot.id] = sent_at
    return sent


def sent_to_by(
    db: firestore.Client, campaign_id: str, phone: str, at: datetime
) -> bool:
    """Whether the campaign sent `phone` anything by `at`."""
    query = (
        _of_campaign(db, campaign_id)
        .where(filter=_where("phone", "==", phone))
        .where(filter=_where("sent_at", "<=", at))
    )
    return count_of(query) > 0


def recent_by_status_queries(
    db: firestore.Client, since: datetime
) -> dict[str, firestore.Query]:
    """Per status, the messages created since `since` (dashboard panels)."""
    recent = db.collection(MESSAGES).where(filter=_where("created_at", ">=", since))
    return {
        status.value: recent.where(filter=_where("status_rank", "==", rank))
        for status, rank in STATUS_RANK.items()
    }


# ---------------------------------------------------------------- SID claims
# provider_sids/{sid}: which message a Twilio SID found by reconciliation
# belongs to, so two reconcilers never hand one SID to two messages.

PROVIDER_SIDS = "provider_sids"


def _sid_ref(db: firestore.Client, sid: str) -> firestore.DocumentReference:
    return db.collection(PROVIDER_SIDS).document(sid)


def sid_claim(db: firestore.Client, sid: str) -> dict[str, Any] | None:
    """The claim on `sid`, read outside any transaction (None: unclaimed)."""
    operations.add("reads")
    snapshot = _sid_ref(db, sid).get()
    return (snapshot.to_dict() or {}) if snapshot.exists else None


def claim_sid(
    db: firestore.Client,
    message_id: str,
    sid: str,
    refusal: Callable[[Mapping[str, Any], Mapping[str, Any] | None], T | None],
    claim: Mapping[str, Any],
    update: Mapping[str, Any],
) -> T | None:
    """In one transaction: read the message and the claim on `sid`; unless
    `refusal(message fields, claim)` names a reason not to, create the claim
    and apply `update` to the message. The refusal, or None once claimed."""
    ref = message_ref(db, message_id)
    sid_ref = _sid_ref(db, sid)

    @firestore.transactional
    def take(transaction: firestore.Transaction) -> T | None:
        current = ref.get(transaction=transaction)
        held = sid_ref.get(transaction=transaction)
        operations.add("reads", 2)
        refused = refusal(
            current.to_dict() or {}, (held.to_dict() or {}) if held.exists else None
        )
        if refused is not None:
            return refused
        # create(): should the transaction ever lose its read lock, the commit
        # still fails rather than hand one SID to two messages.
        transaction.create(sid_ref, dict(claim))
        transaction.update(ref, dict(update))
        operations.add("writes", 2)
        return None

    outcome: T | None = take(db.transaction())
    return outcome


# ---------------------------------------------------------------- erasure


def _to_phone(db: firestore.Client, phone: str) -> firestore.Query:
    return db.collection(MESSAGES).where(
        filter=firestore.FieldFilter("phone", "==", phone)
    )


def campaign_ids_messaging(db: firestore.Client, phone: str) -> set[str]:
    """The campaigns with a message to `phone`."""
    return {
        str((snapshot.to_dict() or {}).get("campaign_id"))
        for snapshot in _to_phone(db, phone).select(["campaign_id"]).stream()
    }


def update_each_to_phone(
    db: firestore.Client,
    phone: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    batch_size: int,
) -> int:
    """Apply `change(document)` to every message to `phone`, a batch at a time.

    The change must take the message out of the query (clear its phone), so
    the loop ends; a retry after a crash halfway picks up where it stopped.
    """

    def write(
        batch: firestore.WriteBatch, snapshot: firestore.DocumentSnapshot
    ) -> None:
        batch.update(snapshot.reference, change(snapshot.to_dict() or {}))

    return write_in_batches(db, _to_phone(db, phone), write, batch_size)
