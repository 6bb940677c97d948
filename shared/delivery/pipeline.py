"""The send-time compliance pipeline: an ordered list of small named steps.

Each step looks at the message, its campaign, its recipient and `now`, and
returns a decision: pass, skip with a reason, defer until a time, hold (paused),
or done (nothing to do). The runner stops at the first decision that is not a
pass; every decision goes into the message's audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.audience.consent import may_receive
from shared.content.validation import validate_content
from shared.delivery.quiet_hours import (
    next_allowed_time,
    quiet_zones,
    recipient_zones,
)
from shared.store.campaigns import Campaign, CampaignStatus, FrequencyCap, QuietHours
from shared.store.messages import Message, MessageStatus
from shared.store.templates import TemplateChannel
from shared.store.users import User

# WhatsApp's customer-service window: free-form messages only this long after
# the user's last inbound message; outside it only approved content templates.
WHATSAPP_WINDOW = timedelta(hours=24)


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a secret
    SKIP = "skip"
    DEFER = "defer"
    HOLD = "hold"
    DONE = "done"
    RETRY_LATER = "retry_later"
    RECONCILE = "reconcile"


@dataclass(frozen=True)
class Decision:
    step: str
    outcome: Outcome
    reason: str | None = None
    until: datetime | None = None

    def audit(self, at: datetime) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "step": self.step,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "at": at,
        }
        if self.until is not None:
            entry["until"] = self.until
        return entry


@dataclass(frozen=True)
class SendContext:
    message: Message
    campaign: Campaign | None
    now: datetime
    user: User | None = None
    quiet_default: QuietHours | None = None
    global_cap: FrequencyCap | None = None
    prohibited_patterns: Sequence[str] = ()
    count_recent_sends: Callable[[str, datetime], int] = field(
        default=lambda _phone, _since: 0
    )


Step = Callable[[SendContext], Decision]


def check_idempotency(ctx: SendContext) -> Decision:
    status = ctx.message.status
    if status is MessageStatus.QUEUED:
        return Decision("idempotency", Outcome.PASS)
    if status is MessageStatus.SENDING:
        lease = ctx.message.lease_until
        if lease is not None and lease > ctx.now:
            return Decision("idempotency", Outcome.RETRY_LATER, "send_in_flight")
        return Decision("idempotency", Outcome.RECONCILE, "lease_expired")
    return Decision("idempotency", Outcome.DONE, f"already_{status.value.lower()}")


def check_campaign_state(ctx: SendContext) -> Decision:
    campaign = ctx.campaign
    if campaign is None:
        return Decision("campaign_state", Outcome.SKIP, "campaign_not_found")
    if campaign.status is CampaignStatus.CANCELLED:
        return Decision("campaign_state", Outcome.SKIP, "campaign_cancelled")
    if campaign.status is CampaignStatus.FAILED:
        return Decision("campaign_state", Outcome.SKIP, "campaign_failed")
    if campaign.status is CampaignStatus.PAUSED:
        return Decision("campaign_state", Outcome.HOLD, "campaign_paused")
    return Decision("campaign_state", Outcome.PASS)


def check_consent(ctx: SendContext) -> Decision:
    if ctx.user is None:
        return Decision("consent", Outcome.SKIP, "no_consent")
    if not may_receive(ctx.user.consent.state):
        return Decision("consent", Outcome.SKIP, "no_consent")
    return Decision("consent", Outcome.PASS)


def _strictest_cap(caps: Sequence[FrequencyCap | None]) -> list[FrequencyCap]:
    return [cap for cap in caps if cap is not None]


def check_frequency_cap(ctx: SendContext) -> Decision:
    campaign_cap = ctx.campaign.frequency_cap if ctx.campaign else None
    for cap in _strictest_cap([campaign_cap, ctx.global_cap]):
        since = ctx.now - timedelta(hours=cap.per_hours)
        if ctx.count_recent_sends(ctx.message.phone, since) >= cap.max_messages:
            return Decision(
                "frequency_cap",
                Outcome.SKIP,
                "frequency_cap",
            )
    return Decision("frequency_cap", Outcome.PASS)


def effective_quiet_hours(ctx: SendContext) -> QuietHours | None:
    setting = ctx.campaign.quiet_hours if ctx.campaign else "default"
    if setting == "default":
        return ctx.quiet_default
    return setting if isinstance(setting, QuietHours) else None


def check_quiet_hours(ctx: SendContext) -> Decision:
    default_tz = ctx.campaign.default_timezone if ctx.campaign else None
    zones = recipient_zones(ctx.user, ctx.message.phone, default_tz)
    window = effective_quiet_hours(ctx)
    until = next_allowed_time(ctx.now, window, zones)
    if until is None:
        # Zones with no moment allowed in all of them: the audit says which
        # were still quiet when the message went at the best compromise.
        quiet = quiet_zones(ctx.now, window, zones) if window else []
        compromise = ",".join(str(z) for z in quiet)
        reason = f"no common allowed time; quiet in {compromise}" if quiet else None
        return Decision("quiet_hours", Outcome.PASS, reason)
    names = ",".join(str(z) for z in zones)
    return Decision("quiet_hours", Outcome.DEFER, f"quiet_hours in {names}", until)


def check_content(ctx: SendContext) -> Decision:
    channel = TemplateChannel(ctx.message.channel)
    if ctx.message.content_sid:
        return Decision("content", Outcome.PASS)
    violations = validate_content(ctx.message.body, channel, ctx.prohibited_patterns)
    if violations:
        reasons = "; ".join(v.reason for v in violations)
        return Decision("content", Outcome.SKIP, f"content_invalid: {reasons}")
    return Decision("content", Outcome.PASS)


def check_whatsapp_window(ctx: SendContext) -> Decision:
    """Free-form WhatsApp only inside the window; a content template any time."""
    message = ctx.message
    if message.channel != TemplateChannel.WHATSAPP or message.content_sid:
        return Decision("whatsapp_window", Outcome.PASS)
    last_inbound = ctx.user.last_inbound_at if ctx.user else None
    if last_inbound is not None and ctx.now - last_inbound < WHATSAPP_WINDOW:
        return Decision("whatsapp_window", Outcome.PASS)
    return Decision("whatsapp_window", Outcome.SKIP, "whatsapp_window_closed")


# Steps that need only the message and the campaign run before the user read.
MESSAGE_STEPS: tuple[Step, ...] = (check_idempotency, check_campaign_state)
RECIPIENT_STEPS: tuple[Step, ...] = (
    check_consent,
    check_frequency_cap,
    check_quiet_hours,
    check_content,
    check_whatsapp_window,
)


def run_steps(ctx: SendContext, steps: Sequence[Step]) -> list[Decision]:
    """Run steps in order, stopping at the first decision that is not a pass."""
    decisions: list[Decision] = []
    for step in steps:
        decision = step(ctx)
        decisions.append(decision)
        if decision.outcome is not Outcome.PASS:
            break
    return decisions


def skip_reason(decision: Decision) -> str:
    """The short reason code stored in `skip_reason` (e.g. content_invalid)."""
    return (decision.reason or decision.step).split(":")[0]
