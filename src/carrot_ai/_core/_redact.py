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

Speed: the precise patterns only run where they can match (around "@" signs, and on runs of digits and separators
found by a pattern the regex engine scans at C speed), so ordinary prose costs a few nanoseconds a character.
Every precise pattern starts at the beginning of a run of its own characters (a look-behind excludes the others)
and its quantifiers are bounded, so no input backtracks catastrophically (tests feed adversarial megabyte
strings); the work stays linear in the text.
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
_EMAIL_PATTERN = re.compile(rf"{_EMAIL}(?![\w-])")
_NUMBER_PATTERN = re.compile(rf"(?P<card>{_CARD})(?![\w-])|(?P<phone>{_PHONE})(?![\w-])")
# Where a card or phone number can be: runs of digits and their separators. The pattern starts with a character
# set, which the regex engine skips to at C speed, so prose costs a few nanoseconds a character.
_NUMBER_RUN = re.compile(r"[0-9+(](?:[ ().+-]{0,3}[0-9]){5,}")
_SEPARATORS = str.maketrans("", "", " ().+-")
# How far an email reaches around its "@": 64 local-part characters before, 9 labels and a TLD after.
_EMAIL_BEFORE = 64
_EMAIL_AFTER = 640


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


def _number_mask(match: re.Match[str]) -> str | None:
    if match.lastgroup == "card":
        return CARD_MASK if is_card_number(match.group(0).replace(" ", "").replace("-", "")) else None
    return PHONE_MASK


def _email_spans(text: str) -> list[tuple[int, int, str]]:
    """Emails, searched only in the stretches around "@" signs (nearby ones merged, so each is scanned once)."""
    spans: list[tuple[int, int, str]] = []
    length = len(text)
    at = text.find("@")
    while at != -1:
        last = at
        following = text.find("@", last + 1, last + _EMAIL_AFTER)
        while following != -1:
            last = following
            following = text.find("@", last + 1, last + _EMAIL_AFTER)
        end = min(length, last + _EMAIL_AFTER)
        begin = max(0, at - _EMAIL_BEFORE, spans[-1][1] if spans else 0)
        spans.extend((m.start(), m.end(), EMAIL_MASK) for m in _EMAIL_PATTERN.finditer(text, begin, end))
        at = text.find("@", end)
    return spans


def _number_spans(text: str) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    length = len(text)
    for run in _NUMBER_RUN.finditer(text):
        found = run.group(0)
        # Fewer digits than any phone or card (dates, times, amounts): nothing to mask here.
        if len(found.translate(_SEPARATORS)) < (6 if "+" in found else 10):
            continue
        # One character past the run, so the closing look-ahead sees what really follows.
        for match in _NUMBER_PATTERN.finditer(text, run.start(), min(length, run.end() + 1)):
            mask = _number_mask(match)
            if mask is not None:
                spans.append((match.start(), match.end(), mask))
    return spans


def redact_text(text: str) -> str:
    """Mask emails, card numbers (Luhn-checked) and phone numbers in ``text``."""
    if len(text) < 6:
        return text
    spans = _email_spans(text) if "@" in text else []
    numbers = _number_spans(text)
    if numbers:
        spans = sorted(spans + numbers) if spans else numbers
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end, mask in spans:
        if start < position:  # overlaps an earlier mask (an email's digits): already covered
            continue
        parts.append(text[position:start])
        parts.append(mask)
        position = end
    parts.append(text[position:])
    return "".join(parts)


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
