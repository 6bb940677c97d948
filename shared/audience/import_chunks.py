"""One chunk of an import, upserted and counted once (`contact_importer`).

A chunk is written in parts of PART_ROWS contacts. Each part is one atomic
batch: its users, their consent events and the part's marker
`imports/{id}/chunks/{n}/parts/{k}` with its counts. A redelivered chunk skips
the parts already written (their markers hold their counts), so a chunk cut
short by a crash resumes where it stopped and still counts each row once.
When every part is written, one batch creates the chunk marker
`imports/{id}/chunks/{n}` and adds the chunk's counts to the report with
increments: a marker that exists already means another delivery counted the
chunk, and nothing is added twice. That is one report write per chunk (of up
to 2,000 rows), not per row. The chunk that brings chunks_done to
chunks_planned marks the report COMPLETED, in a transaction.

Consent: a new user gets the row's `consent_state` (OPT_IN by default); an
existing user's consent changes only as `upserted_consent` allows (STOP never,
an erased number never back to OPT_IN); each change appends a consent event
with source "import" and the import id and row as evidence.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.audience.consent import upserted_consent
from shared.audience.erasure import suppressed_states
from shared.audience.import_files import Contact
from shared.audience.imports import (
    MAX_REPORTED_ERRORS,
    RETENTION,
    SOURCE,
    ImportStatus,
    contact_of,
    import_ref,
    row_error,
)
from shared.payloads import ImportChunk
from shared.store.users import (
    SUPPRESSION,
    Consent,
    ConsentState,
    User,
    attribute_field,
    consent_event,
    new_user,
    record_consent_change,
    user_doc,
    user_ref,
)

CHUNKS = "chunks"
PARTS = "parts"
# A batch holds at most 500 writes: a user and a consent event per row, and
# the part's marker.
PART_ROWS = 200
MAX_IN_FLIGHT = 8
COMMIT_ATTEMPTS = 3
# Commit errors that mean "someone else wrote these users meanwhile": read again.
_RACES = (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound, gexc.Aborted)
_SUPPRESSION_CLEARED = {
    "suppressed": firestore.DELETE_FIELD,
    "erased_at": firestore.DELETE_FIELD,
}


@dataclass
class ChunkOutcome:
    created: int = 0
    updated: int = 0
    failures: list[tuple[Contact, str]] = field(default_factory=list)
    # Whether the part met stored users, which decides how the next one starts.
    met_existing: bool = False

    def add(self, other: ChunkOutcome) -> None:
        self.created += other.created
        self.updated += other.updated
        self.failures.extend(other.failures)
        self.met_existing = self.met_existing or other.met_existing

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "failed": len(self.failures),
        }


class _Batch:
    """One atomic write of several contacts, decided from their stored state."""

    def __init__(self, db: firestore.Client, now: datetime, import_id: str) -> None:
        self.db = db
        self.now = now
        self.import_id = import_id
        self.batch = db.batch()
        self.outcome = ChunkOutcome()

    def add(
        self, contact: Contact, snapshot: firestore.DocumentSnapshot | None
    ) -> None:
        if snapshot is None or not snapshot.exists:
            self._create(contact, None)
            return
        self.outcome.met_existing = True
        current = User.model_validate(
            {"phone": contact.phone, **(snapshot.to_dict() or {})}
        )
        if current.suppressed:
            self._create(contact, current, snapshot.update_time)
        else:
            self._update(contact, current, snapshot.update_time)

    def add_over_suppression(self, contact: Contact, state: ConsentState) -> None:
        """A new profile for an erased number, keeping its opt-out."""
        consent = Consent(state=state, source=SUPPRESSION)
        current = User(phone=contact.phone, consent=consent, suppressed=True)
        self._record(contact, None, state, SUPPRESSION)
        self._create(contact, current, None)

    def _evidence(self, contact: Contact) -> str:
        return f"import {self.import_id} row {contact.row}"

    def _record(
        self,
        contact: Contact,
        previous: ConsentState | None,
        state: ConsentState,
        source: str = SOURCE,
    ) -> None:
        event = consent_event(
            previous, state, source, self.now, self._evidence(contact)
        )
        record_consent_change(self.batch, self.db, contact.phone, event)

    def _create(
        self, contact: Contact, current: User | None, read_at: Any = None
    ) -> None:
        """A new user, or a new profile for an erased (suppressed) number."""
        decided = upserted_consent(current, contact.consent)
        user = new_user(
            contact.phone,
            contact.attributes,
            contact.timezone,
            decided or ConsentState.OPT_IN,
            SOURCE,
            self.now,
        )
        ref = user_ref(self.db, contact.phone)
        if current is None or read_at is None:
            if decided is None and current is not None:
                user.consent = current.consent
            self.batch.create(ref, user_doc(user))
        else:
            if decided is None:
                user.consent = current.consent
            profile = {**user_doc(user), **_SUPPRESSION_CLEARED}
            option = self.db.write_option(last_update_time=read_at)
            self.batch.update(ref, profile, option=option)
        if decided is not None:
            self._record(contact, current.consent.state if current else None, decided)
        self.outcome.created += 1

    def _update(self, contact: Contact, current: User, read_at: Any) -> None:
        changes: dict[str, Any] = {"updated_at": self.now}
        for name, value in contact.attributes.items():
            changes[attribute_field(name)] = value
        if contact.timezone:
            changes["timezone"] = contact.timezone
        decided = upserted_consent(current, contact.consent)
        if decided is not None:
            changes["consent"] = {
                "state": decided.value,
                "updated_at": self.now,
                "source": SOURCE,
            }
            self._record(contact, current.consent.state, decided)
        # The precondition turns a concurrent change (a STOP arriving now) into
        # a failed commit that is read and decided again.
        option = self.db.write_option(last_update_time=read_at)
        self.batch.update(user_ref(self.db, contact.phone), changes, option=option)
        self.outcome.updated += 1


def _stored_states(
    db: firestore.Client, contacts: list[Contact]
) -> dict[str, firestore.DocumentSnapshot]:
    refs = [user_ref(db, contact.phone) for contact in contacts]
    return {
        snapshot.id: snapshot
        for snapshot in db.get_all(refs, field_paths=["consent", "suppressed"])
    }


def _marker(outcome: ChunkOutcome, now: datetime) -> dict[str, Any]:
    return {**outcome.counts(), "written_at": now, "expire_at": now + RETENTION}


def _commit(
    db: firestore.Client,
    contacts: list[Contact],
    now: datetime,
    import_id: str,
    read_first: bool,
    part_ref: firestore.DocumentReference | None,
) -> ChunkOutcome:
    """One atomic batch. Unread, every contact is created: if one exists the
    whole batch fails (AlreadyExists) and is decided again from a read."""
    snapshots = _stored_states(db, contacts) if read_first else {}
    # Erased, opted-out numbers: a batched read of their suppression entries,
    # so a re-import never opts one back in.
    suppressed = suppressed_states(db, {contact.phone for contact in contacts})
    batch = _Batch(db, now, import_id)
    for contact in contacts:
        snapshot = snapshots.get(contact.phone)
        state = suppressed.get(contact.phone)
        if state is not None and (snapshot is None or not snapshot.exists):
            batch.add_over_suppression(contact, state)
        else:
            batch.add(contact, snapshot)
    if part_ref is not None:
        batch.batch.set(part_ref, _marker(batch.outcome, now))
    batch.batch.commit()
    return batch.outcome


def write_contacts(
    db: firestore.Client,
    contacts: list[Contact],
    now: datetime,
    import_id: str,
    expect_new: bool = False,
    part_ref: firestore.DocumentReference | None = None,
) -> ChunkOutcome:
    """Write contacts atomically with their part marker, reading again after a
    race; a batch that keeps failing is split to isolate the bad rows.

    With `expect_new` the first attempt skips the read: on a fresh list most
    parts hold only new users, and the read costs about a fifth of the writes.
    """
    read_first = not expect_new
    for _ in range(COMMIT_ATTEMPTS):
        try:
            return _commit(db, contacts, now, import_id, read_first, part_ref)
        except _RACES:
            read_first = True
        except (gexc.GoogleAPICallError, ValueError, TypeError):
            break
    outcome = ChunkOutcome()
    if len(contacts) == 1:
        outcome.failures.append((contacts[0], "could not be written"))
    else:
        for contact in contacts:
            outcome.add(write_contacts(db, [contact], now, import_id))
    if part_ref is not None:
        # Not atomic with the rows on this rare path: a crash before it
        # recounts this part's rows as updated on redelivery.
        part_ref.set(_marker(outcome, now))
    return outcome


def _stored_outcome(data: dict[str, Any]) -> ChunkOutcome:
    failed = [
        (Contact(phone="", row=0, attributes={}), "")
        for _ in range(int(data.get("failed", 0)))
    ]
    return ChunkOutcome(
        created=int(data.get("created", 0)),
        updated=int(data.get("updated", 0)),
        failures=failed,
    )


def write_parts(
    db: firestore.Client,
    chunk: ImportChunk,
    marker_ref: firestore.DocumentReference,
) -> ChunkOutcome:
    """Every part of the chunk not written yet, a few in flight at once."""
    contacts = [contact_of(row) for row in chunk.rows]
    parts = marker_ref.collection(PARTS)
    done = {snap.id: snap.to_dict() or {} for snap in parts.stream()}
    outcome = ChunkOutcome()
    pending: list[tuple[firestore.DocumentReference, list[Contact]]] = []
    for number, start in enumerate(range(0, len(contacts), PART_ROWS)):
        if str(number) in done:
            outcome.add(_stored_outcome(done[str(number)]))
            continue
        part_ref = parts.document(str(number))
        pending.append((part_ref, contacts[start : start + PART_ROWS]))
    if not pending:
        return outcome
    now, import_id = chunk.imported_at, chunk.import_id
    # The first part tells whether the users exist: new lists skip the reads.
    first_ref, first_part = pending[0]
    first = write_contacts(db, first_part, now, import_id, True, first_ref)
    outcome.add(first)
    expect_new = not first.met_existing
    with ThreadPoolExecutor(MAX_IN_FLIGHT, "import") as pool:
        futures = [
            pool.submit(write_contacts, db, part, now, import_id, expect_new, ref)
            for ref, part in pending[1:]
        ]
        for future in futures:
            outcome.add(future.result())
    return outcome


def _count_once(
    db: firestore.Client,
    chunk: ImportChunk,
    marker_ref: firestore.DocumentReference,
    outcome: ChunkOutcome,
    now: datetime,
) -> None:
    """Create the chunk marker and add its counts to the report, atomically."""
    report_ref = import_ref(db, chunk.import_id)
    report = report_ref.get(field_paths=["errors"]).to_dict() or {}
    room = max(0, MAX_REPORTED_ERRORS - len(report.get("errors") or []))
    errors = [
        row_error(contact.row, contact.phone, reason).model_dump()
        for contact, reason in outcome.failures
        if contact.phone
    ]
    changes: dict[str, Any] = {
        name: firestore.Increment(value) for name, value in outcome.counts().items()
    }
    changes["chunks_done"] = firestore.Increment(1)
    if errors[:room]:
        changes["errors"] = firestore.ArrayUnion(errors[:room])
    if len(errors) > room:
        changes["errors_omitted"] = firestore.Increment(len(errors) - room)
    batch = db.batch()
    batch.create(marker_ref, _marker(outcome, now))
    batch.update(report_ref, changes)
    try:
        batch.commit()
    except gexc.AlreadyExists:
        pass  # a concurrent delivery of this chunk counted it


COMPLETE_ATTEMPTS = 20


@firestore.transactional
def _complete_if_done(
    transaction: firestore.Transaction,
    report_ref: firestore.DocumentReference,
    now: datetime,
) -> bool:
    snapshot = report_ref.get(transaction=transaction)
    report = snapshot.to_dict() or {}
    done = report.get("chunks_done", 0) >= report.get("chunks_planned", 0)
    if report.get("status") != ImportStatus.RUNNING.value or not done:
        return False
    transaction.update(
        report_ref, {"status": ImportStatus.COMPLETED.value, "finished_at": now}
    )
    return True


class ChunkResult(StrEnum):
    COUNTED = "counted"
    COUNTED_BEFORE = "counted_before"
    UNKNOWN_IMPORT = "unknown_import"


def import_chunk(
    db: firestore.Client, chunk: ImportChunk, now: datetime
) -> ChunkResult:
    """Upsert one chunk and add its counts to the report, once."""
    report_ref = import_ref(db, chunk.import_id)
    if not report_ref.get(field_paths=["status"]).exists:
        # Expired or never stored: nothing to count into, and a retry cannot help.
        return ChunkResult.UNKNOWN_IMPORT
    marker_ref = report_ref.collection(CHUNKS).document(str(chunk.chunk_no))
    result = ChunkResult.COUNTED_BEFORE
    if not marker_ref.get().exists:
        outcome = write_parts(db, chunk, marker_ref)
        _count_once(db, chunk, marker_ref, outcome, now)
        result = ChunkResult.COUNTED
    # Also after a redelivery: the delivery that counted may have stopped
    # before this step. The last chunks of an import all try at once on one
    # document, so the transaction gets more attempts than the default 5.
    _complete_if_done(db.transaction(max_attempts=COMPLETE_ATTEMPTS), report_ref, now)
    return result
