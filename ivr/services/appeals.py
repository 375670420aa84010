"""Written appeals: as the IVR reports them (lookup, who may hear the status) and their
life in the ministry — deadlines, urgency, notices, answer, completion, lists (R-A3–R-A10)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from .. import letters
from ..calendar import WorkCalendar
from ..db.models import (
    Agency,
    Appeal,
    AppealOutcome,
    AppealStatus,
    AppealTopic,
    AppealViolation,
    Callback,
    CallbackStatus,
    CitizenPhone,
    Notification,
    NotificationStatus,
    Role,
    Staff,
)
from ..letters import Letter
from ..phrases import appeal_status_text
from ..settings import Settings
from . import notices, plain_language
from .container import Services
from .plain_language import Flag
from .verification import citizen_phones, phone_ends_with

RENDER_FIRST_DAYS = 30   # on start-up, statuses changed this recently are rendered
RENDER_BATCH = 500       # at most this many per run; the next run goes on from there


async def find_appeal(session: AsyncSession, reg_number: str) -> Appeal | None:
    return await session.scalar(select(Appeal).where(Appeal.reg_number == reg_number.strip()))


async def verified_appeal(session: AsyncSession, reg_number: str,
                          last_four: str) -> Appeal | None:
    """The appeal, when ``last_four`` end the phone given in it or one of its citizen's
    (R-A6: the status only to the applicant). None alike for an unknown number and for
    wrong digits: a caller can't learn which numbers exist."""
    appeal = await find_appeal(session, reg_number) if reg_number else None
    if appeal is None:
        return None
    phones = [appeal.contact_phone, *await citizen_phones(session, appeal.citizen_id)]
    return appeal if phone_ends_with(phones, last_four) else None


async def executor_of(session: AsyncSession, appeal: Appeal) -> Staff | None:
    if appeal.executor_id is None:
        return None
    return await session.get(Staff, appeal.executor_id, options=[selectinload(Staff.department)])


async def agency_of(session: AsyncSession, appeal: Appeal) -> Agency | None:
    if appeal.redirected_to_id is None:
        return None
    return await session.get(Agency, appeal.redirected_to_id)


async def render_statuses(services: Services) -> int:
    """Scheduled: speak-ready audio of every appeal status that changed since the last run
    (the first run: the last ``RENDER_FIRST_DAYS`` days), so a caller asking for it hears it
    at once. The text depends only on the appeal, its executor and the agency, so the
    cache by text hash keeps it until one of them changes. Returns how many were rendered."""
    since = services.marks.get("appeal-statuses",
                               services.clock() - timedelta(days=RENDER_FIRST_DAYS))
    async with services.sessions() as session:
        appeals = list(await session.scalars(
            select(Appeal).where(Appeal.updated_at > since)
            .order_by(Appeal.updated_at).limit(RENDER_BATCH)))
        texts = []
        for appeal in appeals:
            texts.append(appeal_status_text(
                services.prompts, appeal, executor=await executor_of(session, appeal),
                agency=await agency_of(session, appeal), tz=services.calendar.tz))
    for text in texts:
        await services.prompts.prepare(text)
    if appeals:
        services.marks["appeal-statuses"] = appeals[-1].updated_at
    return len(texts)


# --- the appeal's life: deadlines, urgency, notices, answer, completion (R-A3–R-A10) -----

class AppealError(Exception):
    """An action on an appeal that can't be done, phrased for the employee."""


class PlainLanguageIssues(AppealError):
    """The answer has flags of the plain-language check; send anyway with ``accept_flags``."""

    def __init__(self, flags: list[Flag]) -> None:
        super().__init__("; ".join(f.message for f in flags))
        self.flags = flags


CONTROLLING_ROLES = (Role.DEPARTMENT_HEAD, Role.SUPERVISOR, Role.ADMINISTRATOR)
OPEN_STATUSES = (AppealStatus.REGISTERED, AppealStatus.IN_WORK)


def ordinary_due_date(settings: Settings, calendar: WorkCalendar, registered: date) -> date:
    cfg = settings.appeals
    if cfg.default_in_working_days:
        return calendar.add_working_days(registered, cfg.default_answer_days)
    return registered + timedelta(days=cfg.default_answer_days)


def urgent_due_date(settings: Settings, calendar: WorkCalendar, registered: date) -> date:
    """R-A3: at most five working days from registration (Russian holidays and
    transferred working days from the calendar)."""
    return calendar.add_working_days(registered, settings.appeals.urgent_answer_working_days)


def not_considered_notice_due(settings: Settings, calendar: WorkCalendar,
                              registered: date) -> date:
    """R-A4: the citizen is told within ten working days of registration."""
    return calendar.add_working_days(registered,
                                     settings.appeals.not_considered_notice_working_days)


async def _appeal(session: AsyncSession, appeal_id: int) -> Appeal:
    appeal = await session.get(Appeal, appeal_id, with_for_update=True)
    if appeal is None:
        raise AppealError(f"обращение {appeal_id} не найдено")
    return appeal


async def suggest_urgency(session: AsyncSession, settings: Settings, appeal: Appeal) -> list[str]:
    """Why this appeal may be urgent, from the citizen's history (R-A3): earlier appeals on
    the same topic within ``appeals.repeat_window_days``, open callbacks, earlier urgent
    appeals. The department head decides; this only shows the reasons."""
    if appeal.citizen_id is None:
        return []
    cfg = settings.appeals
    reasons = []
    since = appeal.registered_on - timedelta(days=cfg.repeat_window_days)
    same_topic = await session.scalar(select(func.count()).select_from(Appeal).where(
        Appeal.citizen_id == appeal.citizen_id, Appeal.id != appeal.id,
        Appeal.topic == appeal.topic, Appeal.registered_on >= since,
        Appeal.registered_on <= appeal.registered_on)) or 0
    if appeal.topic and same_topic >= cfg.repeat_threshold:
        reasons.append(f"повторное обращение по теме «{appeal.topic}»: ещё {same_topic} "
                       f"за {cfg.repeat_window_days} дн.")
    phones = list(await session.scalars(select(CitizenPhone.phone).where(
        CitizenPhone.citizen_id == appeal.citizen_id)))
    if phones:
        open_callbacks = await session.scalar(select(func.count()).select_from(Callback).where(
            Callback.phone.in_(phones),
            Callback.status.in_((CallbackStatus.READY, CallbackStatus.CALLING)))) or 0
        if open_callbacks:
            reasons.append(f"открытые заявки на обратный звонок: {open_callbacks}")
    earlier_urgent = await session.scalar(select(func.count()).select_from(Appeal).where(
        Appeal.citizen_id == appeal.citizen_id, Appeal.id != appeal.id, Appeal.urgent)) or 0
    if earlier_urgent:
        reasons.append(f"ранее срочных обращений: {earlier_urgent}")
    return reasons


async def mark_urgent(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                      calendar: WorkCalendar, appeal_id: int, *, by: Staff,
                      reason: str) -> date:
    """The department head marks an appeal urgent (R-A3); the new due date."""
    if by.role not in CONTROLLING_ROLES:
        raise AppealError("срочность устанавливает руководитель")
    if not reason.strip():
        raise AppealError("укажите причину срочности")
    async with sessions() as session, session.begin():
        appeal = await _appeal(session, appeal_id)
        if appeal.status not in OPEN_STATUSES:
            raise AppealError("обращение уже рассмотрено")
        due = urgent_due_date(settings, calendar, appeal.registered_on)
        appeal.urgent, appeal.urgency_reason = True, reason.strip()
        appeal.due_date = min(due, appeal.due_date) if appeal.due_date else due
        return appeal.due_date


async def _notify(session: AsyncSession, settings: Settings, appeal: Appeal, letter: Letter,
                  key: str, now: datetime) -> None:
    if appeal.citizen_id is None:
        return
    citizen = await notices.load_citizen(session, appeal.citizen_id)
    await notices.enqueue(session, settings, citizen, letter, key=f"appeal:{appeal.id}:{key}",
                          now=now, appeal_id=appeal.id)


async def assign(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 appeal_id: int, executor_id: int, *, now: datetime) -> None:
    """The appeal goes to an executor: in work; the citizen is told who it is (R-A2,
    R-A8). A later reassignment changes the executor without a second notice."""
    async with sessions() as session, session.begin():
        appeal = await _appeal(session, appeal_id)
        executor = await session.get(Staff, executor_id)
        if executor is None or not executor.active:
            raise AppealError("исполнитель не найден")
        if appeal.status not in OPEN_STATUSES:
            raise AppealError("обращение уже рассмотрено")
        appeal.executor_id, appeal.department_id = executor.id, executor.department_id
        appeal.status = AppealStatus.IN_WORK
        await _notify(session, settings, appeal, letters.appeal_in_work(
            appeal, executor, settings.organisation), "in_work", now)


async def mark_abusive(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                       calendar: WorkCalendar, appeal_id: int, *, now: datetime) -> date:
    """R-A4: not considered on its merits; the notice is queued and due within ten working
    days of registration (``due_date``; the overdue list tracks it until sent)."""
    async with sessions() as session, session.begin():
        appeal = await _appeal(session, appeal_id)
        if appeal.status not in OPEN_STATUSES:
            raise AppealError("обращение уже рассмотрено")
        appeal.abusive, appeal.status = True, AppealStatus.NOT_CONSIDERED
        appeal.due_date = not_considered_notice_due(settings, calendar, appeal.registered_on)
        await _notify(session, settings, appeal, letters.appeal_not_considered(
            appeal, settings.organisation), "not_considered", now)
        return appeal.due_date


async def redirect(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                   appeal_id: int, agency_id: int, *, now: datetime) -> None:
    """R-A5: sent to another body; the citizen is told, with a survey link."""
    async with sessions() as session, session.begin():
        appeal = await _appeal(session, appeal_id)
        agency = await session.get(Agency, agency_id)
        if agency is None:
            raise AppealError("организация не найдена")
        if appeal.status not in OPEN_STATUSES:
            raise AppealError("обращение уже рассмотрено")
        appeal.status, appeal.redirected_to_id, appeal.redirected_at = (
            AppealStatus.REDIRECTED, agency.id, now)
        await _notify(session, settings, appeal, letters.appeal_redirected(
            appeal, agency, settings.organisation), "redirected", now)


@dataclass(frozen=True)
class AnswerInput:
    outcome: AppealOutcome
    text: str
    executor_id: int
    outcome_date: date | None = None
    refusal_reasons: str = ""


async def answer(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 appeal_id: int, given: AnswerInput, *, now: datetime,
                 accept_flags: bool = False) -> list[Flag]:
    """R-A6, R-A8: record the answer and queue its notice (with a survey link, R-A5).
    The plain-language check (R-A7) runs first: with flags and no ``accept_flags`` the
    answer is not sent and :class:`PlainLanguageIssues` lists them."""
    if not given.text.strip():
        raise AppealError("текст ответа пуст")
    if given.outcome == AppealOutcome.WILL_RESOLVE_BY and given.outcome_date is None:
        raise AppealError("укажите дату, к которой вопрос будет решён")
    if given.outcome == AppealOutcome.CANNOT_RESOLVE and not given.refusal_reasons.strip():
        raise AppealError("укажите причины, по которым вопрос не может быть решён")
    async with sessions() as session, session.begin():
        dictionary = await plain_language.load_dictionary(session)
        flags = plain_language.check(f"{given.text}\n{given.refusal_reasons}", dictionary)
        if flags and not accept_flags:
            raise PlainLanguageIssues(flags)
        appeal = await _appeal(session, appeal_id)
        if appeal.status not in OPEN_STATUSES:
            raise AppealError("обращение уже рассмотрено")
        executor = await session.get(Staff, given.executor_id)
        if executor is None:
            raise AppealError("исполнитель не найден")
        if not executor.phone:
            raise AppealError("у исполнителя не указан телефон: гражданин должен иметь "
                              "возможность позвонить ему")
        appeal.executor_id = executor.id
        appeal.outcome, appeal.outcome_date = given.outcome, given.outcome_date
        appeal.answer_text = given.text.strip()
        appeal.refusal_reasons = given.refusal_reasons.strip() or None
        appeal.status, appeal.answered_at = AppealStatus.ANSWERED, now
        await _notify(session, settings, appeal, letters.appeal_answer(
            appeal, executor, settings.organisation), "answer", now)
        return flags


# Violations an appeal may reveal (R-A10), by kind; "other" is described in words.
VIOLATION_KINDS = {
    "deadline": "нарушен срок рассмотрения",
    "incomplete_answer": "ответ дан не на все вопросы",
    "unfounded_refusal": "необоснованный отказ",
    "excess_documents": "требование лишних документов",
    "staff_conduct": "некорректное поведение сотрудника",
    "service_procedure": "нарушен порядок предоставления услуги",
    "other": "другое",
}
MAX_VIOLATIONS = 10


@dataclass(frozen=True)
class ViolationInput:
    """A violation found and its cause (R-A10); ``description`` names an "other" one."""

    kind: str
    cause: str
    description: str = ""


def _checked(found: Sequence[ViolationInput]) -> list[AppealViolation]:
    if len(found) > MAX_VIOLATIONS:
        raise AppealError(f"не больше {MAX_VIOLATIONS} нарушений на обращение")
    rows = []
    for number, item in enumerate(found, 1):
        cause, description = " ".join(item.cause.split()), " ".join(item.description.split())
        if item.kind not in VIOLATION_KINDS:
            raise AppealError(f"нарушение {number}: выберите вид нарушения из списка")
        if item.kind == "other" and not description:
            raise AppealError(f"нарушение {number}: опишите, в чём оно состоит")
        if not cause:
            raise AppealError(f"нарушение {number}: укажите его причину")
        if len(cause) > 2000 or len(description) > 2000:
            raise AppealError(f"нарушение {number}: не длиннее 2000 знаков")
        rows.append(AppealViolation(kind=item.kind, cause=cause,
                                    description=description if item.kind == "other" else ""))
    return rows


async def complete(sessions: async_sessionmaker[AsyncSession], appeal_id: int, *, by: Staff,
                   now: datetime, violations: Sequence[ViolationInput] = ()) -> None:
    """R-A10: the controlling official records that the appeal is done, with the
    violations found and their causes; only after the answer (or redirection, or the
    notice of non-consideration) was sent."""
    if by.role not in CONTROLLING_ROLES:
        raise AppealError("завершение фиксирует контролирующее должностное лицо")
    found = _checked(violations)
    async with sessions() as session, session.begin():
        appeal = await _appeal(session, appeal_id)
        if appeal.status in OPEN_STATUSES:
            raise AppealError("по обращению ещё не дан ответ")
        if appeal.status == AppealStatus.COMPLETED:
            return
        unsent = await session.scalar(select(func.count()).select_from(Notification).where(
            Notification.appeal_id == appeal.id,
            Notification.status.in_((NotificationStatus.PENDING, NotificationStatus.SENDING,
                                     NotificationStatus.FAILED)))) or 0
        if unsent:
            raise AppealError("ответ гражданину ещё не отправлен")
        appeal.status, appeal.completed_at, appeal.completed_by_id = (
            AppealStatus.COMPLETED, now, by.id)
        for row in found:
            row.appeal_id = appeal.id
            session.add(row)


async def violations_of(session: AsyncSession, appeal_id: int) -> list[AppealViolation]:
    return list((await session.scalars(select(AppealViolation).where(
        AppealViolation.appeal_id == appeal_id).order_by(AppealViolation.id))).all())


# --- lists and reports --------------------------------------------------------------------

def _notice_sent() -> Any:
    return exists().where(Notification.appeal_id == Appeal.id,
                          Notification.kind == "appeal_not_considered",
                          Notification.status.in_((NotificationStatus.SENT,
                                                   NotificationStatus.OUTBOX)))


def _waiting() -> Any:
    """Appeals still owing the citizen something: an answer, or the R-A4 notice."""
    return or_(Appeal.status.in_(OPEN_STATUSES),
               and_(Appeal.status == AppealStatus.NOT_CONSIDERED, ~_notice_sent()))


async def overdue(session: AsyncSession, today: date, *, limit: int = 200) -> list[Appeal]:
    return list((await session.scalars(
        select(Appeal).where(_waiting(), Appeal.due_date < today)
        .order_by(Appeal.due_date, Appeal.id).limit(limit))).all())


async def due_soon(session: AsyncSession, settings: Settings, calendar: WorkCalendar,
                   today: date, *, limit: int = 200) -> list[Appeal]:
    until = calendar.add_working_days(today, settings.appeals.due_soon_working_days)
    return list((await session.scalars(
        select(Appeal).where(_waiting(), Appeal.due_date >= today, Appeal.due_date <= until)
        .order_by(Appeal.due_date, Appeal.id).limit(limit))).all())


async def report_by_topic(session: AsyncSession, since: date, until: date,
                          today: date) -> list[tuple[str, int, int, int]]:
    """(topic, registered, answered, overdue now) for appeals registered in the period
    (R-A10: appeals are analysed for violations), by the classifier's topic (R-A1) as it
    is named now; an appeal registered before the classifier by the text it carries."""
    answered = case((Appeal.answered_at.is_not(None), 1), else_=0)
    late = case((and_(_waiting(), Appeal.due_date < today), 1), else_=0)
    topic = func.coalesce(AppealTopic.title, Appeal.topic)
    rows = await session.execute(
        select(topic, func.count(), func.sum(answered), func.sum(late))
        .outerjoin(AppealTopic, AppealTopic.id == Appeal.topic_id)
        .where(Appeal.registered_on >= since, Appeal.registered_on <= until)
        .group_by(topic).order_by(func.count().desc(), topic))
    return [(t, n, int(a or 0), int(o or 0)) for t, n, a, o in rows.all()]


async def report_violations(session: AsyncSession, since: date, until: date
                            ) -> list[tuple[str, str, str, int]]:
    """(topic, violation, cause, appeals) for appeals registered in the period (R-A10):
    the violations found on completion, by topic of the classifier, kind and cause; the
    most frequent first. An "other" violation is named by its description."""
    topic = func.coalesce(AppealTopic.title, Appeal.topic)
    rows = await session.execute(
        select(topic, AppealViolation.kind, AppealViolation.description,
               AppealViolation.cause, func.count(func.distinct(Appeal.id)))
        .join(Appeal, Appeal.id == AppealViolation.appeal_id)
        .outerjoin(AppealTopic, AppealTopic.id == Appeal.topic_id)
        .where(Appeal.registered_on >= since, Appeal.registered_on <= until)
        .group_by(topic, AppealViolation.kind, AppealViolation.description,
                  AppealViolation.cause)
        .order_by(func.count(func.distinct(Appeal.id)).desc(), topic, AppealViolation.kind))
    return [(t, d if k == "other" else VIOLATION_KINDS.get(k, k), c, n)
            for t, k, d, c, n in rows.all()]


async def repeat_appeals(session: AsyncSession, since: date,
                         *, limit: int = 200) -> list[tuple[int, str, int]]:
    """(citizen id, topic, appeals) for citizens who wrote on one topic more than once."""
    rows = await session.execute(
        select(Appeal.citizen_id, Appeal.topic, func.count())
        .where(Appeal.registered_on >= since, Appeal.citizen_id.is_not(None))
        .group_by(Appeal.citizen_id, Appeal.topic).having(func.count() > 1)
        .order_by(func.count().desc()).limit(limit))
    return [(c, t, n) for c, t, n in rows.all()]
