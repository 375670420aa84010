"""Caller-facing sentences built from the prompt templates and spoken-Russian helpers."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path

from . import speech_ru as ru
from .calendar import WorkCalendar
from .db.models import Agency, Appeal, AppealOutcome, AppealStatus, Booking, Staff
from .settings import Ivr, Organisation, Settings
from .tts import PromptLibrary

_DAY_NAMES = ["понедельник", "вторник", "среда", "четверг", "пятница", "суббота",
              "воскресенье"]


def hours_text(org: Organisation, prompts: PromptLibrary) -> str:
    """«понедельник — четверг с девяти часов до восемнадцати часов, пятница с …»."""
    groups: list[tuple[int, int, str]] = []
    for day in range(7):
        period = org.hours.for_weekday(day)
        if period is None:
            continue
        text = ru.span(period.start, period.end)
        if groups and groups[-1][1] == day - 1 and groups[-1][2] == text:
            groups[-1] = (groups[-1][0], day, text)
        else:
            groups.append((day, day, text))
    parts = []
    for first, last, text in groups:
        days = _DAY_NAMES[first] if first == last else f"{_DAY_NAMES[first]} — {_DAY_NAMES[last]}"
        parts.append(prompts.fill("weekday_hours", days=days, span=text))
    if org.lunch is not None:
        parts.append(prompts.fill("lunch", span=ru.span(org.lunch.start, org.lunch.end)))
    return ", ".join(parts)


def day_notice(calendar: WorkCalendar, prompts: PromptLibrary, today: date) -> str:
    """Today's own day as callers hear it (a holiday, a closure, a shortened day); "" on
    an ordinary one."""
    rule = calendar.rule_on(today)
    if rule is None:
        return ""
    if rule.closed:
        return prompts.fill("day_closed", reason=rule.note or "праздничный день")
    assert rule.closes_at is not None
    return prompts.fill("day_short", until=ru.until(rule.closes_at))


def when(day: date, today: date) -> str:
    """«сегодня», «завтра», «послезавтра» or «в среду, двадцать пятого ноября»."""
    if day == today:
        return "сегодня"
    if day == today + timedelta(days=1):
        return "завтра"
    if day == today + timedelta(days=2):
        return "послезавтра"
    return ru.weekday_day_month(day)


def moment(at: datetime, today: date) -> str:
    """«завтра в девять часов»."""
    return f"{when(at.date(), today)} {ru.at_clock(at.time())}"


def booking_text(prompts: PromptLibrary, booking: Booking, calendar: WorkCalendar,
                 now: datetime) -> str:
    """«Вы записаны на личный приём завтра, в десять часов. Принимает Министр …»."""
    starts = calendar.local(booking.slot.starts_at)
    official = booking.slot.official
    return prompts.fill(
        "reception_booking", when=when(starts.date(), calendar.today(now)),
        time=ru.at_clock(starts.time()),
        official=f"{official.title} {official.staff.initials_name}")


def appeal_status_text(
    prompts: PromptLibrary, appeal: Appeal, *, executor: Staff | None, agency: Agency | None,
    tz: tzinfo,
) -> str:
    number = ru.digits(appeal.reg_number)
    registered = ru.day_month(appeal.registered_on)
    due = ru.day_month(appeal.due_date) if appeal.due_date else "срока, установленного законом"
    status = appeal.status
    if status == AppealStatus.REDIRECTED:
        return prompts.fill("appeal_redirected", number=number,
                            agency=agency.name if agency else "другой орган")
    if status == AppealStatus.NOT_CONSIDERED:
        return prompts.fill("appeal_not_considered", number=number)
    if status in (AppealStatus.ANSWERED, AppealStatus.COMPLETED) and appeal.answered_at:
        answered = ru.day_month(appeal.answered_at.astimezone(tz).date())
        return prompts.fill("appeal_answered", number=number, answered=answered,
                            outcome=_outcome(prompts, appeal))
    if status == AppealStatus.IN_WORK and executor is not None:
        return prompts.fill("appeal_in_work", number=number, registered=registered,
                            executor=executor.initials_name,
                            phone=ru.digits(executor.phone), due=due)
    return prompts.fill("appeal_registered", number=number, registered=registered, due=due)


def _outcome(prompts: PromptLibrary, appeal: Appeal) -> str:
    if appeal.outcome is None:
        return ""
    if appeal.outcome == AppealOutcome.WILL_RESOLVE_BY and appeal.outcome_date:
        return prompts.fill("appeal_outcome_will_resolve_by",
                            date=ru.day_month(appeal.outcome_date))
    return prompts.texts[f"appeal_outcome_{appeal.outcome.value}"]


def queue_position(prompts: PromptLibrary, ivr: Ivr, position: int) -> str:
    """«Вы следующий в очереди» / «Перед вами в очереди два человека»."""
    if position <= 1:
        return prompts.texts["queue_next"]
    if position > ivr.queue_announce_max_position:
        return prompts.texts["queue_many_ahead"]
    return prompts.fill("queue_ahead", ahead=ru.count(position - 1, "человек", "человека",
                                                      "человек"))


def queue_wait(prompts: PromptLibrary, ivr: Ivr, minutes: int) -> str:
    """«Примерное время ожидания — три минуты»."""
    if minutes > ivr.queue_announce_max_minutes:
        return prompts.texts["queue_long_wait"]
    return prompts.fill("queue_expected_wait",
                        minutes=ru.count(max(1, minutes), "минута", "минуты", "минут",
                                         feminine=True))


def queue_texts(prompts: PromptLibrary, ivr: Ivr) -> list[str]:
    """Every sentence the queue announcements can say: rendered in advance, so a caller
    leaving the queue for an announcement never waits on speech synthesis."""
    positions = range(1, ivr.queue_announce_max_position + 2)
    minutes = range(1, ivr.queue_announce_max_minutes + 2)
    return ([queue_position(prompts, ivr, n) for n in positions]
            + [queue_wait(prompts, ivr, n) for n in minutes])


def render_prompts(settings: Settings, prompts: PromptLibrary | None = None) -> dict[str, Path]:
    """Everything spoken that is known before a call: the fixed prompts and the queue
    announcements (``hotline prompts render``, service start-up, the test fixture)."""
    prompts = prompts or PromptLibrary(settings.tts, settings.prompts)
    return prompts.render_all(queue_texts(prompts, settings.ivr))
