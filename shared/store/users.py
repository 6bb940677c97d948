"""The `users` collection, each user's consent history, and `suppressions`.

A user document is keyed by its E.164 phone. `users/{phone}/consent_events`
is the append-only consent history. `suppressions/{key}` is what an erased,
opted-out number leaves: its consent only, keyed by a keyed hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from pydantic import BaseModel, Field, ValidationError

from shared.platform.bulk import delete_in_batches
from shared.platform.firestore import operations
from shared.platform.firestore_writes import auto_id, batch_create, batch_set
from shared.platform.logging import get_logger, mask_phone
from shared.platform.paging import Listing
from shared.platform.privacy import suppression_key

log = get_logger(__name__)

USERS = "users"
CONSENT_EVENTS = "consent_events"
SUPPRESSIONS = "suppressions"
# Consent source of a profile re-created over an erased number's suppression.
SUPPRESSION = "suppression"
# The field path of the document id (the phone) in a filter or an ordering.
DOCUMENT_ID = "__name__"

T = TypeVar("T")


class ConsentState(StrEnum):
    OPT_IN = "OPT_IN"
    OPT_OUT = "OPT_OUT"
    STOP = "STOP"


class Consent(BaseModel):
    state: ConsentState = ConsentState.OPT_IN
    updated_at: datetime | None = None
    source: str = "api"


class User(BaseModel):
    phone: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None
    consent: Consent = Field(default_factory=Consent)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_inbound_at: datetime | None = None
    # An erased profile of an opted-out number: only phone and consent remain,
    # so that no later import or POST can opt the number back in silently.
    suppressed: bool = False
    erased_at: datetime | None = None

    @classmethod
    def from_doc(cls, data: dict[str, Any]) -> User:
        return cls.model_validate(data)


def new_user(
    phone: str,
    attributes: dict[str, Any],
    timezone: str | None,
    state: ConsentState,
    source: str,
    now: datetime,
) -> User:
    return User(
        phone=phone,
        attributes=attributes,
        timezone=timezone,
        consent=Consent(state=state, updated_at=now, source=source),
        created_at=now,
        updated_at=now,
    )


def user_doc(user: User) -> dict[str, Any]:
    """The Firestore document of a live user (no suppression fields)."""
    return user.model_dump(exclude={"suppressed", "erased_at"})


def attribute_field(*names: str) -> str:
    """The escaped Firestore field path of `attributes.<names…>`."""
    return str(FieldPath("attributes", *names).to_api_repr())


def consent_event(
    previous: ConsentState | None,
    new: ConsentState,
    source: str,
    at: datetime,
    evidence: str | None = None,
) -> dict[str, Any]:
    """The document of one consent history entry."""
    return {
        "from": previous.value if previous else None,
        "to": new.value,
        "source": source,
        "at": at,
        "evidence": evidence,
    }


# ---------------------------------------------------------------- references


def users_collection(db: firestore.Client) -> firestore.CollectionReference:
    return db.collection(USERS)


def user_ref(db: firestore.Client, phone: str) -> firestore.DocumentReference:
    return users_collection(db).document(phone)


def suppression_ref(db: firestore.Client, phone: str) -> firestore.DocumentReference:
    """The entry an erased, opted-out number leaves: keyed by a keyed hash."""
    return db.collection(SUPPRESSIONS).document(suppression_key(phone))


def consent_events(db: firestore.Client, phone: str) -> firestore.CollectionReference:
    return user_ref(db, phone).collection(CONSENT_EVENTS)


def record_consent_change(
    writer: firestore.WriteBatch | firestore.Transaction,
    db: firestore.Client,
    phone: str,
    event: dict[str, Any],
) -> None:
    """Append to the user's consent history inside the caller's batch."""
    batch_set(writer, consent_events(db, phone).document(auto_id()), event)


# ---------------------------------------------------------------- reads


def get_user(db: firestore.Client, phone: str) -> User | None:
    operations.add("reads")
    snapshot = user_ref(db, phone).get()
    return User.from_doc(snapshot.to_dict() or {}) if snapshot.exists else None


def get_users(db: firestore.Client, phones: Sequence[str]) -> list[User]:
    """The stored users among `phones` (one batched read), in `phones`' order."""
    refs = [user_ref(db, phone) for phone in phones]
    operations.add("reads", len(refs))
    users = [User.from_doc(s.to_dict() or {}) for s in db.get_all(refs) if s.exists]
    # get_all answers in any order.
    order = {phone: i for i, phone in enumerate(phones)}
    return sorted(users, key=lambda user: order[user.phone])


def _suppressed(phone: str, snapshot: firestore.DocumentSnapshot) -> User | None:
    """An erased, opted-out number as a suppressed profile (consent only)."""
    if not snapshot.exists:
        return None
    data = snapshot.to_dict() or {}
    consent = Consent(
        state=ConsentState(data["state"]),
        updated_at=data.get("opted_out_at"),
        source=SUPPRESSION,
    )
    return User(phone=phone, consent=consent, suppressed=True)


def every_user(
    db: firestore.Client, consent_state: ConsentState | None = None
) -> Listing[User]:
    """The users (of one consent state, if given), by id."""
    collection = users_collection(db)
    query: firestore.Query = firestore.Query(collection)
    if consent_state is not None:
        query = collection.where(
            filter=firestore.FieldFilter("consent.state", "==", consent_state.value)
        )
    return Listing(query, collection, user_of_snapshot)


def user_of_snapshot(snapshot: firestore.DocumentSnapshot) -> User:
    return User.from_doc(snapshot.to_dict() or {})


def by_consent_state_queries(db: firestore.Client) -> dict[str, firestore.Query]:
    """Per consent state, the users in it (dashboard panel)."""
    users = users_collection(db)
    return {
        state.value: users.where(
            filter=firestore.FieldFilter("consent.state", "==", state.value)
        )
        for state in ConsentState
    }


# A filter pushed down to the users query: (field path, operator, value).
Filter = tuple[str, str, Any]


def users_query(
    db: firestore.Client, filters: Sequence[Filter], order_by: Sequence[str]
) -> firestore.Query:
    """The users query of a pushdown: filters, orderings, then the id."""
    users = users_collection(db)
    query = firestore.Query(users)
    for path, symbol, value in filters:
        if path == DOCUMENT_ID:
            value = users.document(value)
        query = query.where(filter=firestore.FieldFilter(path, symbol, value))
    for path in order_by:
        query = query.order_by(path)
    return query.order_by(DOCUMENT_ID)


def scan_users(
    db: firestore.Client,
    filters: Sequence[Filter],
    order_by: Sequence[str],
    page_size: int,
) -> Iterator[User]:
    """Every user the pushdown selects, in pages of `page_size` cut by cursors.

    Each page is consumed as a stream, so memory holds one document at a time
    whatever the page size; the page size only bounds how long one query runs.
    """
    query = users_query(db, filters, order_by)
    cursor: firestore.DocumentSnapshot | None = None
    while True:
        page = query.limit(page_size)
        if cursor is not None:
            page = page.start_after(cursor)
        read = 0
        for snapshot in page.stream():
            read += 1
            cursor = snapshot
            user = _scanned_user(snapshot)
            if user is not None:
                yield user
        operations.add("reads", max(read, 1))
        if read < page_size:
            return


def _snapshot_data(snapshot: firestore.DocumentSnapshot) -> dict[str, Any]:
    # to_dict() deep-copies the document, which costs more than reading it
    # (~0.2 ms a user, mostly copying timestamps); the scan only reads it, so
    # it takes the decoded data in place when the client exposes it.
    data = getattr(snapshot, "_data", None)
    return data if isinstance(data, dict) else (snapshot.to_dict() or {})


def _scanned_user(snapshot: firestore.DocumentSnapshot) -> User | None:
    try:
        return User.from_doc(_snapshot_data(snapshot))
    except ValidationError:
        # A document no writer of ours produces; skipping it beats failing a launch.
        log.warning("skipping malformed user document %s", mask_phone(snapshot.id))
        return None


def _consent_entry(snapshot: firestore.DocumentSnapshot) -> dict[str, Any]:
    return {**(snapshot.to_dict() or {}), "id": snapshot.id}


def consent_history(db: firestore.Client, phone: str) -> Listing[dict[str, Any]]:
    """The consent history's entries (each with its `id`), newest first."""
    events = consent_events(db, phone)
    return Listing(firestore.Query(events), events, _consent_entry, newest_by="at")


# ---------------------------------------------------------------- writes


def set_last_inbound(db: firestore.Client, phone: str, at: datetime) -> None:
    """Record when the user last wrote in; nothing for an unknown number."""
    try:
        user_ref(db, phone).update({"last_inbound_at": at})
    except gexc.NotFound:
        pass


def _consent_doc(consent: Consent) -> dict[str, Any]:
    return {
        "state": consent.state.value,
        "updated_at": consent.updated_at,
        "source": consent.source,
    }


class UserTransaction:
    """One user's document and consent history inside one transaction."""

    def __init__(
        self, db: firestore.Client, transaction: firestore.Transaction, phone: str
    ) -> None:
        self._db = db
        self._transaction = transaction
        self.phone = phone
        self._ref = user_ref(db, phone)

    def read(self) -> User | None:
        """The stored profile (live or suppressed), None if there is none."""
        snapshot = self._ref.get(transaction=self._transaction)
        return User.from_doc(snapshot.to_dict() or {}) if snapshot.exists else None

    def read_with_suppression(self) -> tuple[User | None, User | None]:
        """The stored profile (live or suppressed) and, when there is none, the
        number's suppression entry: both documents in one batched read."""
        refs = [self._ref, suppression_ref(self._db, self.phone)]
        found = {s.reference.path: s for s in self._transaction.get_all(refs)}
        profile, suppression = (found[ref.path] for ref in refs)
        if profile.exists:
            return User.from_doc(profile.to_dict() or {}), None
        return None, _suppressed(self.phone, suppression)

    def set(self, user: User) -> None:
        self._transaction.set(self._ref, user_doc(user))

    def create_with_consent(self, consent: Consent, now: datetime) -> None:
        """A profile that holds only the consent (e.g. a STOP from a stranger)."""
        self._transaction.create(
            self._ref,
            {
                "phone": self.phone,
                "attributes": {},
                "timezone": None,
                "consent": _consent_doc(consent),
                "created_at": now,
                "updated_at": now,
            },
        )

    def update_consent(self, consent: Consent, now: datetime) -> None:
        self._transaction.update(
            self._ref, {"consent": _consent_doc(consent), "updated_at": now}
        )

    def record_consent_change(self, event: dict[str, Any]) -> None:
        record_consent_change(self._transaction, self._db, self.phone, event)


def _profile_changes(
    attributes: Mapping[str, Any],
    now: datetime,
    timezone: str | None,
    set_timezone: bool,
) -> dict[str, Any]:
    changes: dict[str, Any] = {"updated_at": now}
    for name, value in attributes.items():
        changes[attribute_field(name)] = (
            firestore.DELETE_FIELD if value is None else value
        )
    if set_timezone:
        changes["timezone"] = timezone
    return changes


class ProfileEdit:
    """One user's profile, read, then updated only if unchanged since: two
    RPCs where a transaction takes three (begin, read, commit)."""

    def __init__(self, db: firestore.Client, phone: str) -> None:
        self._db = db
        self._ref = user_ref(db, phone)
        self._version: Any = None
        self._changes: dict[str, Any] | None = None

    def read(self) -> User | None:
        """The stored profile (live or suppressed), None if there is none."""
        snapshot = self._ref.get()
        self._version = snapshot.update_time
        return User.from_doc(snapshot.to_dict() or {}) if snapshot.exists else None

    def update_profile(
        self,
        attributes: Mapping[str, Any],
        now: datetime,
        timezone: str | None = None,
        set_timezone: bool = False,
    ) -> None:
        """Merge attributes (None deletes a key), maybe set the timezone."""
        self._changes = _profile_changes(attributes, now, timezone, set_timezone)

    def commit(self) -> bool:
        """Write the update unless the profile changed since it was read."""
        if self._changes is None:
            return True
        option = self._db.write_option(last_update_time=self._version)
        try:
            self._ref.update(self._changes, option=option)
        except (gexc.FailedPrecondition, gexc.NotFound):
            return False
        return True


# Attempts of a profile edit that finds the profile changed under it each time.
PROFILE_EDIT_ATTEMPTS = 5


def edit_profile(
    db: firestore.Client, phone: str, work: Callable[[ProfileEdit], T]
) -> T:
    """Run `work` over one user's profile, again if the profile changed
    between its read and its write; Aborted (a 503) if it keeps changing."""
    for _ in range(PROFILE_EDIT_ATTEMPTS):
        edit = ProfileEdit(db, phone)
        result = work(edit)
        if edit.commit():
            return result
    raise gexc.Aborted(f"profile of {mask_phone(phone)} kept changing")


def in_user_transaction(
    db: firestore.Client, phone: str, work: Callable[[UserTransaction], T]
) -> T:
    """Run `work` in a transaction over one user (retried on contention)."""

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> T:
        return work(UserTransaction(db, transaction, phone))

    result: T = apply(db.transaction())
    return result


# ---------------------------------------------------------------- bulk upserts


def suppression_states(
    db: firestore.Client, phones: Iterable[str]
) -> dict[str, ConsentState]:
    """The consent each erased, opted-out number left: one batched read."""
    by_key = {suppression_key(phone): phone for phone in phones}
    refs = [db.collection(SUPPRESSIONS).document(key) for key in by_key]
    found: dict[str, ConsentState] = {}
    for snapshot in db.get_all(refs, field_paths=["state"]):
        if snapshot.exists:
            state = (snapshot.to_dict() or {})["state"]
            found[by_key[snapshot.id]] = ConsentState(state)
    return found


def keep_suppression(
    db: firestore.Client, phone: str, consent: Consent, erased_at: datetime
) -> None:
    """Write the suppression entry of an opted-out number about to be erased."""
    suppression_ref(db, phone).set(
        {
            "state": consent.state.value,
            "source": consent.source,
            "opted_out_at": consent.updated_at,
            "erased_at": erased_at,
        }
    )


def delete_consent_history(db: firestore.Client, phone: str, batch_size: int) -> int:
    """Delete the user's consent history (erasure), a batch at a time; how many."""
    history = firestore.Query(consent_events(db, phone))
    return delete_in_batches(db, history, batch_size)


def delete_user(db: firestore.Client, phone: str) -> int:
    """Delete the user's profile; 1 if there was one, else 0."""
    profile = user_ref(db, phone)
    existed = int(profile.get().exists)
    profile.delete()
    return existed


@dataclass(frozen=True)
class StoredConsent:
    """A user's stored consent, and the update time a write may be bound to."""

    user: User
    read_at: Any


def stored_consents(
    db: firestore.Client, phones: Iterable[str]
) -> dict[str, StoredConsent]:
    """The consent (and suppression flag) of the users that exist among `phones`."""
    refs = [user_ref(db, phone) for phone in phones]
    return {
        snapshot.id: StoredConsent(
            User.model_validate({"phone": snapshot.id, **(snapshot.to_dict() or {})}),
            snapshot.update_time,
        )
        for snapshot in db.get_all(refs, field_paths=["consent", "suppressed"])
        if snapshot.exists
    }


class UsersChanged(RuntimeError):
    """A batch met users written meanwhile (or missing): read them again."""


class UserWriteFailed(RuntimeError):
    """Firestore refused a batch for a reason reading again will not cure."""


# Commit errors that mean "someone else wrote these users meanwhile".
_RACES = (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound, gexc.Aborted)
_SUPPRESSION_CLEARED = {
    "suppressed": firestore.DELETE_FIELD,
    "erased_at": firestore.DELETE_FIELD,
}


def translate_write_errors(work: Callable[..., T], *args: Any) -> T:
    """Run `work(*args)`, turning Firestore's errors into UsersChanged or
    UserWriteFailed."""
    try:
        return work(*args)
    except _RACES as exc:
        raise UsersChanged(str(exc)) from exc
    except gexc.GoogleAPICallError as exc:
        raise UserWriteFailed(str(exc)) from exc


class UserBatch:
    """Several users and their consent history, written in one atomic batch.

    Writes bound to a read (`read_at`) fail the whole batch if the user changed
    since: the caller reads again and decides again.
    """

    def __init__(self, db: firestore.Client) -> None:
        self.db = db
        self.batch = db.batch()

    def create(self, user: User) -> None:
        """A new user; the batch fails if the phone exists meanwhile."""
        batch_create(self.batch, user_ref(self.db, user.phone), user_doc(user))

    def replace_suppressed(self, user: User, read_at: Any) -> None:
        """A live profile over an erased number's suppressed one."""
        profile = {**user_doc(user), **_SUPPRESSION_CLEARED}
        option = self.db.write_option(last_update_time=read_at)
        self.batch.update(user_ref(self.db, user.phone), profile, option=option)

    def update(
        self,
        phone: str,
        attributes: Mapping[str, Any],
        timezone: str | None,
        consent: Consent | None,
        now: datetime,
        read_at: Any,
    ) -> None:
        """Merge attributes, set a timezone and consent if given."""
        changes: dict[str, Any] = {"updated_at": now}
        for name, value in attributes.items():
            changes[attribute_field(name)] = value
        if timezone:
            changes["timezone"] = timezone
        if consent is not None:
            changes["consent"] = _consent_doc(consent)
        option = self.db.write_option(last_update_time=read_at)
        self.batch.update(user_ref(self.db, phone), changes, option=option)

    def record_consent_change(self, phone: str, event: dict[str, Any]) -> None:
        record_consent_change(self.batch, self.db, phone, event)

    def commit(self) -> None:
        self.batch.commit()


# ---------------------------------------------------------------- histories


def consent_changes_to(
    db: firestore.Client, state: ConsentState, since: datetime, until: datetime
) -> Iterator[tuple[str, datetime, str | None]]:
    """(phone, at, source) of every change to `state` in [since, until].

    A collection-group query over consent histories: it reads only the
    matching entries, never all users.
    """
    changes = (
        db.collection_group(CONSENT_EVENTS)
        .where(filter=firestore.FieldFilter("to", "==", state.value))
        .where(filter=firestore.FieldFilter("at", ">=", since))
        .where(filter=firestore.FieldFilter("at", "<=", until))
        .select(["at", "source"])
    )
    for snapshot in changes.stream():
        operations.add("reads")
        user = snapshot.reference.parent.parent
        if user is None:
            continue
        entry = snapshot.to_dict() or {}
        yield user.id, entry["at"], entry.get("source")
