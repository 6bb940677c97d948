"""Quiet hours in the recipient's local time, and the time-zone fallback chain."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.audience.phones import phone_time_zones
from shared.delivery.quiet_hours import (
    COMMON_HORIZON,
    COMPROMISE_HORIZON,
    is_quiet,
    next_allowed_time,
    parse_quiet_hours,
    quiet_zones,
    recipient_zones,
)
from shared.store.campaigns import QuietHours
from shared.store.users import User

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
COLOMBO = ZoneInfo("Asia/Colombo")
TOKYO = ZoneInfo("Asia/Tokyo")
UTC_ZONE = ZoneInfo("UTC")
TCPA = QuietHours(start="21:00", end="08:00")

SF_PHONE = "+14155550100"
COLOMBO_PHONE = "+94112345678"
TOLL_FREE_PHONE = "+18005550100"  # phonenumbers places it in every NANP zone
NOWHERE_PHONE = "+80012345678"  # international freephone: no zone at all


def user(
    timezone: str | None = None, attribute_timezone: Any = None, phone: str = SF_PHONE
) -> User:
    attributes = {} if attribute_timezone is None else {"timezone": attribute_timezone}
    return User(phone=phone, attributes=attributes, timezone=timezone)


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def quiet(start: str, end: str) -> QuietHours:
    return QuietHours(start=start, end=end)


# --- is_quiet ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        (time(20, 59), False),
        (time(21, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_a_window_that_wraps_past_midnight(clock: time, expected: bool) -> None:
    moment = datetime.combine(datetime(2026, 11, 26).date(), clock, tzinfo=UTC)
    assert is_quiet(moment, TCPA) is expected


@pytest.mark.parametrize(
    ("clock", "expected"),
    [(time(12, 59), False), (time(13, 0), True), (time(13, 59), True)]
    + [(time(14, 0), False), (time(0, 30), False)],
)
def test_a_window_inside_one_day(clock: time, expected: bool) -> None:
    moment = datetime.combine(datetime(2026, 11, 26).date(), clock, tzinfo=UTC)
    assert is_quiet(moment, quiet("13:00", "14:00")) is expected


@settings(max_examples=50, deadline=None)
@given(minute=st.integers(min_value=0, max_value=24 * 60 - 1))
def test_start_equal_to_end_is_never_quiet(minute: int) -> None:
    moment = datetime(2026, 11, 26, tzinfo=UTC) + timedelta(minutes=minute)
    assert not is_quiet(moment, quiet("22:00", "22:00"))
    assert next_allowed_time(moment, quiet("22:00", "22:00"), [NEW_YORK]) is None


def test_quiet_hours_are_read_in_local_time() -> None:
    # 03:00 UTC is 22:00 in New York (quiet) and 08:30 in Colombo (not quiet).
    now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    assert is_quiet(now.astimezone(NEW_YORK), TCPA)
    assert not is_quiet(now.astimezone(COLOMBO), TCPA)


def test_parse_quiet_hours() -> None:
    assert parse_quiet_hours("21:00-08:00") == TCPA
    assert parse_quiet_hours(" 22:30 - 07:15 ") == quiet("22:30", "07:15")


# --- next_allowed_time ---------------------------------------------------------


def test_no_quiet_hours_means_send_now() -> None:
    now = local(NEW_YORK, 2026, 11, 26, 3, 0)
    assert next_allowed_time(now, None, [NEW_YORK]) is None


def test_outside_quiet_hours_means_send_now() -> None:
    now = local(NEW_YORK, 2026, 11, 26, 10, 0)
    assert next_allowed_time(now, TCPA, [NEW_YORK]) is None


def test_late_evening_waits_for_the_next_morning() -> None:
    now = local(NEW_YORK, 2026, 11, 26, 23, 15)
    assert next_allowed_time(now, TCPA, [NEW_YORK]) == local(
        NEW_YORK, 2026, 11, 27, 8, 0
    )


def test_early_morning_waits_until_the_end_of_the_same_morning() -> None:
    now = local(NEW_YORK, 2026, 11, 26, 6, 0)
    assert next_allowed_time(now, TCPA, [NEW_YORK]) == local(
        NEW_YORK, 2026, 11, 26, 8, 0
    )


def test_the_answer_is_in_utc_whatever_the_input_zone() -> None:
    now = local(TOKYO, 2026, 11, 27, 0, 0)
    until = next_allowed_time(now, TCPA, [TOKYO])
    assert until == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    assert until is not None and until.utcoffset() == timedelta(0)


def test_two_zones_where_only_one_is_quiet_wait_for_both() -> None:
    # 13:30 UTC: 08:30 in New York (allowed) but 05:30 in Los Angeles (quiet).
    now = datetime(2026, 11, 26, 13, 30, tzinfo=UTC)
    assert not is_quiet(now.astimezone(NEW_YORK), TCPA)
    until = next_allowed_time(now, TCPA, [NEW_YORK, LOS_ANGELES])
    assert until == local(LOS_ANGELES, 2026, 11, 26, 8, 0)


def test_two_zones_quiet_in_turn_wait_until_both_allow() -> None:
    # 02:00 UTC: 21:00 in New York (quiet), 18:00 in Los Angeles (allowed).
    # New York allows at 13:00 UTC, but Los Angeles is quiet then until 16:00.
    now = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    until = next_allowed_time(now, TCPA, [NEW_YORK, LOS_ANGELES])
    assert until == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)


def test_the_end_of_daylight_saving_time_in_new_york() -> None:
    # 2026-11-01: New York falls back from EDT (UTC-4) to EST (UTC-5) at 02:00.
    # 01:30 UTC on that day is 21:30 EDT the evening before; 08:00 EST is 13:00
    # UTC, an hour later than the same wall clock under EDT.
    now = datetime(2026, 11, 1, 1, 30, tzinfo=UTC)
    until = next_allowed_time(now, TCPA, [NEW_YORK])
    assert until == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_the_start_of_daylight_saving_time_in_new_york() -> None:
    # 2026-03-08: 08:00 EDT is 12:00 UTC.
    now = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    until = next_allowed_time(now, TCPA, [NEW_YORK])
    assert until == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_a_window_ending_in_the_repeated_hour_ends_after_now() -> None:
    # 06:10 UTC on 2026-11-01 is 01:10 EST, the second pass of 01:10 in New
    # York: still quiet under 00:00-01:30, which ends at 01:30 EST (06:30 UTC).
    now = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)
    window = quiet("00:00", "01:30")
    assert is_quiet(now.astimezone(NEW_YORK), window)
    assert next_allowed_time(now, window, [NEW_YORK]) == datetime(
        2026, 11, 1, 6, 30, tzinfo=UTC
    )


NANP_ZONES = [ZoneInfo(name) for name in phone_time_zones(TOLL_FREE_PHONE)]
# Beyond NANP: offsets in quarter hours, a 30-minute DST (Lord Howe), DST
# changes at midnight (Santiago, Havana) and in the southern summer.
OTHER_ZONES = [
    ZoneInfo(name)
    for name in [
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "America/Santiago",
        "America/Havana",
        "Europe/London",
        "Pacific/Chatham",
        "Pacific/Kiritimati",
    ]
]
WINDOWS = [
    TCPA,
    quiet("22:00", "07:00"),
    quiet("20:30", "09:15"),
    quiet("01:00", "05:00"),
    quiet("00:00", "02:30"),  # ends inside the hour skipped in spring
    quiet("01:30", "08:00"),  # starts inside the hour repeated in autumn
]
QUARTER_HOUR = st.integers(min_value=0, max_value=95).map(
    lambda q: f"{q // 4:02d}:{q % 4 * 15:02d}"
)
ST_JOHNS = ZoneInfo("America/St_Johns")
GUAM = ZoneInfo("Pacific/Guam")
WIDE = quiet("20:30", "09:15")


def quiet_count(moment: datetime, window: QuietHours, zones: list[ZoneInfo]) -> int:
    return sum(is_quiet(moment.astimezone(z), window) for z in zones)


def minutes_from(start: datetime, span: timedelta) -> list[datetime]:
    return [
        start + timedelta(minutes=m) for m in range(int(span.total_seconds()) // 60)
    ]


def assert_next_allowed_time(
    now: datetime, window: QuietHours, zones: list[ZoneInfo]
) -> None:
    """Checks next_allowed_time against a minute-by-minute search."""
    until = next_allowed_time(now, window, zones)
    common = next(
        (
            m
            for m in minutes_from(now, COMMON_HORIZON)
            if not quiet_count(m, window, zones)
        ),
        None,
    )
    if common is not None:
        # The exact rule: the first minute allowed in every zone.
        assert until == (None if common == now else common)
        return
    # No common moment: the first minute of the day ahead quiet in fewest zones.
    day = minutes_from(now, COMPROMISE_HORIZON + timedelta(minutes=1))
    fewest = min(day, key=lambda m: quiet_count(m, window, zones))
    assert until == (None if fewest == now else fewest)
    assert until is None or until > now


@settings(max_examples=150, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=400 * 24 * 60),
    zones=st.lists(
        st.sampled_from(NANP_ZONES + OTHER_ZONES), min_size=1, max_size=6, unique=True
    ),
    window=st.sampled_from(WINDOWS) | st.builds(quiet, QUARTER_HOUR, QUARTER_HOUR),
)
def test_the_next_allowed_time_is_allowed_everywhere_and_the_first_such_time(
    minutes: int, zones: list[ZoneInfo], window: QuietHours
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    assert_next_allowed_time(now, window, zones)


@settings(max_examples=100, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=400 * 24 * 60),
    zones=st.lists(
        st.sampled_from(NANP_ZONES + OTHER_ZONES), min_size=1, max_size=6, unique=True
    ),
    window=st.sampled_from(WINDOWS) | st.builds(quiet, QUARTER_HOUR, QUARTER_HOUR),
)
def test_a_deferred_message_is_not_deferred_forever(
    minutes: int, zones: list[ZoneInfo], window: QuietHours
) -> None:
    # The sender re-checks a deferred message at the time it was given: asked
    # again then, the answer is "now", at worst after a change of UTC offset.
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    asked = [now]
    until = next_allowed_time(now, window, zones)
    while until is not None:
        assert until > asked[-1]
        asked.append(until)
        assert len(asked) <= 3, asked
        until = next_allowed_time(until, window, zones)


# --- zones with no common allowed moment ----------------------------------------
# In March St John's (UTC-2:30) allows 11:45-23:00 UTC under 20:30-09:15 and
# Guam (UTC+10) allows 23:15-10:30 UTC: every moment is quiet in one of them.


def test_st_johns_and_guam_have_no_moment_allowed_in_both() -> None:
    now = datetime(2026, 3, 11, 11, 45, tzinfo=UTC)
    zones = [ST_JOHNS, GUAM]
    assert all(
        quiet_count(m, WIDE, zones) >= 1 for m in minutes_from(now, COMMON_HORIZON)
    )


def test_without_a_common_moment_a_moment_quiet_in_one_zone_only_sends_now() -> None:
    # 11:45 UTC: 09:15 in St John's (allowed), 21:45 in Guam (quiet). No moment
    # does better, so waiting would only defer the message again and again.
    now = datetime(2026, 3, 11, 11, 45, tzinfo=UTC)
    assert quiet_zones(now, WIDE, [ST_JOHNS, GUAM]) == [GUAM]
    assert next_allowed_time(now, WIDE, [ST_JOHNS, GUAM]) is None


def test_without_a_common_moment_wait_until_only_one_zone_is_quiet() -> None:
    # 11:00 UTC is quiet in both (08:30 in St John's, 21:00 in Guam); from
    # 11:45 only Guam is quiet.
    now = datetime(2026, 3, 11, 11, 0, tzinfo=UTC)
    assert quiet_zones(now, WIDE, [ST_JOHNS, GUAM]) == [ST_JOHNS, GUAM]
    until = next_allowed_time(now, WIDE, [ST_JOHNS, GUAM])
    assert until == datetime(2026, 3, 11, 11, 45, tzinfo=UTC)
    assert next_allowed_time(until, WIDE, [ST_JOHNS, GUAM]) is None


def test_without_a_common_moment_the_evening_overlap_waits_for_guam() -> None:
    # 23:05 UTC: St John's is quiet from 23:00 and Guam until 23:15 UTC.
    now = datetime(2026, 3, 11, 23, 5, tzinfo=UTC)
    until = next_allowed_time(now, WIDE, [GUAM, ST_JOHNS])
    assert until == datetime(2026, 3, 11, 23, 15, tzinfo=UTC)
    assert quiet_zones(until, WIDE, [GUAM, ST_JOHNS]) == [ST_JOHNS]


def test_in_winter_st_johns_and_guam_share_a_quarter_hour() -> None:
    # In January St John's is on UTC-3:30 and allows 12:45-00:00 UTC; Guam
    # allows 23:15-10:30 UTC: both allow 23:15-00:00 UTC.
    now = datetime(2026, 1, 14, 11, 45, tzinfo=UTC)
    until = next_allowed_time(now, WIDE, [ST_JOHNS, GUAM])
    assert until == datetime(2026, 1, 14, 23, 15, tzinfo=UTC)
    assert quiet_zones(until, WIDE, [ST_JOHNS, GUAM]) == []


def test_a_quiet_end_skipped_by_spring_forward_ends_at_the_jump() -> None:
    # 2026-03-08 New York jumps from 02:00 EST to 03:00 EDT (07:00 UTC); a
    # window ending at 02:30 ends then, there being no 02:30 that night.
    now = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 01:00 EST
    window = quiet("00:00", "02:30")
    assert next_allowed_time(now, window, [NEW_YORK]) == datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )


def test_every_zone_of_a_toll_free_number_is_honoured() -> None:
    # +1 800 spans Guam (UTC+10) to Pago Pago (UTC-11); all of them allow
    # sending only between 22:00 and 00:30 UTC under 21:00-08:00.
    now = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    until = next_allowed_time(now, TCPA, NANP_ZONES)
    assert until == datetime(2026, 11, 26, 22, 0, tzinfo=UTC)


# --- recipient_zones -----------------------------------------------------------


def test_the_user_timezone_comes_first() -> None:
    zones = recipient_zones(
        user("Asia/Tokyo", "Europe/Paris"), SF_PHONE, "Asia/Colombo"
    )
    assert zones == [TOKYO]


def test_then_the_timezone_attribute() -> None:
    zones = recipient_zones(user(None, "Asia/Colombo"), SF_PHONE, "Asia/Tokyo")
    assert zones == [COLOMBO]


@pytest.mark.parametrize("bad", ["Mars/Olympus_Mons", "", "../../etc/passwd", "EST5"])
def test_an_invalid_user_timezone_falls_through_to_the_attribute(bad: str) -> None:
    zones = recipient_zones(user(bad, "Asia/Colombo"), SF_PHONE, None)
    assert zones == [COLOMBO]


@pytest.mark.parametrize("bad", ["Not/AZone", 5, {"zone": "UTC"}, None])
def test_an_invalid_attribute_falls_through_to_the_phone(bad: Any) -> None:
    assert recipient_zones(user(None, bad), SF_PHONE, "Asia/Tokyo") == [LOS_ANGELES]


@pytest.mark.parametrize(
    ("phone", "zone"),
    [(SF_PHONE, LOS_ANGELES), (COLOMBO_PHONE, COLOMBO), ("+12125550100", NEW_YORK)],
)
def test_the_phone_number_gives_the_zone(phone: str, zone: ZoneInfo) -> None:
    assert recipient_zones(user(phone=phone), phone, None) == [zone]


def test_a_number_spanning_several_zones_gives_them_all() -> None:
    zones = recipient_zones(None, TOLL_FREE_PHONE, "Asia/Tokyo")
    assert NEW_YORK in zones and LOS_ANGELES in zones and len(zones) > 2
    assert TOKYO not in zones


def test_an_unknown_user_still_gets_the_phone_zone() -> None:
    assert recipient_zones(None, COLOMBO_PHONE, "Asia/Tokyo") == [COLOMBO]


def test_a_number_without_a_zone_takes_the_campaign_default() -> None:
    assert recipient_zones(user(phone=NOWHERE_PHONE), NOWHERE_PHONE, "Asia/Tokyo") == [
        TOKYO
    ]


@pytest.mark.parametrize("default", [None, "", "Nowhere/Special"])
def test_utc_when_nothing_else_holds(default: str | None) -> None:
    zones = recipient_zones(
        user("Bad/Zone", "Worse/Zone", NOWHERE_PHONE), NOWHERE_PHONE, default
    )
    assert zones == [UTC_ZONE]


def test_a_phone_in_quiet_hours_defers_a_user_without_a_timezone() -> None:
    # 15:00 UTC: 07:00 in San Francisco (quiet), 20:30 in Colombo (allowed).
    now = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    sf = recipient_zones(user(), SF_PHONE, None)
    colombo = recipient_zones(user(phone=COLOMBO_PHONE), COLOMBO_PHONE, None)
    assert next_allowed_time(now, TCPA, sf) == local(LOS_ANGELES, 2026, 11, 26, 8, 0)
    assert next_allowed_time(now, TCPA, colombo) is None
