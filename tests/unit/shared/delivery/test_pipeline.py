"""The send-time compliance pipeline: each step's decision, and the runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.delivery.pipeline import (
    MESSAGE_STEPS,
    RECIPIENT_STEPS,
    Decision,
    Outcome,
    SendContext,
    check_campaign_state,
    check_consent,
    check_content,
    check_frequency_cap,
    check_idempotency,
    check_quiet_hours,
    effective_quiet_hours,
    run_steps,
    skip_reason,
)
from shared.store.campaigns import Campaign, CampaignStatus, FrequencyCap, QuietHours
from shared.store.messages import Message, MessageStatus, rank_of
from shared.store.users import Consent, ConsentState, User

# 15:00 UTC is 10:00 in New York: outside the default 21:00-08:00.
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
# 03:00 UTC is 22:00 the evening before in New York: inside it.
NEW_YORK_NIGHT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
PHONE = "+12125550100"
TCPA = QuietHours(start="21:00", end="08:00")


def message(status: MessageStatus = MessageStatus.QUEUED, **fields: Any) -> Message:
    return Message.model_validate(
        {
            "id": "c1_12125550100",
            "campaign_id": "c1",
            "phone": PHONE,
            "body": "Hi Ann, 20% off today",
            "encoding": "GSM-7",
            "segments": 1,
            "status_rank": rank_of(status),
            "send_at": NOW,
            **fields,
        }
    )


def campaign(
    status: CampaignStatus = CampaignStatus.RUNNING, **fields: Any
) -> Campaign:
    return Campaign.model_validate(
        {
            "id": "c1",
            "name": "Spring sale",
            "template_id": "t1",
            "segment_id": "s1",
            "status": status,
            **fields,
        }
    )


def user(
    state: ConsentState = ConsentState.OPT_IN, timezone: str = "America/New_York"
) -> User:
    return User(phone=PHONE, timezone=timezone, consent=Consent(state=state))


def context(**fields: Any) -> SendContext:
    defaults: dict[str, Any] = {
        "message": message(),
        "campaign": campaign(),
        "now": NOW,
        "user": user(),
        "quiet_default": TCPA,
    }
    return SendContext(**{**defaults, **fields})


class RecentSends:
    """A fake send counter: the recipient's sends at the given times."""

    def __init__(self, *ago: timedelta) -> None:
        self.times = [NOW - a for a in ago]
        self.calls: list[tuple[str, datetime]] = []

    def __call__(self, phone: str, since: datetime) -> int:
        self.calls.append((phone, since))
        return sum(1 for t in self.times if t >= since)


def outcome(decision: Decision) -> tuple[Outcome, str | None]:
    return decision.outcome, decision.reason


# --- 1. idempotency ------------------------------------------------------------


def test_a_queued_message_passes_idempotency() -> None:
    assert outcome(check_idempotency(context())) == (Outcome.PASS, None)


@pytest.mark.parametrize(
    "status",
    [
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.SKIPPED,
    ],
)
def test_a_sent_or_final_message_is_done(status: MessageStatus) -> None:
    decision = check_idempotency(context(message=message(status)))
    assert outcome(decision) == (Outcome.DONE, f"already_{status.value.lower()}")


def test_a_sending_message_with_a_live_lease_is_retried_later() -> None:
    live = message(MessageStatus.SENDING, lease_until=NOW + timedelta(seconds=1))
    decision = check_idempotency(context(message=live))
    assert outcome(decision) == (Outcome.RETRY_LATER, "send_in_flight")


@pytest.mark.parametrize(
    "lease_until", [NOW, NOW - timedelta(seconds=1), None], ids=["now", "past", "none"]
)
def test_a_sending_message_with_an_expired_lease_is_reconciled(
    lease_until: datetime | None,
) -> None:
    stuck = message(MessageStatus.SENDING, lease_until=lease_until)
    decision = check_idempotency(context(message=stuck))
    assert outcome(decision) == (Outcome.RECONCILE, "lease_expired")


# --- 2. campaign state ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (CampaignStatus.RUNNING, (Outcome.PASS, None)),
        (CampaignStatus.ACTIVE, (Outcome.PASS, None)),
        (CampaignStatus.PAUSED, (Outcome.HOLD, "campaign_paused")),
        (CampaignStatus.CANCELLED, (Outcome.SKIP, "campaign_cancelled")),
        (CampaignStatus.FAILED, (Outcome.SKIP, "campaign_failed")),
    ],
)
def test_campaign_state(
    status: CampaignStatus, expected: tuple[Outcome, str | None]
) -> None:
    assert outcome(check_campaign_state(context(campaign=campaign(status)))) == expected


def test_a_missing_campaign_skips_the_message() -> None:
    decision = check_campaign_state(context(campaign=None))
    assert outcome(decision) == (Outcome.SKIP, "campaign_not_found")


# --- 3. consent ----------------------------------------------------------------


def test_an_opted_in_user_passes_consent() -> None:
    assert check_consent(context()).outcome is Outcome.PASS


@pytest.mark.parametrize("state", [ConsentState.OPT_OUT, ConsentState.STOP])
def test_an_opted_out_user_is_skipped(state: ConsentState) -> None:
    decision = check_consent(context(user=user(state)))
    assert outcome(decision) == (Outcome.SKIP, "no_consent")


def test_an_unknown_user_is_skipped() -> None:
    assert outcome(check_consent(context(user=None))) == (Outcome.SKIP, "no_consent")


# --- 4. frequency cap ----------------------------------------------------------


def test_no_cap_passes_without_counting() -> None:
    sends = RecentSends(timedelta(minutes=1))
    assert (
        check_frequency_cap(context(count_recent_sends=sends)).outcome is Outcome.PASS
    )
    assert sends.calls == []


@pytest.mark.parametrize(
    ("ago_hours", "expected"),
    [
        ([1.0], Outcome.PASS),
        ([1.0, 20.0], Outcome.SKIP),
        ([1.0, 25.0], Outcome.PASS),  # outside the 24 h window
    ],
)
def test_the_campaign_cap_counts_sends_in_its_window(
    ago_hours: list[float], expected: Outcome
) -> None:
    sends = RecentSends(*(timedelta(hours=h) for h in ago_hours))
    capped = campaign(frequency_cap={"max_messages": 2, "per_hours": 24})
    decision = check_frequency_cap(context(campaign=capped, count_recent_sends=sends))
    assert decision.outcome is expected
    assert sends.calls[0] == (PHONE, NOW - timedelta(hours=24))
    if expected is Outcome.SKIP:
        assert decision.reason == "frequency_cap"


def test_the_global_cap_applies_without_a_campaign_cap() -> None:
    sends = RecentSends(timedelta(minutes=30))
    decision = check_frequency_cap(
        context(
            global_cap=FrequencyCap(max_messages=1, per_hours=1),
            count_recent_sends=sends,
        )
    )
    assert outcome(decision) == (Outcome.SKIP, "frequency_cap")
    assert sends.calls == [(PHONE, NOW - timedelta(hours=1))]


@pytest.mark.parametrize(
    ("campaign_cap", "global_cap", "expected"),
    [
        # One send 30 minutes ago: the global 1/1h cap is the one that bites.
        ((5, 24), (1, 1), Outcome.SKIP),
        # ...and here the campaign's 1/1h cap is.
        ((1, 1), (5, 24), Outcome.SKIP),
        # Both allow it.
        ((2, 1), (5, 24), Outcome.PASS),
    ],
)
def test_either_cap_can_skip(
    campaign_cap: tuple[int, int], global_cap: tuple[int, int], expected: Outcome
) -> None:
    sends = RecentSends(timedelta(minutes=30))
    ctx = context(
        campaign=campaign(
            frequency_cap={
                "max_messages": campaign_cap[0],
                "per_hours": campaign_cap[1],
            }
        ),
        global_cap=FrequencyCap(max_messages=global_cap[0], per_hours=global_cap[1]),
        count_recent_sends=sends,
    )
    assert check_frequency_cap(ctx).outcome is expected


# --- 5. quiet hours ------------------------------------------------------------


def test_an_omitted_window_takes_the_configured_default() -> None:
    ctx = context(now=NEW_YORK_NIGHT)
    assert effective_quiet_hours(ctx) == TCPA
    decision = check_quiet_hours(ctx)
    assert decision.outcome is Outcome.DEFER
    # 08:00 in New York the next morning.
    assert decision.until == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    assert decision.reason is not None and "America/New_York" in decision.reason


def test_an_explicit_null_means_no_quiet_hours() -> None:
    ctx = context(now=NEW_YORK_NIGHT, campaign=campaign(quiet_hours=None))
    assert effective_quiet_hours(ctx) is None
    assert check_quiet_hours(ctx).outcome is Outcome.PASS


def test_an_explicit_window_replaces_the_default() -> None:
    late = campaign(quiet_hours={"start": "23:00", "end": "06:00"})
    assert check_quiet_hours(context(now=NEW_YORK_NIGHT, campaign=late)).outcome is (
        Outcome.PASS
    )
    early = campaign(quiet_hours={"start": "22:00", "end": "07:00"})
    decision = check_quiet_hours(context(now=NEW_YORK_NIGHT, campaign=early))
    assert decision.outcome is Outcome.DEFER
    assert decision.until == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_zones_with_no_common_allowed_time_send_at_the_compromise() -> None:
    # A toll-free number spans Guam to St John's: under 20:30-09:15 in June
    # some of its zones are always quiet. The message waits for the moment
    # quiet in the fewest of them, then goes; the audit names those still quiet.
    toll_free = "+18005550100"
    wide = campaign(quiet_hours={"start": "20:30", "end": "09:15"})
    june = datetime(2026, 6, 10, 15, 0, tzinfo=UTC)
    ctx = context(now=june, user=None, message=message(phone=toll_free), campaign=wide)
    deferred = check_quiet_hours(ctx)
    assert deferred.outcome is Outcome.DEFER and deferred.until is not None
    sent = check_quiet_hours(replace(ctx, now=deferred.until))
    assert sent.outcome is Outcome.PASS
    assert sent.reason is not None
    assert sent.reason.startswith("no common allowed time; quiet in America/")


def test_outside_quiet_hours_passes() -> None:
    assert check_quiet_hours(context()).outcome is Outcome.PASS


def test_no_configured_default_means_no_quiet_hours() -> None:
    ctx = context(now=NEW_YORK_NIGHT, quiet_default=None)
    assert check_quiet_hours(ctx).outcome is Outcome.PASS


def test_the_campaign_default_timezone_is_used_when_nothing_else_is_known() -> None:
    # An international freephone number has no zone; the campaign's applies.
    nowhere = "+80012345678"
    ctx = context(
        now=NEW_YORK_NIGHT,
        user=None,
        message=message(phone=nowhere),
        campaign=campaign(default_timezone="Asia/Colombo"),
    )
    # 03:00 UTC is 08:30 in Colombo: allowed there.
    assert check_quiet_hours(ctx).outcome is Outcome.PASS
    tokyo = replace(ctx, campaign=campaign(default_timezone="Asia/Tokyo"))
    # ...and 12:00 in Tokyo; but 22:00 UTC would be 07:00 there.
    assert check_quiet_hours(tokyo).outcome is Outcome.PASS
    late = replace(tokyo, now=datetime(2026, 11, 26, 22, 0, tzinfo=UTC))
    assert check_quiet_hours(late).until == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


# --- 6. content ----------------------------------------------------------------


def test_valid_content_passes() -> None:
    assert check_content(context()).outcome is Outcome.PASS


@pytest.mark.parametrize(
    ("body", "channel", "patterns", "reason_part"),
    [
        ("   ", "sms", (), "empty"),
        ("a" * 1601, "sms", (), "1601 characters"),
        ("Win a FREE iPhone now", "sms", (r"free\s+iphone",), "prohibited pattern"),
    ],
    ids=["empty", "too-long", "prohibited"],
)
def test_invalid_content_is_skipped_with_its_reasons(
    body: str, channel: str, patterns: tuple[str, ...], reason_part: str
) -> None:
    ctx = context(
        message=message(body=body, channel=channel), prohibited_patterns=patterns
    )
    decision = check_content(ctx)
    assert decision.outcome is Outcome.SKIP
    assert decision.reason is not None
    assert decision.reason.startswith("content_invalid: ")
    assert reason_part in decision.reason
    assert skip_reason(decision) == "content_invalid"


def test_whatsapp_allows_longer_bodies() -> None:
    ctx = context(message=message(body="a" * 1601, channel="whatsapp"))
    assert check_content(ctx).outcome is Outcome.PASS


def test_every_violation_is_listed() -> None:
    ctx = context(message=message(body="x" * 1601), prohibited_patterns=("x{3}",))
    reason = check_content(ctx).reason or ""
    assert "1601 characters" in reason and "prohibited pattern" in reason


def test_an_approved_content_template_skips_body_checks() -> None:
    ctx = context(
        message=message(body="", channel="whatsapp", content_sid="HX" + "0" * 32)
    )
    assert check_content(ctx).outcome is Outcome.PASS


# --- run_steps -----------------------------------------------------------------


def recording_step(
    name: str, result: Outcome, seen: list[str]
) -> Callable[[SendContext], Decision]:
    def step(_: SendContext) -> Decision:
        seen.append(name)
        return Decision(name, result)

    return step


def test_run_steps_stops_at_the_first_decision_that_is_not_a_pass() -> None:
    seen: list[str] = []
    steps = [
        recording_step("a", Outcome.PASS, seen),
        recording_step("b", Outcome.DEFER, seen),
        recording_step("c", Outcome.PASS, seen),
    ]
    decisions = run_steps(context(), steps)
    assert [d.step for d in decisions] == ["a", "b"]
    assert seen == ["a", "b"]


def test_run_steps_runs_every_step_when_all_pass() -> None:
    seen: list[str] = []
    steps = [recording_step(n, Outcome.PASS, seen) for n in "abc"]
    assert [d.step for d in run_steps(context(), steps)] == ["a", "b", "c"]


def test_the_steps_run_in_the_designed_order() -> None:
    assert [s.__name__ for s in MESSAGE_STEPS + RECIPIENT_STEPS] == [
        "check_idempotency",
        "check_campaign_state",
        "check_consent",
        "check_frequency_cap",
        "check_quiet_hours",
        "check_content",
        "check_whatsapp_window",
    ]


def test_a_stopped_user_is_skipped_before_quiet_hours_or_content_are_checked() -> None:
    ctx = context(
        user=user(ConsentState.STOP), now=NEW_YORK_NIGHT, message=message(body="")
    )
    decisions = run_steps(ctx, RECIPIENT_STEPS)
    assert [(d.step, d.outcome) for d in decisions] == [("consent", Outcome.SKIP)]


def test_a_cancelled_campaign_stops_the_message_steps() -> None:
    sent = context(campaign=campaign(CampaignStatus.CANCELLED))
    decisions = run_steps(sent, MESSAGE_STEPS)
    assert [(d.step, d.outcome) for d in decisions] == [
        ("idempotency", Outcome.PASS),
        ("campaign_state", Outcome.SKIP),
    ]


def test_a_clean_message_passes_every_step() -> None:
    decisions = run_steps(context(), MESSAGE_STEPS + RECIPIENT_STEPS)
    assert [d.outcome for d in decisions] == [Outcome.PASS] * 7


def test_a_decision_audits_its_step_outcome_reason_time_and_until() -> None:
    until = NOW + timedelta(hours=1)
    assert Decision("quiet_hours", Outcome.DEFER, "quiet", until).audit(NOW) == {
        "step": "quiet_hours",
        "outcome": "defer",
        "reason": "quiet",
        "at": NOW,
        "until": until,
    }
    assert "until" not in Decision("consent", Outcome.PASS).audit(NOW)


def test_skip_reason_falls_back_to_the_step_name() -> None:
    assert skip_reason(Decision("consent", Outcome.SKIP, "no_consent")) == "no_consent"
    assert skip_reason(Decision("consent", Outcome.SKIP)) == "consent"
