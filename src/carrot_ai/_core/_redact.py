"""Masking of emails, phone numbers and payment card numbers in captured strings (``CARROT_TRACE_REDACT``).

What is masked:

* **emails**: ``local@domain.tld`` -> ``[EMAIL]``.
* **payment cards**: 13-19 digits, contiguous or in groups of four (Amex 4-6-5) separated by single spaces or
  dashes, whose issuer prefix is a card network's (2-6; Mastercard's 2-series only from 2221 to 2720) and that
  pass the Luhn checksum -> ``[CARD]``.
* **phone numbers**: international numbers written with ``+`` (``+44 20 7946 0958``, ``+14155552671``) and
  North-American numbers with separators (``(415) 555-2671``, ``415-555-2671``, ``415.555.2671``) -> ``[PHONE]``.

What is left alone, on purpose (golden tests keep it so): order numbers, dates, ISO 8601 timestamps, epoch
timestamps, UUIDs, version strings, IP addresses, ISBNs, amounts. A match must start and end at a word boundary
that is not a dash, so digits inside identifiers (``ORD-2024-4111111111111111``) are not masked.

Speed: one pass of one compiled pattern, linear in the text. Every pattern starts at the beginning of a run of
its own characters (a look-behind excludes them), and its quantifiers are bounded, so no input backtracks
catastrophically (a test feeds adversarial megabyte strings).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from carrot_ai._core._guard import report_internal_error

EMAIL_MASK = "[EMAIL]"
PHONE_MASK = "[PHONE]"
CARD_MASK = "[CARD]"
FAILED_MASK = "[REDACTION FAILED]"

# ASCII digits only: ``\d`` would also match other scripts' digits, which the Luhn check cannot read.
# Emails may use letters of any script; the look-behind covers every local-part character, so a match can only
# start where a run of them starts.
_EMAIL = r"(?<![\w.%+-])[\w.%+-]{1,64}@[^\W_](?:[\w-]{0,62})(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,24}"
_CARD = (
    r"(?<![\w-])(?:[0-9]{13,19}"  # contiguous
    r"|[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,7}"  # 4-4-4-(1..7): 13 to 19 digits
    r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})"  # Amex / Diners 4-6-5, 4-6-4
)
_PHONE = (
    r"(?<![\w+-])(?:\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){2,4}"
    r"|\([0-9]{3}\)[ .-]?[0-9]{3}[ .-][0-9]{4}"
    r"|[0-9]{3}[ .-][0-9]{3}[ .-][0-9]{4})"
)
# One pass: the first alternative that matches at a position wins (emails before cards before phones).
_PATTERN = re.compile(
    rf"(?P<email>{_EMAIL})(?![\w-])|(?P<card>{_CARD})(?![\w-])|(?P<phone>{_PHONE})(?![\w-])",
)
# A quick filter: text with neither "@" nor seven digits close together cannot hold anything we mask.
_MAYBE_NUMBER = re.compile(r"[0-9](?:[^0-9]{0,3}[0-9]){6}")


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    """Whether a digit string looks like a payment card number: length, issuer prefix and Luhn checksum."""
    if not 13 <= len(digits) <= 19:
        return False
    first = digits[0]
    if first == "2":
        if not 2221 <= int(digits[:4]) <= 2720:  # Mastercard's 2-series; nothing else issues from 2
            return False
    elif first not in "3456":
        return False
    return luhn_valid(digits)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "email":
        return EMAIL_MASK
    if kind == "card":
        text = match.group(0)
        return CARD_MASK if is_card_number(text.replace(" ", "").replace("-", "")) else text
    return PHONE_MASK


def redact_text(text: str) -> str:
    """Mask emails, card numbers (Luhn-checked) and phone numbers in ``text``."""
    if len(text) < 6:
        return text
    if "@" not in text and _MAYBE_NUMBER.search(text) is None:
        return text
    return _PATTERN.sub(_replace, text)


def make_string_redactor(custom: Callable[[str], str] | None = None) -> Callable[[str], str]:
    """Return the masking function for one string: the built-in patterns, then ``custom`` if given.

    A masking function that raises or returns something other than a string makes the whole string
    ``"[REDACTION FAILED]"``: a value is never sent unmasked.
    """

    def redact_string(value: str) -> str:
        try:
            result = redact_text(value)
        except Exception as exc:
            report_internal_error("redaction", exc)  # our bug: counted, logged once, re-raised in our tests
            return FAILED_MASK
        if custom is not None:
            try:
                result = custom(result)
            except Exception as exc:
                _report_user_error(exc)
                return FAILED_MASK
        return result if isinstance(result, str) else FAILED_MASK

    return redact_string


def make_redactor(custom: Callable[[str], str] | None = None) -> Callable[[Any], Any]:
    """Return a function that masks every string inside JSON-safe data (keys with the built-in patterns only)."""
    redact_string = make_string_redactor(custom)
    redact_key = make_string_redactor(None) if custom is not None else redact_string

    def redact(data: Any) -> Any:
        if isinstance(data, str):
            return redact_string(data)
        if isinstance(data, dict):
            return {redact_key(k): redact(v) for k, v in data.items()}
        if isinstance(data, list):
            return [redact(v) for v in data]
        return data

    return redact


def _report_user_error(exc: Exception) -> None:
    # The user's masking function failing is not our bug: count and log it once, never re-raise, even in strict mode.
    try:
        report_internal_error("redact_fn", exc)
    except Exception:
        pass
