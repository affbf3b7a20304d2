"""Masking of emails, phone numbers and payment card numbers in captured strings (``CARROT_TRACE_REDACT``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from carrot_ai._core._guard import report_internal_error

EMAIL_MASK = "[EMAIL]"
PHONE_MASK = "[PHONE]"
CARD_MASK = "[CARD]"
FAILED_MASK = "[REDACTION FAILED]"

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
# International (+CC ...) or North-American style numbers; needs separators or a + so plain ids do not match.
_PHONE = re.compile(
    r"(?<![\w+-])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
    r"|\d{3}[ .-]\d{3}[ .-]\d{4})(?![\w-])"
)


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return CARD_MASK if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


def redact_text(text: str) -> str:
    """Mask emails, card numbers (Luhn-checked) and phone numbers in ``text``."""
    if not text or len(text) < 6:
        return text
    if "@" in text:
        text = _EMAIL.sub(EMAIL_MASK, text)
    if sum(c.isdigit() for c in text[:2_000_000]) >= 7:
        text = _CARD.sub(_card, text)
        text = _PHONE.sub(PHONE_MASK, text)
    return text


def make_redactor(custom: Callable[[str], str] | None = None) -> Callable[[Any], Any]:
    """Return a function that masks every string inside JSON-safe data; a failure masks the whole string."""
    mask = custom or redact_text

    def redact_string(value: str) -> str:
        try:
            result = mask(value)
        except Exception as exc:
            report_internal_error("redaction", exc)
            return FAILED_MASK
        return result if isinstance(result, str) else FAILED_MASK

    def redact(data: Any) -> Any:
        if isinstance(data, str):
            return redact_string(data)
        if isinstance(data, dict):
            return {k: redact(v) for k, v in data.items()}
        if isinstance(data, list):
            return [redact(v) for v in data]
        return data

    return redact
