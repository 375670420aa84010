"""The dialling policy (issue 25): one decision for every number the system dials. Russian
numbers in every usual form become 11 digits from 7; international, premium, short and
service numbers and anything that is not a real Russian number are refused with a Russian
message; settings' prefixes open or close more."""

from __future__ import annotations

import pytest

from ivr.dialling import (
    DEFAULT,
    DiallingPolicy,
    NumberRefused,
    Refusal,
    caller_id,
    carrier_dids,
    carrier_forms,
    display,
)
from ivr.settings import Settings, SettingsError, load_settings

from ..conftest import hotline_environ


@pytest.mark.parametrize("typed", [
    "+79001234567", "+7 900 123-45-67", "89001234567", "8 (900) 123-45-67", "79001234567",
    "9001234567", "900.123.45.67", " 8-900-123-45-67 ",
])
def test_every_russian_form_becomes_eleven_digits(typed: str) -> None:
    assert DEFAULT.decide(typed) == "79001234567"


@pytest.mark.parametrize(("typed", "expected"), [
    ("84951234567", "74951234567"),    # a city number
    ("88001234567", "78001234567"),    # toll-free: the citizen pays nothing
    ("4951234567", "74951234567"),
])
def test_city_and_toll_free_numbers_are_dialled(typed: str, expected: str) -> None:
    assert DEFAULT.decide(typed) == expected


@pytest.mark.parametrize(("typed", "reason"), [
    ("810375291234567", Refusal.INTERNATIONAL),   # dialled abroad from Russia
    ("00375291234567", Refusal.INTERNATIONAL),
    ("+375291234567", Refusal.INTERNATIONAL),     # another country code
    ("+1 202 555 0123", Refusal.INTERNATIONAL),
    ("+77012345678", Refusal.INTERNATIONAL),      # Kazakhstan shares +7
    ("81037529123", Refusal.INTERNATIONAL),       # 11 keys typed in the IVR
    ("88091234567", Refusal.PREMIUM),
    ("8-809-123-45-67", Refusal.PREMIUM),
    ("+78031234567", Refusal.PREMIUM),
    ("112", Refusal.SHORT),
    ("01", Refusal.SHORT),
    ("0911", Refusal.SHORT),
    ("100", Refusal.SHORT),
    ("+70001234567", Refusal.INVALID),
    ("8900123456", Refusal.INVALID),              # ten digits, no such range
    ("890012345678", Refusal.INVALID),            # twelve digits
    ("", Refusal.EMPTY),
    ("   ", Refusal.EMPTY),
    ("89001234567\r\nAction: Originate", Refusal.MALFORMED),
    ("8900123456x", Refusal.MALFORMED),
    ("+7 900 123-45-67 доб. 12", Refusal.MALFORMED),
    ("*#", Refusal.MALFORMED),
    ("(-)", Refusal.MALFORMED),
])
def test_refused_by_default_with_a_russian_message(typed: str, reason: Refusal) -> None:
    with pytest.raises(NumberRefused) as refused:
        DEFAULT.decide(typed)
    assert refused.value.reason is reason
    assert refused.value.status == 422 and refused.value.error_id == "number_refused"
    message = str(refused.value)
    assert any("а" <= ch <= "я" for ch in message), "a message people read, in Russian"
    assert DEFAULT.refusal(typed) == message


def test_the_messages_name_the_kind_of_number() -> None:
    assert "международные" in DEFAULT.refusal("+375291234567")
    assert "платные" in DEFAULT.refusal("88091234567")
    assert "Короткие" in DEFAULT.refusal("112")
    assert DEFAULT.refusal("89001234567") == ""


def test_allow_prefixes_open_international_and_premium_numbers_only() -> None:
    policy = DiallingPolicy(allow_prefixes=("375", "7809", "7701"))
    assert policy.decide("810 375 29 123-45-67") == "+375291234567"
    assert policy.decide("+375291234567") == "+375291234567"
    assert policy.decide("8-809-123-45-67") == "78091234567"
    assert policy.decide("+7 701 234 56 78") == "+77012345678"   # Kazakhstan, not Russia
    # What the policy returns is what the dialer decides on again: the same answer.
    for number in ("+375291234567", "78091234567", "+77012345678"):
        assert policy.decide(policy.decide(number)) == policy.decide(number)
    assert DEFAULT.refusal("375291234567"), "twelve digits are no Russian number"
    with pytest.raises(NumberRefused, match="платные"):
        policy.decide("88031234567")              # another premium range stays closed
    with pytest.raises(NumberRefused, match="международные"):
        policy.decide("+1 202 555 0123")
    # An allowed prefix does not make a broken or short number dialable.
    assert policy.refusal("+37529") and policy.refusal("112")


def test_deny_prefixes_refuse_allowed_numbers_and_win_over_allow() -> None:
    policy = DiallingPolicy(allow_prefixes=("7900",), deny_prefixes=("7900123", "7495"))
    with pytest.raises(NumberRefused) as refused:
        policy.decide("+7 900 123-45-67")
    assert refused.value.reason is Refusal.DENIED
    assert "запрещены" in str(refused.value)
    assert policy.refusal("8 495 123-45-67")
    assert policy.decide("89001112233") == "79001112233"


def test_prefixes_come_from_the_settings(settings: Settings) -> None:
    configured = load_settings(environ=hotline_environ(
        HOTLINE_DIALLING__ALLOW_PREFIXES='["375"]',
        HOTLINE_DIALLING__DENY_PREFIXES='["7495"]'))
    policy = DiallingPolicy.from_settings(configured)
    assert policy.decide("+375291234567") == "+375291234567"
    assert policy.refusal("84951234567")
    assert DiallingPolicy.from_settings(settings) == DEFAULT, "none by default"
    with pytest.raises(SettingsError, match=r"dialling\.deny_prefixes"):
        load_settings(environ=hotline_environ(HOTLINE_DIALLING__DENY_PREFIXES='["+7495"]'))


def test_the_caller_id_is_the_hotline_number(settings: Settings) -> None:
    assert caller_id(settings) == settings.organisation.hotline_numbers[0] == "88001234567"
    other = load_settings(environ=hotline_environ(HOTLINE_DIALLING__CALLER_ID="74951234567"))
    assert caller_id(other) == "74951234567"
    with pytest.raises(SettingsError, match=r"dialling\.caller_id"):
        load_settings(environ=hotline_environ(HOTLINE_DIALLING__CALLER_ID="88001234567<x>"))


def test_every_carrier_form_of_a_published_number() -> None:
    """R-H10: a carrier may deliver the number dialled in any form."""
    assert carrier_forms("88001234567") == [
        "88001234567", "+78001234567", "78001234567", "8001234567"]
    assert carrier_forms("4951234567") == [
        "4951234567", "+74951234567", "84951234567", "74951234567"]
    assert carrier_forms("100") == ["100"]
    # One number written twice is listed once.
    assert carrier_dids(["88001234567", "+78001234567"]) == [
        ("88001234567", ["88001234567", "+78001234567", "78001234567", "8001234567"]),
        ("+78001234567", [])]


def test_numbers_are_shown_to_people_in_the_international_format() -> None:
    assert display("79001234567") == "+7 900 123-45-67"
    assert display("375291234567") == "+375 29 123-45-67"
