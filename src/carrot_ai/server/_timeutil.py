"""Timestamps of the local server: ISO 8601 or epoch seconds in, integer microseconds since the epoch inside."""

from __future__ import annotations

import datetime

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MIN_SECONDS = -62_135_596_800.0  # 0001-01-01T00:00:00Z
_MAX_SECONDS = 253_402_300_800.0  # 10000-01-01T00:00:00Z


def parse_timestamp_us(value: str) -> int:
    """Parse ISO 8601 (``Z`` or an offset; no offset means UTC) or epoch seconds into epoch microseconds.

    Raises ``ValueError`` for anything else.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # inf, nan and 1e300 are floats too: keep to the years a datetime (and a 64-bit column) can hold.
        if not _MIN_SECONDS <= seconds < _MAX_SECONDS:
            raise ValueError(f"epoch seconds {text!r} out of range (years 1 to 9999)")
        return round(seconds * 1_000_000)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.datetime.fromisoformat(text)  # raises ValueError with its own message
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_timestamp_us(us: int) -> str:
    """Epoch microseconds as ISO 8601 in UTC."""
    return (_EPOCH + datetime.timedelta(microseconds=us)).isoformat()
