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

from shared.audience.consent import upserted_consent
from shared.audience.import_files import Contact
from shared.audience.imports import (
    MAX_REPORTED_ERRORS,
    SOURCE,
    contact_of,
    row_error,
)
from shared.payloads import ImportChunk
from shared.platform.firestore import Database
from shared.store.imports import (
    PartMarker,
    chunk_state,
    complete_if_done,
    count_chunk_once,
    set_part_marker,
    write_part_marker,
    written_parts,
)
from shared.store.users import (
    SUPPRESSION,
    Consent,
    ConsentState,
    StoredConsent,
    User,
    UserBatch,
    UsersChanged,
    UserWriteFailed,
    consent_event,
    new_user,
    stored_consents,
    suppression_states,
    translate_write_errors,
)

# A batch holds at most 500 writes: a user and a consent event per row, and
# the part's marker.
PART_ROWS = 200
# Every part of a chunk of IMPORT_CHUNK_ROWS at once. The local Pub/Sub
# emulator pushes two chunks at a time (deployed: one per instance, at most
# five instances), so a chunk's latency, not the emulator, bounds an import.
MAX_IN_FLIGHT = 10
# Rows read to tell a new list (whose parts then skip their reads) from a
# re-import.
PROBE_ROWS = 10
COMMIT_ATTEMPTS = 3


@dataclass
class ChunkOutcome:
    created: int = 0
    updated: int = 0
    failures: list[tuple[Contact, str]] = field(default_factory=list)

    def add(self, other: ChunkOutcome) -> None:
        self.created += other.created
        self.updated += other.updated
        self.failures.extend(other.failures)

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "failed": len(self.failures),
        }


class _Batch:
    """One atomic write of several contacts, decided from their stored state."""

    def __init__(self, db: Database, now: datetime, import_id: str) -> None:
        self.now = now
        self.import_id = import_id
        self.users = UserBatch(db)
        self.outcome = ChunkOutcome()

    def add(self, contact: Contact, stored: StoredConsent | None) -> None:
        if stored is None:
            self._create(contact, None)
            return
        if stored.user.suppressed:
            self._create(contact, stored.user, stored.read_at)
        else:
            self._update(contact, stored.user, stored.read_at)

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
        self.users.record_consent_change(contact.phone, event)

    def _create(
        self, contact: Contact, current: User | None, read_at: object = None
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
        if current is None or read_at is None:
            if decided is None and current is not None:
                user.consent = current.consent
            self.users.create(user)
        else:
            if decided is None:
                user.consent = current.consent
            self.users.replace_suppressed(user, read_at)
        if decided is not None:
            self._record(contact, current.consent.state if current else None, decided)
        self.outcome.created += 1

    def _update(self, contact: Contact, current: User, read_at: object) -> None:
        decided = upserted_consent(current, contact.consent)
        consent = None
        if decided is not None:
            consent = Consent(state=decided, updated_at=self.now, source=SOURCE)
            self._record(contact, current.consent.state, decided)
        # Bound to the read: a concurrent change (a STOP arriving now) fails
        # the commit, which is read and decided again.
        self.users.update(
            contact.phone,
            contact.attributes,
            contact.timezone,
            consent,
            self.now,
            read_at,
        )
        self.outcome.updated += 1


def _commit(
    db: Database,
    contacts: list[Contact],
    now: datetime,
    import_id: str,
    read_first: bool,
    part: PartMarker | None,
) -> ChunkOutcome:
    """One atomic batch. Unread, every contact is created: if one exists the
    whole batch fails (UsersChanged) and is decided again from a read."""
    phones = [contact.phone for contact in contacts]
    stored = stored_consents(db, phones) if read_first else {}
    # Erased, opted-out numbers: a batched read of their suppression entries,
    # so a re-import never opts one back in.
    suppressed = suppression_states(db, set(phones))
    batch = _Batch(db, now, import_id)
    for contact in contacts:
        current = stored.get(contact.phone)
        state = suppressed.get(contact.phone)
        if state is not None and current is None:
            batch.add_over_suppression(contact, state)
        else:
            batch.add(contact, current)
    if part is not None:
        set_part_marker(batch.users.batch, db, part, batch.outcome.counts(), now)
    batch.users.commit()
    return batch.outcome


def write_contacts(
    db: Database,
    contacts: list[Contact],
    now: datetime,
    import_id: str,
    expect_new: bool = False,
    part: PartMarker | None = None,
) -> ChunkOutcome:
    """Write contacts atomically with their part marker, reading again after a
    race; a batch that keeps failing is split to isolate the bad rows.

    With `expect_new` the first attempt skips the read: on a fresh list most
    parts hold only new users, and the read costs about a fifth of the writes.
    """
    read_first = not expect_new
    for _ in range(COMMIT_ATTEMPTS):
        try:
            return translate_write_errors(
                _commit, db, contacts, now, import_id, read_first, part
            )
        except UsersChanged:
            read_first = True
        except (UserWriteFailed, ValueError, TypeError):
            break
    outcome = ChunkOutcome()
    if len(contacts) == 1:
        outcome.failures.append((contacts[0], "could not be written"))
    else:
        for contact in contacts:
            outcome.add(write_contacts(db, [contact], now, import_id))
    if part is not None:
        # Not atomic with the rows on this rare path: a crash before it
        # recounts this part's rows as updated on redelivery.
        write_part_marker(db, part, outcome.counts(), now)
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


def write_parts(db: Database, chunk: ImportChunk) -> ChunkOutcome:
    """Every part of the chunk not written yet, a few in flight at once."""
    contacts = [contact_of(row) for row in chunk.rows]
    starts = range(0, len(contacts), PART_ROWS)
    done = written_parts(db, chunk.import_id, chunk.chunk_no, len(starts))
    outcome = ChunkOutcome()
    pending: list[tuple[PartMarker, list[Contact]]] = []
    for number, start in enumerate(starts):
        if number in done:
            outcome.add(_stored_outcome(done[number]))
            continue
        part = PartMarker(chunk.import_id, chunk.chunk_no, number)
        pending.append((part, contacts[start : start + PART_ROWS]))
    if not pending:
        return outcome
    now, import_id = chunk.imported_at, chunk.import_id
    # A few rows tell whether the users exist: new lists skip the reads. (A
    # part that meets a user anyway fails whole and is read and decided again.)
    probe = [contact.phone for contact in pending[0][1][:PROBE_ROWS]]
    expect_new = not stored_consents(db, probe)
    with ThreadPoolExecutor(MAX_IN_FLIGHT, "import") as pool:
        futures = [
            pool.submit(write_contacts, db, rows, now, import_id, expect_new, part)
            for part, rows in pending
        ]
        for future in futures:
            outcome.add(future.result())
    return outcome


def _count_once(
    db: Database, chunk: ImportChunk, outcome: ChunkOutcome, now: datetime
) -> None:
    """Add the chunk's counts and row errors to the report, once."""
    errors = [
        row_error(contact.row, contact.phone, reason).model_dump()
        for contact, reason in outcome.failures
        if contact.phone
    ]
    count_chunk_once(
        db,
        chunk.import_id,
        chunk.chunk_no,
        outcome.counts(),
        errors,
        MAX_REPORTED_ERRORS,
        now,
    )


COMPLETE_ATTEMPTS = 20


class ChunkResult(StrEnum):
    COUNTED = "counted"
    COUNTED_BEFORE = "counted_before"
    UNKNOWN_IMPORT = "unknown_import"


def import_chunk(db: Database, chunk: ImportChunk, now: datetime) -> ChunkResult:
    """Upsert one chunk and add its counts to the report, once."""
    state = chunk_state(db, chunk.import_id, chunk.chunk_no)
    if not state.import_exists:
        # Expired or never stored: nothing to count into, and a retry cannot help.
        return ChunkResult.UNKNOWN_IMPORT
    result = ChunkResult.COUNTED_BEFORE
    if not state.chunk_counted:
        outcome = write_parts(db, chunk)
        _count_once(db, chunk, outcome, now)
        result = ChunkResult.COUNTED
    # Also after a redelivery: the delivery that counted may have stopped
    # before this step. The last chunks of an import all try at once on one
    # document, so the transaction gets more attempts than the default 5.
    complete_if_done(db, chunk.import_id, now, COMPLETE_ATTEMPTS)
    return result
