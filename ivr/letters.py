"""What notices say (R-A2, R-A5, R-A6, R-A8, R-P3, R-X1): the written text (e-mail, post,
state portal) and the spoken one (an automated call), in plain Russian.

Dates and times are in the organisation's zone; spoken ones are written out in words
(:mod:`ivr.speech_ru`), so the speech engine never reads «25.11» as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from . import speech_ru as ru
from .db.models import Agency, Appeal, AppealOutcome, Booking, Official, Staff
from .settings import Organisation

_OUTCOME_WRITTEN = {
    AppealOutcome.RESOLVED: "Ваш вопрос решён.",
    AppealOutcome.WILL_RESOLVE_BY: "Ваш вопрос будет решён до {date}.",
    AppealOutcome.CAN_RESOLVE_NO_DATE: "Ваш вопрос может быть решён; срок пока не определён, "
                                       "мы сообщим его дополнительно.",
    AppealOutcome.CANNOT_RESOLVE: "Ваш вопрос не может быть решён. Причины: {reasons}",
}


@dataclass(frozen=True)
class Letter:
    kind: str
    subject: str
    written: str
    spoken: str
    # Electronic copies carry a survey link (R-A5, R-P6).
    survey: bool = False


def _d(day: object) -> str:
    return f"{day:%d.%m.%Y}"


def _executor_line(executor: Staff | None) -> tuple[str, str]:
    if executor is None:
        return "", ""
    written = (f"Исполнитель: {executor.initials_name}, телефон {executor.phone}. "
               "По вопросам ответа вы можете позвонить исполнителю.")
    spoken = (f"Исполнитель — {executor.initials_name}, телефон {ru.digits(executor.phone)}.")
    return written, spoken


def appeal_registered(appeal: Appeal, org: Organisation) -> Letter:
    due = f" Ответ будет дан до {_d(appeal.due_date)}." if appeal.due_date else ""
    spoken_due = f" Ответ будет дан до {ru.day_month(appeal.due_date)}." if appeal.due_date else ""
    return Letter(
        "appeal_registered", f"Обращение № {appeal.reg_number} зарегистрировано",
        f"Ваше обращение зарегистрировано {_d(appeal.registered_on)} под номером "
        f"{appeal.reg_number}.{due}\n\n{org.full_name}",
        f"Ваше обращение зарегистрировано под номером {ru.digits(appeal.reg_number)}."
        f"{spoken_due}")


def appeal_in_work(appeal: Appeal, executor: Staff, org: Organisation) -> Letter:
    who, who_spoken = _executor_line(executor)
    due = f" Ответ будет дан до {_d(appeal.due_date)}." if appeal.due_date else ""
    spoken_due = f" Ответ будет дан до {ru.day_month(appeal.due_date)}." if appeal.due_date else ""
    return Letter(
        "appeal_in_work", f"Обращение № {appeal.reg_number} на рассмотрении",
        f"Ваше обращение № {appeal.reg_number} от {_d(appeal.registered_on)} передано "
        f"на рассмотрение.{due}\n{who}\n\n{org.full_name}",
        f"Ваше обращение номер {ru.digits(appeal.reg_number)} передано на рассмотрение."
        f"{spoken_due} {who_spoken}")


def appeal_answer(appeal: Appeal, executor: Staff | None, org: Organisation) -> Letter:
    outcome = ""
    if appeal.outcome is not None:
        outcome = _OUTCOME_WRITTEN[appeal.outcome].format(
            date=_d(appeal.outcome_date) if appeal.outcome_date else "",
            reasons=appeal.refusal_reasons or "")
    who, who_spoken = _executor_line(executor)
    written = (f"Ответ на ваше обращение № {appeal.reg_number} от {_d(appeal.registered_on)}.\n\n"
               f"{outcome}\n\n{appeal.answer_text or ''}\n\n{who}\n\n{org.full_name}")
    spoken = (f"На ваше обращение номер {ru.digits(appeal.reg_number)} дан ответ. "
              f"{_spoken_outcome(appeal)} Текст ответа направлен вам письменно. {who_spoken}")
    return Letter("appeal_answer", f"Ответ на обращение № {appeal.reg_number}", written,
                  spoken, survey=True)


def _spoken_outcome(appeal: Appeal) -> str:
    if appeal.outcome == AppealOutcome.WILL_RESOLVE_BY and appeal.outcome_date:
        return f"Ваш вопрос будет решён до {ru.day_month(appeal.outcome_date)}."
    if appeal.outcome == AppealOutcome.CANNOT_RESOLVE:
        return "Ваш вопрос не может быть решён, причины изложены в ответе."
    if appeal.outcome is None:
        return ""
    return _OUTCOME_WRITTEN[appeal.outcome]


def appeal_redirected(appeal: Appeal, agency: Agency, org: Organisation) -> Letter:
    contacts = ", ".join(x for x in (agency.address, agency.phone, agency.website) if x)
    return Letter(
        "appeal_redirected", f"Обращение № {appeal.reg_number} направлено по компетенции",
        f"Ваше обращение № {appeal.reg_number} от {_d(appeal.registered_on)} касается вопроса, "
        f"который решает {agency.name}. Мы направили его туда; ответ вы получите оттуда.\n"
        f"Контакты: {contacts or 'не указаны'}.\n\n{org.full_name}",
        f"Ваше обращение номер {ru.digits(appeal.reg_number)} направлено по компетенции: "
        f"{agency.name}. Ответ вы получите оттуда.", survey=True)


def appeal_not_considered(appeal: Appeal, org: Organisation) -> Letter:
    return Letter(
        "appeal_not_considered", f"Обращение № {appeal.reg_number} не рассмотрено по существу",
        f"Ваше обращение № {appeal.reg_number} от {_d(appeal.registered_on)} содержит "
        "нецензурные либо оскорбительные выражения или угрозы, поэтому по существу поставленных "
        "в нём вопросов оно не рассматривается. Вы можете направить обращение повторно, "
        f"изложив вопрос без таких выражений.\n\n{org.full_name}",
        f"Ваше обращение номер {ru.digits(appeal.reg_number)} не рассмотрено по существу, "
        "потому что содержит оскорбительные выражения. Вы можете написать повторно.",
        survey=True)


def _official_name(official: Official) -> str:
    return f"{official.title} {official.staff.initials_name}"


def _place(official: Official, org: Organisation) -> tuple[str, str]:
    place = official.place or org.address
    directions = official.directions or org.directions
    return place, directions


def reception_booked(booking: Booking, org: Organisation, tz: tzinfo,
                     delivery: list[str] | None = None) -> Letter:
    """``delivery``: what was sent and which reminders will come, and where (R-P3)."""
    official = booking.slot.official
    starts = booking.slot.starts_at.astimezone(tz)
    place, directions = _place(official, org)
    sent = "".join(f"\n{line}" for line in delivery or [])
    return Letter(
        "reception_booked", "Запись на личный приём",
        f"Вы записаны на личный приём {starts:%d.%m.%Y} в {starts:%H:%M}.\n"
        f"Принимает: {_official_name(official)}.\nАдрес: {place}.\n{directions}\n"
        f"{_booking_number(booking)}{sent}\n\n{org.full_name}",
        f"Вы записаны на личный приём {ru.weekday_day_month(starts.date())} "
        f"{ru.at_clock(starts.time())}. Принимает {_official_name(official)}. "
        f"Адрес: {place}. {directions} {_booking_number_spoken(booking)}")


def _booking_number(booking: Booking) -> str:
    # The number and the last four digits of the citizen's phone open the booking on the
    # hotline's menu (agi/flows/reception.py): nothing is read out by caller ID alone.
    return (f"Номер записи: {booking.id}. Чтобы узнать о записи или отменить её по "
            f"телефону горячей линии, понадобятся этот номер и последние четыре цифры "
            f"вашего телефона.")


def _booking_number_spoken(booking: Booking) -> str:
    return f"Номер записи — {ru.digits(str(booking.id))}."


def reception_reminder(booking: Booking, org: Organisation, tz: tzinfo, *, kind: str,
                       cancel_link: str | None, needs_text: str | None = None) -> Letter:
    """``needs_text``: the needs as the citizen reads them (R-P5); the free text if None."""
    official = booking.slot.official
    starts = booking.slot.starts_at.astimezone(tz)
    place, directions = _place(official, org)
    when = "завтра" if kind == "reminder_day" else "сегодня"
    told = booking.accessibility_needs if needs_text is None else needs_text
    needs = f"\nМы учли ваши особые потребности: {told}." if told else ""
    cancel = (f"\n\nЕсли вы не сможете прийти, отмените запись по ссылке: {cancel_link}"
              if cancel_link else "")
    return Letter(
        kind, "Напоминание о личном приёме",
        f"Напоминаем: {when}, {starts:%d.%m.%Y} в {starts:%H:%M}, у вас личный приём.\n"
        f"Принимает: {_official_name(official)}.\nАдрес: {place}.\n{directions}{needs}"
        f"\n{_booking_number(booking)}{cancel}\n\n{org.full_name}",
        f"Напоминаем: {when}, {ru.day_month(starts.date())}, {ru.at_clock(starts.time())}, "
        f"у вас личный приём. Принимает {_official_name(official)}. Адрес: {place}. "
        f"{directions} {_booking_number_spoken(booking)}")


def reception_cancelled(booking: Booking, org: Organisation, tz: tzinfo,
                        reason: str = "") -> Letter:
    """The ministry called the reception off (the official's vacation, a cancelled day):
    the citizen is told and asked to book another time (R-P1, R-P4)."""
    official = booking.slot.official
    starts = booking.slot.starts_at.astimezone(tz)
    why = f" Причина: {reason}." if reason else ""
    number = org.hotline_numbers[0]
    again = f"Записаться на другое время можно по телефону горячей линии {number}."
    said = (f"Записаться на другое время можно по телефону горячей линии "
            f"{ru.digits(number.lstrip('+'))}.")
    return Letter(
        "reception_cancelled", "Личный приём отменён",
        f"К сожалению, личный приём {starts:%d.%m.%Y} в {starts:%H:%M} отменён: "
        f"{_official_name(official)} в этот день не принимает.{why}\n"
        f"Номер записи: {booking.id}. {again} Приносим извинения.\n\n{org.full_name}",
        f"К сожалению, ваш личный приём {ru.weekday_day_month(starts.date())} "
        f"{ru.at_clock(starts.time())} отменён: {_official_name(official)} в этот день не "
        f"принимает.{why} {said} Приносим извинения.")


def reception_survey(booking: Booking, org: Organisation, tz: tzinfo) -> Letter:
    starts = booking.slot.starts_at.astimezone(tz)
    return Letter(
        "reception_survey", "Оцените, пожалуйста, личный приём",
        f"Благодарим, что пришли на личный приём {starts:%d.%m.%Y}. Ответьте, пожалуйста, "
        f"на два вопроса: это поможет нам работать лучше.\n\n{org.full_name}",
        "Благодарим, что пришли на личный приём. Ответьте, пожалуйста, на два вопроса.",
        survey=True)


def local_stamp(at: datetime, tz: tzinfo) -> str:
    return f"{at.astimezone(tz):%d.%m.%Y %H:%M}"
