"""Quiet hours in the recipient's local time, and the time-zone fallback chain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.audience.phones import phone_time_zones
from shared.audience.users import User
from shared.campaigns.models import QuietHours

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


def _quiet_end_after(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """The first end of the quiet period at or after `moment`, in UTC."""
    local = moment.astimezone(zone)
    end = _clock(quiet.end)
    target = moment.astimezone(UTC_ZONE)
    for day in range(0, 3):
        wall = datetime.combine(local.date() + timedelta(days=day), end, tzinfo=zone)
        # A wall time that repeats when clocks go back has two instants
        # (fold 0 and 1); compare in UTC, where `fold` is not ignored.
        for candidate in (wall.replace(fold=0), wall.replace(fold=1)):
            instant = candidate.astimezone(UTC_ZONE)
            if instant >= target:
                return instant
    return moment


def next_allowed_time(
    now: datetime, quiet: QuietHours | None, zones: Sequence[ZoneInfo]
) -> datetime | None:
    """None when sending is allowed now in every zone, else the next time it is."""
    if quiet is None:
        return None
    moment = now
    # Each step moves to the end of one zone's quiet period; a few suffice.
    for _ in range(len(zones) * 3 + 1):
        quiet_zones = [z for z in zones if is_quiet(moment.astimezone(z), quiet)]
        if not quiet_zones:
            return None if moment == now else moment
        moment = max(_quiet_end_after(moment, z, quiet) for z in quiet_zones)
    return moment
