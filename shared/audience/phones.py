"""Phone numbers: normalisation to E.164 with phonenumbers, and their regions."""

from __future__ import annotations

import phonenumbers
from phonenumbers import timezone as phone_timezone

_CHANNEL_PREFIXES = ("whatsapp:", "sms:")


class InvalidPhone(ValueError):
    """The input is not a phone number that phonenumbers holds valid."""


def normalize_phone(raw: object, default_region: str = "US") -> str:
    """Return the E.164 form of `raw`, stripping `whatsapp:`/`sms:` prefixes."""
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise InvalidPhone("phone must be a string")
    text = str(raw).strip()
    lowered = text.lower()
    for prefix in _CHANNEL_PREFIXES:
        if lowered.startswith(prefix):
            text = text[len(prefix) :].strip()
            break
    if not text:
        raise InvalidPhone("phone is empty")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_region(e164: str) -> str | None:
    """ISO 3166 region of an E.164 number (e.g. "US", "LK")."""
    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.region_code_for_number(parsed)


def phone_time_zones(e164: str) -> list[str]:
    """IANA zones phonenumbers associates with the number (may be several)."""
    parsed = phonenumbers.parse(e164, None)
    zones = phone_timezone.time_zones_for_number(parsed)
    return [z for z in zones if z != "Etc/Unknown"]
