"""Caller-facing sentences built from the prompt templates and spoken-Russian helpers."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from . import speech_ru as ru
from .db.models import Agency, Appeal, AppealOutcome, AppealStatus, Staff
from .settings import Organisation
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
