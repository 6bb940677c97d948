"""Sending one message: compliance pipeline, claim, Twilio, record.

The lean path costs two document reads (message, user) and two writes (claim,
SENT). Writes that follow a read carry that read's update time as a
precondition, so two deliveries of one task can never both claim a message.
The SENT write raises `status_rank` with a Maximum transform, so a status
callback that outran it is never undone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from google.api_core import exceptions as gexc

from shared.audience.consent import set_consent_by_carrier
from shared.delivery.errors import OPT_OUT_CODES
from shared.delivery.gateway import (
    LOOKUP_LIMIT,
    OutboundMessage,
    SendAccepted,
    TwilioGateway,
    TwilioSendError,
    channel_address,
)
from shared.delivery.messages import decode_version, message_expire_at, send_task
from shared.delivery.pacing import RateGuard
from shared.delivery.pipeline import (
    MESSAGE_STEPS,
    RECIPIENT_STEPS,
    Decision,
    Outcome,
    SendContext,
    run_steps,
    skip_reason,
)
from shared.delivery.quiet_hours import parse_quiet_hours
from shared.delivery.reconcile import (
    ClaimOutcome,
    attempt_window,
    candidates,
    claim_sid,
    held_by_another,
    lookup_truncated,
    released_fields,
    sent_fields,
    unreconciled_fields,
)
from shared.delivery.replies import addressed
from shared.payloads import SendTaskBody
from shared.platform.config import CoreSettings, TwilioSettings
from shared.platform.firestore import Database
from shared.platform.logging import get_logger
from shared.platform.tasks import TaskQueue
from shared.platform.ttl_cache import TtlCache
from shared.store import messages as message_store
from shared.store.campaigns import Campaign, CampaignStatus, FrequencyCap
from shared.store.messages import (
    Message,
    MessageStatus,
    audit_append,
    incremented,
    rank_of,
    rank_raised_to,
)
from shared.store.users import User, get_user

log = get_logger(__name__)

# How long a send may wait for room under its campaign's rate before the task
# is handed back to the queue for a later retry.
RATE_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class SendResult:
    http_status: int
    outcome: str


@dataclass
class SenderDeps:
    db: Database
    gateway: TwilioGateway
    tasks: TaskQueue
    core: CoreSettings
    twilio: TwilioSettings
    campaigns: TtlCache[Campaign]
    clock: Callable[[], datetime]
    rate_guard: RateGuard = field(default_factory=RateGuard)


def parse_cap(spec: str) -> FrequencyCap | None:
    """ "3/24" → at most 3 messages per 24 hours; "" → no global cap."""
    if not spec.strip():
        return None
    count, _, hours = spec.partition("/")
    return FrequencyCap(max_messages=int(count), per_hours=int(hours))


# The settings are fixed for the life of the process: parse them once, not
# per send (each parse builds and validates a pydantic model).
_default_quiet_hours = lru_cache(maxsize=4)(parse_quiet_hours)
_global_cap = lru_cache(maxsize=4)(parse_cap)


def count_recent_sends(db: Database) -> Callable[[str, datetime], int]:
    def count(phone: str, since: datetime) -> int:
        return message_store.count_sent_to_since(db, phone, since)

    return count


@dataclass(frozen=True)
class MessageHandle:
    """A message document and the update time its writes expect to find."""

    message_id: str
    version: Any


def send_message(deps: SenderDeps, task: SendTaskBody) -> SendResult:
    """Run one send task; 200 acknowledges it, 503 asks Cloud Tasks to retry.

    The fast path trusts the message the task carries and claims with the
    task's version as a precondition, so it reads only the user. If anything
    changed the message since (a duplicate task, a pause, a cancel), the write
    fails its precondition and the send starts over from a fresh read.
    """
    from_task = bool(task.version and task.message) and not task.reconcile
    for _ in range(3):
        try:
            if from_task:
                return _attempt_from_task(deps, task)
            return _attempt_from_store(deps, task.message_id)
        except gexc.FailedPrecondition:
            from_task = False
    return SendResult(503, "contended")


def _attempt_from_task(deps: SenderDeps, task: SendTaskBody) -> SendResult:
    message = Message.model_validate(
        {
            **(task.message or {}),
            "id": task.message_id,
            "status_rank": rank_of(MessageStatus.QUEUED),
        }
    )
    handle = MessageHandle(message.id, decode_version(task.version or ""))
    return _run(deps, handle, message)


def _attempt_from_store(deps: SenderDeps, message_id: str) -> SendResult:
    stored = message_store.read_message(deps.db, message_id)
    if stored is None:
        log.warning("send task for an unknown message")
        return SendResult(200, "unknown_message")
    handle = MessageHandle(stored.id, stored.version)
    return _run(deps, handle, Message.model_validate({**stored.data, "id": stored.id}))


def _campaign_of(deps: SenderDeps, message: Message) -> Campaign | None:
    campaign = deps.campaigns.get(message.campaign_id)
    if campaign is not None and campaign.status is CampaignStatus.PAUSED:
        # Holding on a stale cached pause could strand a message just after a
        # resume; a pause is rare, so confirm it with a fresh read.
        deps.campaigns.invalidate(message.campaign_id)
        campaign = deps.campaigns.get(message.campaign_id)
    return campaign


def _run(deps: SenderDeps, handle: MessageHandle, message: Message) -> SendResult:
    ctx = SendContext(
        message=message,
        campaign=_campaign_of(deps, message),
        now=deps.clock(),
        quiet_default=_default_quiet_hours(deps.core.quiet_hours_default),
        global_cap=_global_cap(deps.core.global_frequency_cap),
        prohibited_patterns=deps.core.prohibited_pattern_list,
        count_recent_sends=count_recent_sends(deps.db),
    )
    decisions = run_steps(ctx, MESSAGE_STEPS)
    if decisions[-1].outcome is Outcome.PASS:
        ctx = _with_user(deps.db, ctx)
        decisions += run_steps(ctx, RECIPIENT_STEPS)
    return _act(deps, handle, ctx, decisions)


def _with_user(db: Database, ctx: SendContext) -> SendContext:
    user: User | None = get_user(db, ctx.message.phone)
    return replace(ctx, user=user)


def _act(
    deps: SenderDeps,
    handle: MessageHandle,
    ctx: SendContext,
    decisions: Sequence[Decision],
) -> SendResult:
    final = decisions[-1]
    audit = [d.audit(ctx.now) for d in decisions]
    actions: dict[Outcome, Callable[[], SendResult]] = {
        Outcome.DONE: lambda: SendResult(200, final.reason or "done"),
        Outcome.RETRY_LATER: lambda: SendResult(503, final.reason or "retry"),
        Outcome.SKIP: lambda: _skip(deps, handle, final, audit),
        Outcome.HOLD: lambda: _hold(deps, handle, audit),
        Outcome.DEFER: lambda: _defer(deps, handle, ctx.message, final, audit),
        Outcome.RECONCILE: lambda: _reconcile(deps, handle, ctx, audit),
        Outcome.PASS: lambda: _claim_and_send(deps, handle, ctx, audit),
    }
    return actions[final.outcome]()


def _update_if_unchanged(
    deps: SenderDeps, handle: MessageHandle, fields: dict[str, Any]
) -> Any:
    return message_store.update_if_unchanged(
        deps.db, handle.message_id, handle.version, fields
    )


def _skip(
    deps: SenderDeps,
    handle: MessageHandle,
    decision: Decision,
    audit: list[dict[str, Any]],
) -> SendResult:
    reason = skip_reason(decision)
    _update_if_unchanged(
        deps,
        handle,
        {
            "status_rank": rank_of(MessageStatus.SKIPPED),
            "skip_reason": reason,
            "skipped_at": audit[-1]["at"],
            "expire_at": message_expire_at(audit[-1]["at"]),
            "audit": audit_append(audit),
        },
    )
    log.info("message skipped: %s", reason, extra={"labels": {"skip_reason": reason}})
    return SendResult(200, f"skipped:{reason}")


def _hold(
    deps: SenderDeps, handle: MessageHandle, audit: list[dict[str, Any]]
) -> SendResult:
    _update_if_unchanged(deps, handle, {"held": True, "audit": audit_append(audit)})
    return SendResult(200, "held")


def _defer(
    deps: SenderDeps,
    handle: MessageHandle,
    message: Message,
    decision: Decision,
    audit: list[dict[str, Any]],
) -> SendResult:
    until = decision.until or deps.clock()
    generation = message.generation + 1
    version = _update_if_unchanged(
        deps,
        handle,
        {
            "send_at": until,
            "generation": generation,
            "audit": audit_append(audit),
        },
    )
    data = {**message.model_dump(), "send_at": until, "generation": generation}
    deps.tasks.enqueue([send_task(message.id, data, version)])
    log.info("message deferred by quiet hours until %s", until.isoformat())
    return SendResult(200, "deferred")


def _outbound(
    deps: SenderDeps, message: Message, campaign: Campaign | None
) -> OutboundMessage:
    sender = campaign.sender if campaign else None
    return addressed(
        deps.twilio,
        to=channel_address(message.channel, message.phone),
        body=message.body,
        from_number=sender.from_ if sender else None,
        messaging_service_sid=sender.messaging_service_sid if sender else None,
        status_query=f"message_id={quote(message.id, safe='')}",
        content_sid=message.content_sid,
        content_variables=message.content_variables,
    )


def _claim_and_send(
    deps: SenderDeps,
    handle: MessageHandle,
    ctx: SendContext,
    audit: list[dict[str, Any]],
) -> SendResult:
    if _rate_backlogged(deps, ctx):
        # The guard would refuse it: retry later without claiming, so a
        # backlog costs no writes.
        return SendResult(503, "rate_backlog")
    attempt_id = uuid.uuid4().hex
    claim = {"step": "claim", "outcome": "claimed", "reason": attempt_id, "at": ctx.now}
    claimed = _update_if_unchanged(
        deps,
        handle,
        {
            "status_rank": rank_of(MessageStatus.SENDING),
            "attempt_id": attempt_id,
            "claimed_at": ctx.now,
            "lease_until": ctx.now + timedelta(seconds=deps.core.sending_lease_seconds),
            "attempts": incremented(1),
            "audit": audit_append([*audit, claim]),
        },
    )
    outbound = _outbound(deps, ctx.message, ctx.campaign)
    try:
        accepted = _send_paced(deps, ctx, outbound)
    except TwilioSendError as exc:
        return _send_failed(deps, ctx.message, claimed, exc)
    _record_sent(deps, ctx.message.id, accepted.sid, "sent")
    log.info("message sent", extra={"labels": {"event": "message_sent"}})
    return SendResult(200, "sent")


def _rate_backlogged(deps: SenderDeps, ctx: SendContext) -> bool:
    campaign = ctx.campaign
    return (
        campaign is not None
        and deps.rate_guard.backlog(campaign.id) > RATE_WAIT_SECONDS
    )


def _send_paced(
    deps: SenderDeps, ctx: SendContext, outbound: OutboundMessage
) -> SendAccepted:
    """Send once the campaign has room, right before Twilio; the guard counts
    the send until its answer is in (shared/delivery/pacing.py)."""
    campaign = ctx.campaign
    if campaign is None:
        return deps.gateway.send(outbound)
    slot = deps.rate_guard.acquire(
        campaign.id,
        campaign.rate_limit_mps,
        ctx.message.segments,
        max_wait=RATE_WAIT_SECONDS,
    )
    if slot is None:
        raise TwilioSendError("campaign rate: no room in time", None, 429)
    # Until Twilio answers, it may accept the message at any moment; after an
    # ambiguous answer, still for as long as a request may take.
    hold = deps.twilio.request_timeout_seconds
    try:
        accepted = deps.gateway.send(outbound)
    except TwilioSendError as exc:
        deps.rate_guard.finish(slot, hold if exc.outcome_unknown else 0.0)
        raise
    except BaseException:
        deps.rate_guard.finish(slot, hold)
        raise
    deps.rate_guard.finish(slot)
    return accepted


def _record_sent(deps: SenderDeps, message_id: str, sid: str, how: str) -> None:
    message_store.update(deps.db, message_id, sent_fields(sid, how, deps.clock()))


def _send_failed(
    deps: SenderDeps, message: Message, claimed_at: Any, exc: TwilioSendError
) -> SendResult:
    now = deps.clock()
    entry = {
        "step": "send",
        "outcome": "retry" if exc.retriable else "failed",
        "reason": f"{exc.code or exc.http_status}: {exc}",
        "at": now,
    }
    if exc.outcome_unknown:
        # Twilio may have the message: keep the claim. Retries answer 503
        # until the lease expires, then reconciliation asks Twilio first.
        log.warning("Twilio outcome unknown; the claim is kept for reconciliation")
        return SendResult(503, "outcome_unknown")
    if exc.retriable:
        # Release the claim so the retried task can send; nothing reached Twilio.
        message_store.update_if_unchanged(
            deps.db,
            message.id,
            claimed_at,
            released_fields([entry]),
        )
        log.warning("retriable Twilio error %s", exc.code or exc.http_status)
        return SendResult(503, "retriable_error")
    message_store.update(
        deps.db,
        message.id,
        {
            "status_rank": rank_raised_to(MessageStatus.FAILED),
            "error_code": str(exc.code) if exc.code else None,
            "error_message": str(exc),
            "failed_at": now,
            "expire_at": message_expire_at(now),
            "lease_until": None,
            "audit": audit_append([entry]),
        },
    )
    if exc.code in OPT_OUT_CODES:
        set_consent_by_carrier(
            deps.db, message.phone, exc.code, evidence=message.id, now=now
        )
    log.warning("permanent Twilio error %s", exc.code)
    return SendResult(200, "failed")


def _reconcile(
    deps: SenderDeps,
    handle: MessageHandle,
    ctx: SendContext,
    audit: list[dict[str, Any]],
) -> SendResult:
    """An expired claim: find out from Twilio whether the send happened.

    Never re-sent on a guess: a send found is claimed atomically, one not
    found is released for the next attempt, and anything in between is
    marked unreconciled (see shared/delivery/reconcile.py).
    """
    message = ctx.message
    outbound = _outbound(deps, message, ctx.campaign)
    try:
        found = deps.gateway.find_recent(outbound.to, outbound.from_number)
    except TwilioSendError:
        return SendResult(503, "reconcile_lookup_failed")
    window = attempt_window(message, deps.core.sending_lease_seconds, ctx.now)
    if lookup_truncated(found, LOOKUP_LIMIT, window):
        return _unreconciled(deps, handle, "lookup_truncated", audit)
    free = [
        send
        for send in candidates(outbound, found, window)
        if not held_by_another(deps.db, send.sid, message.id)
    ]
    if outbound.content_sid and len(free) > 1:
        # Content sends echo no body: which of these is ours is a guess.
        return _unreconciled(deps, handle, "several_candidates", audit)
    for send in free:
        outcome = claim_sid(deps.db, message, send.sid, deps.clock())
        if outcome is ClaimOutcome.CLAIMED:
            log.info("expired claim reconciled with a send found at Twilio")
            return SendResult(200, "reconciled_sent")
        if outcome is ClaimOutcome.CHANGED:
            # A callback or another delivery settled it meanwhile: read again.
            raise gexc.FailedPrecondition("message changed while reconciling")
    _update_if_unchanged(deps, handle, released_fields(audit))
    # Retried by Cloud Tasks; the next attempt finds it QUEUED and sends.
    return SendResult(503, "reconciled_not_sent")


def _unreconciled(
    deps: SenderDeps,
    handle: MessageHandle,
    reason: str,
    audit: list[dict[str, Any]],
) -> SendResult:
    _update_if_unchanged(deps, handle, unreconciled_fields(reason, deps.clock(), audit))
    log.warning(
        "send outcome unknown and not reconcilable: %s; held, never re-sent",
        reason,
        extra={"labels": {"event": "message_unreconciled"}},
    )
    return SendResult(200, f"unreconciled:{reason}")
