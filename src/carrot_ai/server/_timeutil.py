"""Timestamps of the local server: ISO 8601 or epoch seconds in, integer microseconds since the epoch inside."""

from __future__ import annotations

import datetime

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_timestamp_us(value: str) -> int:
    """Parse ISO 8601 (``Z`` or an offset; no offset means UTC) or epoch seconds into epoch microseconds.

    Raises ``ValueError`` for anything else.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    try:
        return round(float(text) * 1_000_000)
    except ValueError:
        pass
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
