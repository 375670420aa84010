"""The dialling policy: the one place that decides whether the system may dial a number.

Every number the system dials passes :meth:`DiallingPolicy.decide`: callbacks typed in the
IVR or the panel, phone notices and reception reminders, phone numbers taken at intake, and
once more the dialer and the notice sender right before the ``Originate``. A dial string is
built only from what ``decide`` returns: digits, never the text as typed.

Russian numbers in any usual form (``+7 900 123-45-67``, ``8 900…``, ``7900…``, ten digits)
become 11 digits from 7, the form the database keeps. Refused by default, each with a
Russian message for the caller, the operator or the API client:

* international numbers: ``810…`` / ``00…`` dialled abroad, a country code other than
  Russia's (Kazakhstan shares +7 and counts as abroad);
* premium numbers (8-809, 8-803), as the ``phonenumbers`` metadata classes them;
* short and service numbers (112, 01, 0911): fewer than ten digits;
* anything else that is not a valid Russian number.

Settings (``[dialling]``) add prefixes in the international form without ``+``:
``allow_prefixes`` opens numbers the rules refuse, ``deny_prefixes`` refuses numbers they
allow; deny wins. A number abroad that a prefix opens is kept and dialled as ``+`` and its
digits (``+375291234567``), so a stored number never passes for a Russian one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from .settings import Dialling, Settings

RU = "RU"
_TYPED = re.compile(r"\+?[0-9 ()\-.]+")
_IDD = ("810", "00")                 # dialled from Russia: what follows is abroad


class Refusal(StrEnum):
    EMPTY = "empty"
    MALFORMED = "malformed"
    SHORT = "short"
    INVALID = "invalid"
    INTERNATIONAL = "international"
    PREMIUM = "premium"
    DENIED = "denied"


MESSAGES = {
    Refusal.EMPTY: "Укажите номер телефона.",
    Refusal.MALFORMED: "В номере телефона могут быть только цифры, пробелы, скобки, дефисы "
                       "и «+» в начале.",
    Refusal.SHORT: "Короткие и служебные номера (112, 01 и подобные) не набираются: укажите "
                   "номер из 11 цифр, например +7 900 123-45-67.",
    Refusal.INVALID: "Такого российского номера нет: проверьте цифры (11 цифр, например "
                     "+7 900 123-45-67).",
    Refusal.INTERNATIONAL: "На международные номера горячая линия не звонит: укажите "
                           "российский номер.",
    Refusal.PREMIUM: "На платные номера (8-809, 8-803) горячая линия не звонит.",
    Refusal.DENIED: "Звонки на этот номер запрещены настройками горячей линии.",
}


class NumberRefused(ValueError):
    """A number the system will not dial; ``str()`` is the Russian message."""

    status = 422
    error_id = "number_refused"

    def __init__(self, reason: Refusal) -> None:
        super().__init__(MESSAGES[reason])
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True)
class DiallingPolicy:
    allow_prefixes: tuple[str, ...] = ()
    deny_prefixes: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings | Dialling) -> DiallingPolicy:
        cfg = settings.dialling if isinstance(settings, Settings) else settings
        return cls(tuple(cfg.allow_prefixes), tuple(cfg.deny_prefixes))

    def decide(self, raw: str) -> str:
        """The number to dial: a Russian one as 11 digits from 7 (``79001234567``), one
        abroad that ``allow_prefixes`` opens as ``+`` and its digits (``+375291234567``);
        deciding again on the result gives the result. :class:`NumberRefused` when it may
        not be dialled."""
        number, refusal = classify(raw)
        if number and number.startswith(self.deny_prefixes):
            raise NumberRefused(Refusal.DENIED)
        if refusal is None:
            return number
        if (refusal in (Refusal.INTERNATIONAL, Refusal.PREMIUM)
                and number.startswith(self.allow_prefixes) and _valid(number)):
            return "+" + number if refusal is Refusal.INTERNATIONAL else number
        raise NumberRefused(refusal)

    def refusal(self, raw: str) -> str:
        """Why the number is not dialled (Russian), or "" when it is."""
        try:
            self.decide(raw)
        except NumberRefused as exc:
            return exc.message
        return ""


DEFAULT = DiallingPolicy()


def classify(raw: str) -> tuple[str, Refusal | None]:
    """The number's digits in the international form, country code first, without ``+``
    (``""`` when it has none), and why the default rules refuse it (None: they allow it)."""
    text = (raw or "").strip()
    if not text:
        return "", Refusal.EMPTY
    if not _TYPED.fullmatch(text):
        return "", Refusal.MALFORMED
    digits = re.sub(r"\D", "", text)
    if not digits:
        return "", Refusal.MALFORMED
    if not text.startswith("+"):
        abroad = next((digits[len(p):] for p in _IDD if digits.startswith(p)), None)
        if abroad is not None:
            # (dialling Russia itself this way is odd, but it is a Russian number)
            refusal = _rule(abroad)
            return abroad, Refusal.INTERNATIONAL if refusal is Refusal.INVALID else refusal
        if len(digits) < 10:
            return "", Refusal.SHORT
        if len(digits) == 10:
            digits = "7" + digits
        elif len(digits) == 11 and digits[0] in "78":
            digits = "7" + digits[1:]
        else:
            return "", Refusal.INVALID
    return digits, _rule(digits)


def _parsed(digits: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None


def _valid(digits: str) -> bool:
    parsed = _parsed(digits)
    return parsed is not None and phonenumbers.is_valid_number(parsed)


def _rule(digits: str) -> Refusal | None:
    parsed = _parsed(digits)
    if parsed is None:
        return Refusal.INVALID
    if parsed.country_code != 7:
        return Refusal.INTERNATIONAL
    if not phonenumbers.is_valid_number(parsed):
        return Refusal.INVALID
    if phonenumbers.region_code_for_number(parsed) != RU:
        return Refusal.INTERNATIONAL
    if phonenumbers.number_type(parsed) == PhoneNumberType.PREMIUM_RATE:
        return Refusal.PREMIUM
    return None


def display(number: str) -> str:
    """``79001234567`` → ``+7 900 123-45-67``, for people; anything else as it is."""
    try:
        parsed = phonenumbers.parse("+" + number if number.isdigit() else number, RU)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL)


def carrier_forms(number: str) -> list[str]:
    """Every form a carrier may deliver a published Russian number in (R-H10):
    ``+74951234567``, ``84951234567``, ``74951234567``, ``4951234567``. A number that is
    not Russian is delivered as configured."""
    digits, refusal = classify(number)
    if not digits.startswith("7") or len(digits) != 11 or refusal is Refusal.INVALID:
        return [number]
    national = digits[1:]
    return list(dict.fromkeys([number, "+7" + national, "8" + national, "7" + national,
                               national]))


def carrier_dids(numbers: list[str]) -> list[tuple[str, list[str]]]:
    """Each published number with its forms (:func:`carrier_forms`), a form listed once
    even when two published numbers are one number written twice."""
    seen: set[str] = set()
    dids = []
    for number in numbers:
        forms = [form for form in carrier_forms(number) if form not in seen]
        seen.update(forms)
        dids.append((number, forms))
    return dids


def caller_id(settings: Settings) -> str:
    """The number citizens see when the hotline calls them: never their own."""
    return settings.dialling.caller_id or settings.organisation.hotline_numbers[0]
