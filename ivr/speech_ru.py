"""Numbers, dates and times as spoken Russian, for text-to-speech.

Speech engines read «3.03» or «10:30» badly, so dynamic phrases are written out in words with
the right gender and case: «третьего марта», «в десять часов тридцать минут», «двадцать одна
минута».
"""

from __future__ import annotations

from datetime import date, time

_UNITS_M = ["ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"]
_UNITS_F = ["ноль", "одна", "две", *_UNITS_M[3:]]
_TEENS = ["десять", "одиннадцать", "двенадцать", "тринадцать", "четырнадцать", "пятнадцать",
          "шестнадцать", "семнадцать", "восемнадцать", "девятнадцать"]
_TENS = ["", "", "двадцать", "тридцать", "сорок", "пятьдесят", "шестьдесят", "семьдесят",
         "восемьдесят", "девяносто"]
_HUNDREDS = ["", "сто", "двести", "триста", "четыреста", "пятьсот", "шестьсот", "семьсот",
             "восемьсот", "девятьсот"]

# Ordinal day of month in the genitive: «третьего марта».
_DAY_GEN = ["", "первого", "второго", "третьего", "четвёртого", "пятого", "шестого",
            "седьмого", "восьмого", "девятого", "десятого", "одиннадцатого", "двенадцатого",
            "тринадцатого", "четырнадцатого", "пятнадцатого", "шестнадцатого", "семнадцатого",
            "восемнадцатого", "девятнадцатого", "двадцатого", "двадцать первого",
            "двадцать второго", "двадцать третьего", "двадцать четвёртого", "двадцать пятого",
            "двадцать шестого", "двадцать седьмого", "двадцать восьмого", "двадцать девятого",
            "тридцатого", "тридцать первого"]
_MONTH_GEN = ["", "января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
              "сентября", "октября", "ноября", "декабря"]
_WEEKDAY_ACC = ["в понедельник", "во вторник", "в среду", "в четверг", "в пятницу",
                "в субботу", "в воскресенье"]


def plural(n: int, one: str, few: str, many: str) -> str:
    """The noun form after a number: 1 час, 2 часа, 5 часов, 11 часов, 21 час."""
    n = abs(n) % 100
    if 11 <= n <= 14:
        return many
    last = n % 10
    if last == 1:
        return one
    if 2 <= last <= 4:
        return few
    return many


def _below_thousand(n: int, feminine: bool) -> list[str]:
    words = []
    if n >= 100:
        words.append(_HUNDREDS[n // 100])
        n %= 100
    if 10 <= n <= 19:
        words.append(_TEENS[n - 10])
        return words
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
    if n:
        words.append((_UNITS_F if feminine else _UNITS_M)[n])
    return words


def number(n: int, *, feminine: bool = False) -> str:
    """Cardinal number in words, 0 … 999 999 (enough for counts, minutes, days)."""
    if n < 0 or n >= 1_000_000:
        raise ValueError(f"{n} is out of range")
    if n == 0:
        return "ноль"
    thousands, rest = divmod(n, 1000)
    words = []
    if thousands:
        words += _below_thousand(thousands, feminine=True)
        words.append(plural(thousands, "тысяча", "тысячи", "тысяч"))
    words += _below_thousand(rest, feminine)
    return " ".join(words)


def count(n: int, one: str, few: str, many: str, *, feminine: bool = False) -> str:
    """«две минуты», «пять человек»."""
    return f"{number(n, feminine=feminine)} {plural(n, one, few, many)}"


def day_month(d: date) -> str:
    """«третьего марта»."""
    return f"{_DAY_GEN[d.day]} {_MONTH_GEN[d.month]}"


def weekday_day_month(d: date) -> str:
    """«в среду, третьего марта»."""
    return f"{_WEEKDAY_ACC[d.weekday()]}, {day_month(d)}"


def clock(t: time) -> str:
    """«десять часов тридцать минут», «девять часов», «двадцать один час ноль пять минут»."""
    hours = count(t.hour, "час", "часа", "часов")
    if t.minute == 0:
        return hours
    return f"{hours} {count(t.minute, 'минута', 'минуты', 'минут', feminine=True)}"


def at_clock(t: time) -> str:
    """«в десять часов тридцать минут»."""
    return f"в {clock(t)}"


def span(start: time, end: time) -> str:
    """«с девяти часов до тринадцати часов сорока восьми минут»."""
    return f"с {_genitive_clock(start)} до {_genitive_clock(end)}"


_UNITS_GEN = ["нуля", "одного", "двух", "трёх", "четырёх", "пяти", "шести", "семи", "восьми",
              "девяти"]
_TEENS_GEN = ["десяти", "одиннадцати", "двенадцати", "тринадцати", "четырнадцати",
              "пятнадцати", "шестнадцати", "семнадцати", "восемнадцати", "девятнадцати"]
_TENS_GEN = ["", "", "двадцати", "тридцати", "сорока", "пятидесяти"]


def until(t: time) -> str:
    """«до шестнадцати часов тридцати минут»."""
    return f"до {_genitive_clock(t)}"


def _genitive_number(n: int) -> str:
    if n < 10:
        return _UNITS_GEN[n]
    if n < 20:
        return _TEENS_GEN[n - 10]
    tens, units = divmod(n, 10)
    return _TENS_GEN[tens] + (f" {_UNITS_GEN[units]}" if units else "")


def _genitive_clock(t: time) -> str:
    """«девяти часов», «тринадцати часов сорока восьми минут» (after «с» / «до»)."""
    one = t.hour % 10 == 1 and t.hour != 11
    hours = f"{_genitive_number(t.hour)} {'часа' if one else 'часов'}"
    if t.minute == 0:
        return hours
    minutes = _genitive_number(t.minute)
    unit = "минуты" if t.minute % 10 == 1 and t.minute != 11 else "минут"
    return f"{hours} {minutes} {unit}"


def digits(s: str) -> str:
    """Digit by digit in groups of three, for phone and appeal numbers:
    «семь девять ноль, ноль один два, …» (the commas give the speech engine pauses)."""
    clean = [c for c in s if c.isdigit()]
    groups = [clean[i:i + 3] for i in range(0, len(clean), 3)]
    return ", ".join(" ".join(_UNITS_M[int(c)] for c in g) for g in groups)
