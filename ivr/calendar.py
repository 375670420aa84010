"""Working-day calendar of the ministry, in its own time zone (R-H2, R-A3, R-A4, R-K3).

Official holidays and transferred working days come from the ``holidays`` package (Russia);
the administrator's regional holidays, closures and shortened days (:class:`DayRule`) go on
top of them.
The day before a public holiday is shortened by ``preholiday_shortening_minutes`` (Labour
Code art. 95); a day off that was only moved from a weekend does not shorten the day before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property

import holidays

from .settings import Organisation


@dataclass(frozen=True)
class DayRule:
    """A day the administrator set (ivr.services.work_days): closed all day (a regional
    holiday, a one-off closure), or closing early at ``closes_at`` (a shortened day)."""

    kind: str
    closes_at: time | None
    note: str

    @property
    def closed(self) -> bool:
        return self.kind != "short"


@dataclass(frozen=True)
class OpenPeriod:
    start: datetime  # aware, organisation's zone
    end: datetime


class WorkCalendar:
    def __init__(self, organisation: Organisation) -> None:
        self.org = organisation
        self.tz = organisation.tz
        # Every call asks whether the hotline is open: a day's periods are worked out once,
        # and again only when the administrator's days change (set_rules).
        self._periods: dict[date, tuple[OpenPeriod, ...]] = {}
        self._rules: Mapping[date, DayRule] = {}

    def set_rules(self, rules: Mapping[date, DayRule]) -> None:
        """The administrator's days, read from the database; periods worked out again."""
        if dict(rules) != dict(self._rules):
            self._rules = dict(rules)
            self._periods = {}

    def rule_on(self, day: date) -> DayRule | None:
        return self._rules.get(day)

    @cached_property
    def _holidays(self) -> holidays.HolidayBase:
        # English names pinned: the substituted-day test below reads them.
        return holidays.country_holidays("RU", language="en_US")

    def is_working_day(self, day: date) -> bool:
        rule = self._rules.get(day)
        if rule is not None and rule.closed:
            return False
        return bool(self._holidays.is_working_day(day))

    def _is_public_holiday(self, day: date) -> bool:
        name = self._holidays.get(day)
        return bool(name) and "substituted" not in str(name).lower()

    def periods_on(self, day: date) -> tuple[OpenPeriod, ...]:
        """Open periods of one local date: none on days off, split by lunch, shortened
        before a public holiday."""
        found = self._periods.get(day)
        if found is None:
            if len(self._periods) > 1000:
                self._periods.clear()
            found = self._periods[day] = tuple(self._work_out(day))
        return found

    def _work_out(self, day: date) -> list[OpenPeriod]:
        if not self.is_working_day(day):
            return []
        hours = self.org.hours.for_weekday(day.weekday())
        if hours is None:
            # A transferred working Saturday works the hours of a regular Monday-like day:
            # the first weekday that has hours.
            hours = next((p for i in range(5) if (p := self.org.hours.for_weekday(i))), None)
            if hours is None:
                return []
        start = datetime.combine(day, hours.start, self.tz)
        end = datetime.combine(day, hours.end, self.tz)
        if self._is_public_holiday(day + timedelta(days=1)):
            end -= timedelta(minutes=self.org.preholiday_shortening_minutes)
        rule = self._rules.get(day)
        if rule is not None and rule.closes_at is not None:
            end = min(end, datetime.combine(day, rule.closes_at, self.tz))
        spans = [(start, end)]
        lunch = self.org.lunch
        if lunch is not None:
            l_start = datetime.combine(day, lunch.start, self.tz)
            l_end = datetime.combine(day, lunch.end, self.tz)
            if start < l_start and l_end < end:
                spans = [(start, l_start), (l_end, end)]
        return [OpenPeriod(s, e) for s, e in spans if e > s]

    def local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one")
        return at.astimezone(self.tz)

    def is_open(self, at: datetime) -> bool:
        local = self.local(at)
        return any(p.start <= local < p.end for p in self.periods_on(local.date()))

    def upcoming_periods(self, at: datetime, *, days: int = 30) -> Iterator[OpenPeriod]:
        """Open periods that end after ``at``, in order, over the next ``days`` days."""
        at = self.local(at)
        for offset in range(days + 1):
            for period in self.periods_on(at.date() + timedelta(days=offset)):
                if period.end > at:
                    yield period

    def next_opening(self, at: datetime) -> datetime:
        """``at`` itself when open, otherwise the start of the next open period."""
        at = self.local(at)
        for period in self.upcoming_periods(at, days=60):
            return max(period.start, at)
        raise LookupError("no working hours within 60 days: check organisation.hours")

    def add_working_days(self, day: date, n: int) -> date:
        """The date ``n`` working days after ``day`` (``day`` itself is not counted).

        Used for deadlines "within N working days of registration" (R-A3, R-A4, R-K3).
        """
        if n < 0:
            raise ValueError("n must not be negative")
        current = day
        left = n
        while left:
            current += timedelta(days=1)
            if self.is_working_day(current):
                left -= 1
        return current

    def today(self, now: datetime) -> date:
        return self.local(now).date()
