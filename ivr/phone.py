"""Phone numbers in one canonical form: digits only, Russian numbers as 11 digits from 7.

For matching a caller ID or a typed number against stored ones (cards, searches, the call
records). Whether a number may be dialled is decided by :mod:`ivr.dialling` alone."""

from __future__ import annotations

import re


def normalise(raw: str) -> str:
    """``+7 (495) 123-45-67``, ``8 495 1234567`` and ``74951234567`` → ``74951234567``.

    Ten-digit national numbers get the 7; short internal extensions are kept as typed.
    """
    # Asterisk's caller ids are digits already: the pattern only for typed numbers.
    raw = raw or ""
    digits = raw if raw.isdecimal() else re.sub(r"\D", "", raw)  # \d is what isdecimal is
    if len(digits) == 11 and digits[0] in "78":
        return "7" + digits[1:]
    if len(digits) == 10:
        return "7" + digits
    return digits


def mask(phone: str) -> str:
    """For lists: ``74951234567`` → ``7495***4567``."""
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:4] + "*" * (len(phone) - 8) + phone[-4:]
