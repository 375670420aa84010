"""Dynamic phrases as natural Russian: numbers agree, dates and times inflect."""

from __future__ import annotations

from datetime import date, time

import pytest

from ivr import speech_ru as ru


@pytest.mark.parametrize(("n", "feminine", "words"), [
    (0, False, "ноль"), (1, False, "один"), (1, True, "одна"), (2, True, "две"),
    (11, False, "одиннадцать"), (21, True, "двадцать одна"), (105, False, "сто пять"),
    (1024, False, "одна тысяча двадцать четыре"), (2002, False, "две тысячи два"),
])
def test_numbers(n: int, feminine: bool, words: str) -> None:
    assert ru.number(n, feminine=feminine) == words


def test_plural_forms() -> None:
    assert [ru.count(n, "человек", "человека", "человек") for n in (1, 3, 5, 11, 22)] == [
        "один человек", "три человека", "пять человек", "одиннадцать человек",
        "двадцать два человека"]


def test_dates_and_times() -> None:
    assert ru.day_month(date(2026, 3, 3)) == "третьего марта"
    assert ru.weekday_day_month(date(2026, 11, 25)) == "в среду, двадцать пятого ноября"
    assert ru.at_clock(time(10, 30)) == "в десять часов тридцать минут"
    assert ru.clock(time(21, 1)) == "двадцать один час одна минута"
    assert ru.clock(time(9, 0)) == "девять часов"
    assert ru.span(time(9), time(13, 48)) == (
        "с девяти часов до тринадцати часов сорока восьми минут")
    assert ru.span(time(21), time(22)) == "с двадцати одного часа до двадцати двух часов"


def test_digits_grouped() -> None:
    assert ru.digits("+7 900 12") == "семь девять ноль, ноль один два"
