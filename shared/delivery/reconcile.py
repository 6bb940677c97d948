"""Reconciling an expired claim: did the send reach Twilio, and which is it?

An ambiguous send (a timeout, or a 5xx that Twilio may answer after it created
the message) keeps its claim. Once the lease expires, the sender asks Twilio
for the number's latest messages, without a DateSent filter (a message still
queued or accepted has no DateSent), and keeps those that this attempt could
have created:
- same `To`, and the same sender (`From`, or the Messaging Service);
- `DateCreated` inside the attempt's window: from the claim to the end of
  its lease, widened by a clock skew allowance;
- the same body. Twilio echoes back no field that we set ourselves (not the
  StatusCallback, the ContentSid nor the ContentVariables), so a
  content-template send can only be told apart by number, sender and window.

A SID is then claimed atomically: one transaction checks that no other
message holds the `provider_sids/{sid}` claim and creates it while it records
the SID on the message, so two reconcilers can never both take one SID (a
message that recorded the SID on the happy path is looked up just before).
Two sends of one body to one number from one sender in one window are
interchangeable, so a body send takes any unclaimed one. Content sends are
not: more than one unclaimed candidate cannot be settled with certainty.
Such a message, like one whose lookup page was full before it reached the
window, is marked FAILED with error code `unreconciled` (it shows among the
campaign's failures) and is never re-sent: a final status, so its campaign
still completes, and a later delivery callback still lifts it to DELIVERED.

Only this path writes `provider_sids`: the happy path records a SID it was
given by Twilio directly, and stays within its write budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.delivery.gateway import OutboundMessage, SendAccepted
from shared.delivery.messages import message_expire_at
from shared.platform.firestore import Database
from shared.store import messages as message_store
from shared.store.messages import (
    Message,
    MessageStatus,
    audit_append,
    rank_of,
    rank_raised_to,
)

# Our clock against Twilio's DateCreated.
CLOCK_SKEW = timedelta(seconds=60)
UNRECONCILED = "unreconciled"
# A SID claim matters only while its message could still be reconciled; a
# TTL policy on `expire_at` deletes it after this.
SID_CLAIM_RETENTION = timedelta(days=30)


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    TAKEN = "taken"  # another message holds the SID
    CHANGED = "changed"  # the message is no longer in this attempt's claim


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment <= self.end


def attempt_window(message: Message, lease_seconds: int, now: datetime) -> Window:
    """When this attempt's send could have been created at Twilio."""
    end = message.lease_until or now
    start = message.claimed_at or end - timedelta(seconds=lease_seconds)
    return Window(start - CLOCK_SKEW, end + CLOCK_SKEW)


def _same_sender(outbound: OutboundMessage, found: SendAccepted) -> bool:
    if outbound.messaging_service_sid:
        return found.messaging_service_sid == outbound.messaging_service_sid
    return found.from_number == outbound.from_number


def candidates(
    outbound: OutboundMessage, found: Sequence[SendAccepted], window: Window
) -> list[SendAccepted]:
    """The sends this attempt could have made, oldest first."""
    matching = [
        send
        for send in found
        if send.to == outbound.to
        and _same_sender(outbound, send)
        and window.holds(send.date_created)
        and (outbound.content_sid is not None or send.body == outbound.body)
    ]
    return sorted(matching, key=lambda send: send.date_created or window.start)


def lookup_truncated(found: Sequence[SendAccepted], limit: int, window: Window) -> bool:
    """A full page whose oldest message is still inside the window may have
    left out the very send we look for."""
    if len(found) < limit:
        return False
    oldest = min((s.date_created for s in found if s.date_created), default=None)
    return oldest is None or oldest >= window.start


def _held_by_another(
    claim: Mapping[str, Any] | None, holder_ids: Sequence[str], message_id: str
) -> bool:
    if claim is not None and claim.get("message_id") != message_id:
        return True
    return any(holder != message_id for holder in holder_ids)


def held_by_another(db: Database, sid: str, message_id: str) -> bool:
    """A read outside any transaction, to count the candidates still free."""
    claim = message_store.sid_claim(db, sid)
    return _held_by_another(claim, message_store.ids_holding_sid(db, sid), message_id)


def claim_sid(db: Database, message: Message, sid: str, now: datetime) -> ClaimOutcome:
    """Take `sid` for `message` and record it SENT, in one transaction.

    Reconcilers meet on the `provider_sids/{sid}` document, which the
    transaction reads and creates. A message that recorded the SID on the
    happy path did so within moments of Twilio's answer, long before any
    lease expired, so a plain query finds it; inside the transaction the
    query would lock every message (the emulator locks whole ranges) and
    stall callbacks behind it.
    """
    holders = message_store.ids_holding_sid(db, sid)
    if any(holder != message.id for holder in holders):
        return ClaimOutcome.TAKEN

    def refusal(
        data: Mapping[str, Any], claim: Mapping[str, Any] | None
    ) -> ClaimOutcome | None:
        sending = data.get("status_rank") == rank_of(MessageStatus.SENDING)
        if not sending or data.get("attempt_id") != message.attempt_id:
            return ClaimOutcome.CHANGED
        if _held_by_another(claim, [], message.id):
            return ClaimOutcome.TAKEN
        return None

    refused = message_store.claim_sid(
        db,
        message.id,
        sid,
        refusal,
        claim={
            "message_id": message.id,
            "claimed_at": now,
            "expire_at": now + SID_CLAIM_RETENTION,
        },
        update=sent_fields(sid, "reconciled", now),
    )
    return refused or ClaimOutcome.CLAIMED


def sent_fields(sid: str, how: str, now: datetime) -> dict[str, Any]:
    """The write that records a send Twilio accepted."""
    return {
        "status_rank": rank_raised_to(MessageStatus.SENT),
        "provider_sid": sid,
        "sent_at": now,
        # Replaced by the final callback's; kept if none ever comes (settled).
        "expire_at": message_expire_at(now),
        "lease_until": None,
        "audit": audit_append(
            [{"step": "send", "outcome": how, "reason": sid, "at": now}]
        ),
    }


def released_fields(audit: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The write that gives a claimed message back to QUEUED, for a later send."""
    return {
        "status_rank": rank_of(MessageStatus.QUEUED),
        "lease_until": None,
        "audit": audit_append(audit),
    }


def unreconciled_fields(
    reason: str, now: datetime, audit: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """Final and never re-sent; a later delivery callback may still lift it."""
    entry = {"step": "reconcile", "outcome": UNRECONCILED, "reason": reason}
    return {
        "status_rank": rank_raised_to(MessageStatus.FAILED),
        "error_code": UNRECONCILED,
        "error_message": f"send outcome unknown at Twilio ({reason}); not re-sent",
        "failed_at": now,
        "expire_at": message_expire_at(now),
        "lease_until": None,
        "audit": audit_append([*audit, {**entry, "at": now}]),
    }
