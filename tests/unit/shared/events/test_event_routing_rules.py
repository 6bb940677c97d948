"""The router's pure decisions: screening campaigns, and pacing in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.delivery.pacing import LATENCY_ALLOWANCE
from shared.events.router import (
    CampaignPacer,
    NotMatched,
    RouteOutcome,
    screen_on_event,
    screen_recipient,
)
from shared.events.router import Match as RouteMatch
from shared.store.campaigns import Campaign, CampaignStatus, Trigger
from shared.store.users import User

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
BIG_ORDER = {"attribute": "total", "operator": "gte", "value": 100}
IN_COLOMBO = {"attribute": "city", "operator": "equals", "value": "Colombo"}


def campaign(
    status: CampaignStatus = CampaignStatus.ACTIVE,
    where: dict[str, Any] | None = None,
    segment_id: str | None = None,
    rate: float = 10.0,
    campaign_id: str = "c1",
) -> Campaign:
    return Campaign(
        id=campaign_id,
        name="t",
        template_id="t1",
        segment_id=segment_id,
        status=status,
        rate_limit_mps=rate,
        trigger=Trigger(event="order.shipped", where=where),
    )


def user(**attributes: Any) -> User:
    return User(phone="+14155550100", attributes=attributes)


def test_an_active_campaign_without_where_takes_any_event() -> None:
    assert screen_on_event(campaign(), {}, NOW) is None


def test_a_paused_campaign_ignores_the_event() -> None:
    paused = campaign(CampaignStatus.PAUSED, where=BIG_ORDER)
    assert screen_on_event(paused, {"total": 500}, NOW) is NotMatched.IGNORED_PAUSED


def test_where_reads_the_event_properties() -> None:
    big = campaign(where=BIG_ORDER)
    assert screen_on_event(big, {"total": 120}, NOW) is None
    assert screen_on_event(big, {"total": 20}, NOW) is NotMatched.WHERE_MISMATCH
    assert screen_on_event(big, {}, NOW) is NotMatched.WHERE_MISMATCH


def test_an_unknown_user_is_unmatched() -> None:
    assert screen_recipient(campaign(), None, None, NOW) is NotMatched.UNKNOWN_USER


def test_without_a_segment_every_known_user_is_in() -> None:
    assert screen_recipient(campaign(), user(), None, NOW) is None


def test_the_segment_is_checked_for_that_one_user() -> None:
    segmented = campaign(segment_id="s1")
    colombo, kandy = user(city="Colombo"), user(city="Kandy")
    assert screen_recipient(segmented, colombo, IN_COLOMBO, NOW) is None
    assert (
        screen_recipient(segmented, kandy, IN_COLOMBO, NOW)
        is NotMatched.SEGMENT_MISMATCH
    )
    assert (
        screen_recipient(segmented, colombo, None, NOW) is NotMatched.SEGMENT_NOT_FOUND
    )


def test_the_pacer_spaces_a_campaign_at_its_rate() -> None:
    pacer = CampaignPacer()
    slow = campaign(rate=2)
    times = [pacer.reserve(slow, 1, NOW) for _ in range(4)]
    # At the planned rate: the rate less the latency allowance.
    step = 0.5 * (1 + LATENCY_ALLOWANCE)
    assert times == [NOW + timedelta(seconds=step * i) for i in range(4)]


def test_the_pacer_counts_segments_and_keeps_campaigns_apart() -> None:
    pacer = CampaignPacer()
    a, b = campaign(rate=1, campaign_id="a"), campaign(rate=1, campaign_id="b")
    assert pacer.reserve(a, 3, NOW) == NOW
    after_three = NOW + timedelta(seconds=3 * (1 + LATENCY_ALLOWANCE))
    assert pacer.reserve(a, 1, NOW) == after_three
    assert pacer.reserve(b, 1, NOW) == NOW


def test_the_pacer_never_plans_in_the_past() -> None:
    pacer = CampaignPacer()
    fast = campaign(rate=1)
    pacer.reserve(fast, 1, NOW)
    later = NOW + timedelta(minutes=5)
    assert pacer.reserve(fast, 1, later) == later


def test_an_event_with_a_message_is_matched() -> None:
    assert RouteOutcome().status.value == "unmatched"
    assert RouteOutcome(matched=[RouteMatch("c1", "m1")]).status.value == "matched"
