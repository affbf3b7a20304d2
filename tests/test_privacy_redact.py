"""Redaction: what is masked, what is never masked, and that it stays linear and fail-closed."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carrot_ai._core import _redact
from carrot_ai._core._redact import CARD_MASK, EMAIL_MASK, FAILED_MASK, PHONE_MASK, make_redactor, redact_text

# --- golden: masked ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+tag@example.co.uk today", f"write to {EMAIL_MASK} today"),
        ("JOHN_DOE@EXAMPLE.COM", EMAIL_MASK),
        ("josé.garcía@correo.es, thanks", f"{EMAIL_MASK}, thanks"),
        ("<a@b.io>", f"<{EMAIL_MASK}>"),
        ("card 4111 1111 1111 1111 exp 12/29", f"card {CARD_MASK} exp 12/29"),
        ("4111-1111-1111-1111", CARD_MASK),
        ("pay with 5555555555554444.", f"pay with {CARD_MASK}."),
        ("mastercard 2223000048400011", f"mastercard {CARD_MASK}"),
        ("amex 3782 822463 10005", f"amex {CARD_MASK}"),
        ("amex 378282246310005", f"amex {CARD_MASK}"),
        ("discover 6011111111111117", f"discover {CARD_MASK}"),
        ("visa13 4222222222222", f"visa13 {CARD_MASK}"),
        ("card:4111111111111111", f"card:{CARD_MASK}"),
        ("call +1 (415) 555-2671 now", f"call {PHONE_MASK} now"),
        ("+14155552671", PHONE_MASK),
        ("(415) 555-2671", PHONE_MASK),
        ("415-555-2671", PHONE_MASK),
        ("415.555.2671", PHONE_MASK),
        ("London +44 20 7946 0958", f"London {PHONE_MASK}"),
        ("Paris +33 1 23 45 67 89", f"Paris {PHONE_MASK}"),
        ("Berlin +49 30 12345678", f"Berlin {PHONE_MASK}"),
        (
            "me: a@b.com, 4111111111111111, +1 415 555 2671",
            f"me: {EMAIL_MASK}, {CARD_MASK}, {PHONE_MASK}",
        ),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


# --- golden: never masked ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # order numbers
        "order 112-1234567-1234567",
        "Order #A-10023 shipped",
        "ORD-2024-000123",
        "ORD-4111111111111111",
        "invoice INV/2024/000045",
        "order no. 100234567",
        # dates and times
        "2024-01-15",
        "15/01/2024",
        "01.15.2024",
        "Jan 15, 2024 at 10:30",
        "2024-01-15T10:30:00Z",
        "2024-01-15T10:30:00.123456+00:00",
        "2024-01-15 10:30:00.123",
        "20240115T103000Z",
        "epoch 1705312200 and 1705312200000 and 1705312200123456",
        # identifiers
        "123e4567-e89b-12d3-a456-426614174000",
        "00000000-0000-0000-0000-000000000000",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "isbn 978-3-16-148410-0",
        "sku 0012345678905",
        # versions
        "v1.2.3",
        "python 3.11.4",
        "release 2024.1.15",
        "10.4.12-beta.1",
        # network
        "192.168.100.200",
        "10.0.0.255:8080",
        "2001:db8::8a2e:370:7334",
        "00:1B:44:11:3A:B7",
        # amounts and numbers
        "$1,234,567.89",
        "total 4111.11 EUR",
        "pi is 3.14159265358979",
        "4111 1111 1111 1112",  # a card-shaped number that fails the Luhn check
        "1234567890123456",  # 16 digits that no card network issues (prefix 1)
        "9999999999999995",  # Luhn-valid, prefix 9
        "user@localhost",
        "@handle and #tag",
    ],
)
def test_non_personal_data_is_never_masked(text: str) -> None:
    assert redact_text(text) == text


# --- properties ---------------------------------------------------------------------------------------------------

_local = st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20).filter(
    lambda s: s[0].isalnum()
)
_label = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)
_tld = st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=6)
_emails = st.builds(
    lambda a, labels, t: f"{a}@{'.'.join(labels)}.{t}", _local, st.lists(_label, min_size=1, max_size=3), _tld
)
_filler = st.text(alphabet=string.ascii_letters + " ,;:!?()", max_size=30).map(lambda s: f" {s} ")


def _with_luhn_digit(body: str) -> str:
    for check in "0123456789":
        if _redact.luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


_cards = st.builds(
    lambda prefix, rest, length: _with_luhn_digit(prefix + rest[: length - len(prefix) - 1]),
    st.sampled_from(["4", "51", "55", "2221", "2720", "34", "37", "6011", "65"]),
    st.text(alphabet=string.digits, min_size=18, max_size=18),
    st.integers(min_value=15, max_value=16),
)


def _grouped(card: str, separator: str) -> str:
    return separator.join(card[i : i + 4] for i in range(0, len(card), 4))


@given(email=_emails, before=_filler, after=_filler)
def test_any_email_in_text_is_masked(email: str, before: str, after: str) -> None:
    out = redact_text(before + email + after)
    assert email not in out
    assert EMAIL_MASK in out


@given(card=_cards, separator=st.sampled_from(["", " ", "-"]), before=_filler, after=_filler)
def test_any_luhn_valid_card_in_text_is_masked(card: str, separator: str, before: str, after: str) -> None:
    written = _grouped(card, separator) if separator else card
    out = redact_text(before + written + after)
    assert written not in out
    assert CARD_MASK in out


@given(value=st.uuids().map(str))
def test_uuids_are_never_masked(value: str) -> None:
    assert redact_text(f"id {value} ok") == f"id {value} ok"


@given(value=st.datetimes().map(lambda d: d.isoformat()))
def test_iso_timestamps_are_never_masked(value: str) -> None:
    assert redact_text(f"at {value}") == f"at {value}"


@given(value=st.ip_addresses().map(str))
def test_ip_addresses_are_never_masked(value: str) -> None:
    assert redact_text(f"from {value}") == f"from {value}"


@given(parts=st.lists(st.integers(min_value=0, max_value=999), min_size=2, max_size=4))
def test_version_strings_are_never_masked(parts: list[int]) -> None:
    version = "v" + ".".join(map(str, parts))
    assert redact_text(f"release {version}") == f"release {version}"


@given(number=st.integers(min_value=0, max_value=10**12))
def test_prefixed_order_numbers_are_never_masked(number: int) -> None:
    text = f"order ORD-{number:012d} placed"
    assert redact_text(text) == text


@given(text=st.text(max_size=300))
def test_redaction_is_idempotent_and_always_returns_text(text: str) -> None:
    once = redact_text(text)
    assert isinstance(once, str)
    assert redact_text(once) == once


@given(text=st.text(alphabet=string.ascii_letters + " .,;:!?'\"()-", max_size=300))
def test_text_without_digits_or_at_sign_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


# --- adversarial input: linear time ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    [
        "%" * 1_000_000 + "@!",
        ("a" * 50 + "@") * 20_000,
        "a@b" + ".c" * 500_000,
        "x@" * 500_000,
        "1" * 1_000_000,
        "1 " * 500_000,
        "1-" * 500_000,
        "+1" * 500_000,
        "(415) " * 160_000,
        "4111 " * 200_000,
        "a.b-c_d+" * 125_000 + "@",
    ],
    ids=["percent", "locals", "dots", "at-signs", "digits", "spaced", "dashed", "plus", "parens", "groups", "mixed"],
)
def test_megabyte_adversarial_strings_finish(text: str) -> None:
    assert isinstance(redact_text(text), str)


# --- structured data and failures ---------------------------------------------------------------------------------


def test_redactor_masks_every_string_in_nested_data_including_keys() -> None:
    redact = make_redactor()
    data: Any = {"to": ["a@b.com", {"phone": "+1 415 555 2671"}], "bob@example.com": 3, "n": 4111111111111111}
    assert redact(data) == {"to": [EMAIL_MASK, {"phone": PHONE_MASK}], EMAIL_MASK: 3, "n": 4111111111111111}


def test_custom_masking_function_runs_after_the_built_in_patterns() -> None:
    redact = make_redactor(lambda s: s.replace("ACME", "[ORG]"))
    assert redact("ACME: mail a@b.com") == f"[ORG]: mail {EMAIL_MASK}"


def test_failing_custom_masking_function_replaces_the_value() -> None:
    def broken(value: str) -> str:
        raise RuntimeError("boom")

    redact = make_redactor(broken)
    # keys get the built-in patterns only, so the structure survives
    assert redact({"secret": "my email is a@b.com", "a@b.com": 1}) == {"secret": FAILED_MASK, EMAIL_MASK: 1}
    assert redact(["my email is a@b.com", 3]) == [FAILED_MASK, 3]


def test_custom_masking_function_returning_non_text_replaces_the_value() -> None:
    redact = make_redactor(lambda s: None)  # type: ignore[arg-type, return-value]
    assert redact(["raw value"]) == [FAILED_MASK]


@settings(max_examples=50)
@given(card=_cards)
def test_card_number_digits_inside_identifiers_are_not_masked(card: str) -> None:
    assert redact_text(f"SKU-{card}") == f"SKU-{card}"
