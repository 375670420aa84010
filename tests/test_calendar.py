"""Working-day calendar on Russian holidays and transferred working days (R-H2, R-A3)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ivr.calendar import WorkCalendar
from ivr.settings import DEFAULT_CONFIG, Organisation, load_settings


def org(timezone: str = "Europe/Moscow") -> Organisation:
    settings = load_settings(DEFAULT_CONFIG, environ={"HOTLINE_ORGANISATION__TIMEZONE": timezone})
    return settings.organisation


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar(org())


def test_holidays_and_transferred_working_saturday(cal: WorkCalendar) -> None:
    assert not cal.is_working_day(date(2025, 1, 8))      # New Year holidays
    assert not cal.is_working_day(date(2025, 11, 3))     # day off moved from Sat 1 Nov
    assert not cal.is_working_day(date(2025, 11, 4))     # Unity Day
    assert cal.is_working_day(date(2025, 11, 1))         # Saturday, a working day
    assert not cal.is_working_day(date(2025, 11, 8))     # an ordinary Saturday


def test_transferred_saturday_has_opening_hours(cal: WorkCalendar) -> None:
    periods = cal.periods_on(date(2025, 11, 1))
    assert periods, "a transferred working Saturday is open"
    assert periods[0].start.hour == 9


def test_lunch_and_friday_hours(cal: WorkCalendar) -> None:
    msk = org().tz
    assert cal.is_open(datetime(2026, 11, 25, 10, 0, tzinfo=msk))
    assert not cal.is_open(datetime(2026, 11, 25, 13, 30, tzinfo=msk))   # lunch
    assert cal.is_open(datetime(2026, 11, 27, 16, 30, tzinfo=msk))       # Friday to 16:45
    assert not cal.is_open(datetime(2026, 11, 27, 16, 50, tzinfo=msk))


def test_preholiday_day_is_one_hour_shorter(cal: WorkCalendar) -> None:
    # 3 Nov 2026 (Tuesday) precedes Unity Day: 09:00-17:00 instead of 18:00.
    periods = cal.periods_on(date(2026, 11, 3))
    assert periods[-1].end.hour == 17
    # 30 Apr 2025 precedes 1 May, a public holiday: Wednesday 18:00 becomes 17:00.
    assert cal.periods_on(date(2025, 4, 30))[-1].end.hour == 17
    # 30 Dec 2025 precedes 31 Dec, a day off only moved from a weekend: not shortened.
    assert cal.periods_on(date(2025, 12, 30))[-1].end.hour == 18
    # 31 Oct 2025, a Friday before a working Saturday, keeps its 16:45.
    assert (cal.periods_on(date(2025, 10, 31))[-1].end.hour,
            cal.periods_on(date(2025, 10, 31))[-1].end.minute) == (16, 45)
    # Each day is worked out once and kept: every call asks whether the hotline is open.
    assert cal.periods_on(date(2026, 11, 3)) is periods


def test_next_opening_over_new_year(cal: WorkCalendar) -> None:
    evening = datetime(2025, 12, 31, 20, 0, tzinfo=UTC)
    opening = cal.next_opening(evening)
    assert opening.date() == date(2026, 1, 12)
    assert (opening.hour, opening.minute) == (9, 0)
    assert opening.utcoffset() == timedelta(hours=3)


def test_time_zone_decides_what_open_means() -> None:
    moment = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 05:00 Moscow, 12:00 Vladivostok
    assert not WorkCalendar(org("Europe/Moscow")).is_open(moment)
    assert WorkCalendar(org("Asia/Vladivostok")).is_open(moment)


def test_add_working_days_skips_holidays(cal: WorkCalendar) -> None:
    # Registered Friday 31 Oct 2025: Sat 1 Nov works, 3 and 4 Nov are off.
    assert cal.add_working_days(date(2025, 10, 31), 1) == date(2025, 11, 1)
    assert cal.add_working_days(date(2025, 10, 31), 2) == date(2025, 11, 5)
    assert cal.add_working_days(date(2025, 10, 31), 5) == date(2025, 11, 10)
    assert cal.add_working_days(date(2025, 10, 31), 0) == date(2025, 10, 31)


def test_naive_datetimes_are_refused(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="naive"):
        cal.is_open(datetime(2026, 11, 25, 10, 0))


def test_is_open_at_the_edges_of_the_day_and_on_special_days() -> None:
    """R-H2: open from the opening minute to the one before closing and around lunch;
    closed on holidays; the eve closes early; a transferred Saturday works; the time
    may be given in UTC or local."""
    cal = WorkCalendar(org())
    msk = cal.tz
    assert not cal.is_open(datetime(2026, 11, 25, 8, 59, 59, tzinfo=msk))
    assert cal.is_open(datetime(2026, 11, 25, 9, 0, tzinfo=msk))
    assert cal.is_open(datetime(2026, 11, 25, 12, 59, 59, tzinfo=msk))
    assert not cal.is_open(datetime(2026, 11, 25, 13, 0, tzinfo=msk))
    assert not cal.is_open(datetime(2026, 11, 25, 13, 47, 59, tzinfo=msk))  # lunch to 13:48
    assert cal.is_open(datetime(2026, 11, 25, 13, 48, tzinfo=msk))
    assert not cal.is_open(datetime(2026, 11, 25, 18, 0, tzinfo=msk))
    assert cal.is_open(datetime(2026, 11, 25, 14, 59, tzinfo=UTC))        # 17:59 Moscow
    assert not cal.is_open(datetime(2025, 11, 4, 11, 0, tzinfo=msk))      # Unity Day
    assert cal.is_open(datetime(2026, 11, 3, 16, 59, tzinfo=msk))         # the eve: to 17:00
    assert not cal.is_open(datetime(2026, 11, 3, 17, 0, tzinfo=msk))
    assert cal.is_open(datetime(2025, 11, 1, 10, 0, tzinfo=msk))          # transferred Saturday
    assert not cal.is_open(datetime(2025, 11, 8, 10, 0, tzinfo=msk))      # ordinary Saturday
