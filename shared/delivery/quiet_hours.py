"""Quiet hours in the recipient's local time, and the time-zone fallback chain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.audience.phones import phone_time_zones
from shared.store.campaigns import QuietHours
from shared.store.users import User

UTC_ZONE = ZoneInfo("UTC")


def _zone(name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # An invalid zone falls through to the next source; it never drops a send.
        return None


def recipient_zones(
    user: User | None, phone: str, default_timezone: str | None
) -> list[ZoneInfo]:
    """User timezone → attribute timezone → the phone's zones → campaign → UTC."""
    candidates: list[object] = []
    if user is not None:
        candidates += [user.timezone, user.attributes.get("timezone")]
    for name in candidates:
        zone = _zone(name)
        if zone:
            return [zone]
    phone_zones = [z for z in (_zone(n) for n in phone_time_zones(phone)) if z]
    if phone_zones:
        return phone_zones
    zone = _zone(default_timezone)
    return [zone] if zone else [UTC_ZONE]


def parse_quiet_hours(spec: str) -> QuietHours:
    """ "21:00-08:00" → QuietHours(start="21:00", end="08:00")."""
    start, _, end = spec.partition("-")
    return QuietHours(start=start.strip(), end=end.strip())


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def is_quiet(local: datetime, quiet: QuietHours) -> bool:
    start, end, now = _clock(quiet.start), _clock(quiet.end), local.time()
    if start == end:
        return False
    if start < end:
        return start <= now < end
    return now >= start or now < end  # wraps past midnight


# A moment allowed in every zone, if there is one, recurs within a day; three
# days leave room for a change of UTC offset on the way.
COMMON_HORIZON = timedelta(days=3)
# Where the zones admit no common moment, the best compromise within a day.
COMPROMISE_HORIZON = timedelta(days=1)
# Offset changes are at least this far apart in every zone we know of.
_OFFSET_PROBE = timedelta(hours=6)


def _quiet_ends(zone: ZoneInfo, quiet: QuietHours, start: datetime) -> list[datetime]:
    """Every instant, in UTC, at which the local clock reads the quiet end."""
    end = _clock(quiet.end)
    first_day = start.astimezone(zone).date() - timedelta(days=1)
    instants = []
    for day in range(COMMON_HORIZON.days + 3):
        wall = datetime.combine(first_day + timedelta(days=day), end, tzinfo=zone)
        # A wall time that repeats when clocks go back has two instants
        # (fold 0 and 1); compare in UTC, where `fold` is not ignored.
        instants += [wall.replace(fold=f).astimezone(UTC_ZONE) for f in (0, 1)]
    return instants


def _offset_changes(zone: ZoneInfo, start: datetime, stop: datetime) -> list[datetime]:
    """The instants in (start, stop] at which the zone's UTC offset changes.

    Clocks that jump forward past the quiet end (or back out of the quiet
    period) end it at the jump, not at a wall time.
    """
    changes = []
    low = start
    while low < stop:
        high = min(low + _OFFSET_PROBE, stop)
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            changes.append(_bisect_offset_change(zone, low, high))
        low = high
    return changes


def _bisect_offset_change(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def _candidates(
    now: datetime, quiet: QuietHours, zones: Sequence[ZoneInfo]
) -> list[datetime]:
    """Now and every later instant at which some zone's quiet period can end.

    Being quiet somewhere only stops at one of these, so the earliest moment
    allowed everywhere (or quiet in the fewest zones) is always among them.
    """
    stop = now + COMMON_HORIZON
    instants = {now}
    for zone in zones:
        ends = _quiet_ends(zone, quiet, now) + _offset_changes(zone, now, stop)
        instants.update(i for i in ends if now < i <= stop)
    return sorted(instants)


def quiet_zones(
    moment: datetime, quiet: QuietHours, zones: Sequence[ZoneInfo]
) -> list[ZoneInfo]:
    """The zones in which `moment` falls within the quiet hours."""
    return [zone for zone in zones if is_quiet(moment.astimezone(zone), quiet)]


def next_allowed_time(
    now: datetime, quiet: QuietHours | None, zones: Sequence[ZoneInfo]
) -> datetime | None:
    """None when sending is allowed now, else the time (UTC) at which it is.

    Allowed means outside the quiet hours in every zone of the recipient. Some
    zone sets admit no such moment (St John's and Guam under 20:30-09:15: one is
    always quiet). Deferring forever would never deliver, so the rule is then:
    the earliest moment within a day that is quiet in the fewest zones. When
    `now` is such a moment the answer is None (send now): the deferred message,
    re-checked at the time given here, is sent rather than deferred again.
    """
    if quiet is None or not quiet_zones(now, quiet, zones):
        return None
    now = now.astimezone(UTC_ZONE)
    candidates = _candidates(now, quiet, zones)
    for moment in candidates:
        if not any(is_quiet(moment.astimezone(zone), quiet) for zone in zones):
            return moment
    # No common moment: fewest quiet zones within a day, then the earliest.
    horizon = now + COMPROMISE_HORIZON
    best = min(
        (len(quiet_zones(moment, quiet, zones)), moment)
        for moment in candidates
        if moment <= horizon
    )[1]
    return None if best == now else best
