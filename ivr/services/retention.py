"""Retention of personal data (R-A9, 152-ФЗ art. 5 p. 7), run by the scheduler.

Appeals with their notices and survey answers are kept ``appeals.retention_years`` (from
registration or completion, ``appeals.retention_from``), then removed — or, with
``retention_mode = "anonymise"``, stripped of everything personal. Calls, callbacks,
reception bookings and the audit log's phone numbers follow ``[retention]``; a citizen
nothing refers to any more goes last. Every batch is audited as a count, in the same
transaction as the change. docs/retention.md is the table of what goes when.

A citizen's list of appeals over the kept years is printable and exportable on request.
"""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Select, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.base import Base
from ..db.models import (
    Appeal,
    AppealStatus,
    AuditEntry,
    Booking,
    Call,
    Callback,
    CallbackAttempt,
    CallbackStatus,
    CallbackWindow,
    CallRecording,
    Citizen,
    CitizenPhone,
    JournalEntry,
    Notification,
    ReceptionSlot,
    RecordingStatus,
    SurveyResponse,
    Transfer,
)
from ..hygiene import SafeCsvWriter
from ..settings import Settings

BATCH = 500
STATUS_NAMES = {"registered": "зарегистрировано", "in_work": "на рассмотрении",
                "redirected": "направлено по компетенции",
                "not_considered": "не рассмотрено по существу", "answered": "дан ответ",
                "completed": "рассмотрение завершено"}
OUTCOME_NAMES = {"resolved": "вопрос решён", "will_resolve_by": "будет решён к сроку",
                 "can_resolve_no_date": "может быть решён, срок не определён",
                 "cannot_resolve": "не может быть решён"}
CLOSED_APPEALS = (AppealStatus.REDIRECTED, AppealStatus.NOT_CONSIDERED,
                  AppealStatus.ANSWERED, AppealStatus.COMPLETED)
CLOSED_CALLBACKS = (CallbackStatus.DONE, CallbackStatus.FAILED, CallbackStatus.CANCELLED)
# A phone number in an audit entry's text: 10–15 digits in a row (as numbers are stored),
# or a Russian number as typed (+7 (900) 111-22-33, 8 900 111 22 33); not a part of a
# longer number or of a linkedid (hotline-1764057600.12).
PHONE_IN_TEXT = re.compile(
    r"(?<![\d.])(?:\+?\d{10,15}|(?:\+7|8)[ \-]?\(?\d{3}\)?[ \-]?\d{3}[ \-]?\d{2}[ \-]?\d{2})"
    r"(?![\d.])")
PHONE_MASK = "***"
MASK_ACTION = "mask_phones"


def cutoff(today: date, years: int) -> date:
    """The first day still kept: the same day ``years`` ago (29 February becomes
    28 February)."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def _kept_from(settings: Settings, today: date, years: int) -> datetime:
    """The first moment still kept: local midnight of the cutoff day."""
    return datetime.combine(cutoff(today, years), time(), tzinfo=settings.organisation.tz)


def _rows(result: object) -> int:
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


Act = Callable[[AsyncSession, list[int]], Awaitable[Sequence[int]]]


@dataclass(frozen=True)
class Sweep:
    """One kind of record: the ids past their period (``since`` is the first moment kept),
    what to do with a batch of them, and how the audit log names it (``names``: a Russian
    label per count ``act`` returns)."""

    action: str
    object_type: str
    since: datetime
    pick: Select[Any]
    act: Act
    names: tuple[str, ...]


async def _sweep(sessions: async_sessionmaker[AsyncSession], sweep: Sweep,
                 now: datetime) -> list[int]:
    """Batches until nothing is left; each batch and its audit entry commit together.
    ``pick`` must no longer select what ``act`` has done, or this never ends."""
    totals = [0] * len(sweep.names)
    while True:
        async with sessions() as session, session.begin():
            ids = list(await session.scalars(sweep.pick.limit(BATCH)))
            if not ids:
                return totals
            counts = await sweep.act(session, ids)
            counted = ", ".join(f"{n}: {c}" for n, c in zip(sweep.names, counts, strict=True))
            session.add(AuditEntry(
                at=now, staff_id=None, action=sweep.action, object_type=sweep.object_type,
                details=f"срок хранения истёк ({counted}; ранее {sweep.since:%d.%m.%Y})"))
        totals = [a + b for a, b in zip(totals, counts, strict=True)]


# --- appeals (R-A9) ------------------------------------------------------------------------

@dataclass(frozen=True)
class PurgeResult:
    appeals: int
    notices: int
    surveys: int


def _appeals_pick(settings: Settings, today: date) -> Select[Any]:
    cfg = settings.appeals
    query = select(Appeal.id).where(Appeal.status.in_(CLOSED_APPEALS))
    if cfg.retention_from == "registration":
        query = query.where(Appeal.registered_on < cutoff(today, cfg.retention_years))
    else:
        closed = func.coalesce(Appeal.completed_at, Appeal.answered_at, Appeal.redirected_at,
                               Appeal.updated_at)
        query = query.where(closed < _kept_from(settings, today, cfg.retention_years))
    if cfg.retention_mode == "anonymise":
        query = query.where(Appeal.anonymised_at.is_(None))
    return query.order_by(Appeal.id)


async def purge_expired(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                        today: date, now: datetime) -> PurgeResult:
    """Closed appeals past ``appeals.retention_years``: removed or anonymised."""
    cfg = settings.appeals
    since = _kept_from(settings, today, cfg.retention_years)

    async def anonymise(session: AsyncSession, ids: list[int]) -> tuple[int, int, int]:
        return await _anonymise_appeals(session, ids, now)

    anonymising = cfg.retention_mode == "anonymise"
    counts = await _sweep(sessions, Sweep(
        "anonymise" if anonymising else "delete", "appeal", since,
        _appeals_pick(settings, today), anonymise if anonymising else _delete_appeals,
        ("обращений", "уведомлений", "ответов на опросы")), now)
    return PurgeResult(*counts)


async def _delete_appeals(session: AsyncSession, ids: list[int]) -> tuple[int, int, int]:
    surveys = _rows(await session.execute(
        delete(SurveyResponse).where(SurveyResponse.appeal_id.in_(ids))))
    sent = _rows(await session.execute(
        delete(Notification).where(Notification.appeal_id.in_(ids))))
    appeals = _rows(await session.execute(delete(Appeal).where(Appeal.id.in_(ids))))
    return appeals, sent, surveys


async def _clear_comments(session: AsyncSession, where: Any) -> int:
    """Survey answers stay for the statistics; the free-text comment goes."""
    cleared = 0
    for response in (await session.scalars(select(SurveyResponse).where(where))).all():
        if response.answers.get("comment"):
            response.answers = {**response.answers, "comment": ""}
            cleared += 1
    return cleared


async def _anonymise_appeals(session: AsyncSession, ids: list[int],
                             now: datetime) -> tuple[int, int, int]:
    surveys = await _clear_comments(session, SurveyResponse.appeal_id.in_(ids))
    sent = _rows(await session.execute(
        update(Notification).where(Notification.appeal_id.in_(ids))
        .values(address="", body="", citizen_id=None)))
    appeals = _rows(await session.execute(
        update(Appeal).where(Appeal.id.in_(ids))
        .values(text="", materials="", contact_phone="", answer_text=None,
                refusal_reasons=None, citizen_id=None, anonymised_at=now)))
    return appeals, sent, surveys


# --- calls, callbacks, bookings ------------------------------------------------------------

def _calls(settings: Settings, today: date) -> Sweep:
    cfg = settings.retention
    since = _kept_from(settings, today, cfg.calls_years)
    moment = (func.coalesce(Call.ended_at, Call.started_at) if cfg.calls_from == "end"
              else Call.started_at)
    personal = or_(Call.caller_number != "", Call.citizen_id.is_not(None),
                   exists().where(JournalEntry.call_id == Call.id, or_(
                       JournalEntry.question.is_not(None), JournalEntry.answer.is_not(None))))
    return Sweep("anonymise", "call", since,
                 select(Call.id).where(moment < since, personal).order_by(Call.id),
                 _anonymise_calls, ("звонков",))


async def _anonymise_calls(session: AsyncSession, ids: list[int]) -> tuple[int]:
    """The statistics (times, topic, queue, outcome, legs, rating) stay; who called and
    what they said go."""
    await session.execute(update(Transfer).where(Transfer.call_id.in_(ids), Transfer.note != "")
                          .values(note=""))
    await session.execute(update(JournalEntry).where(JournalEntry.call_id.in_(ids))
                          .values(question=None, answer=None))
    return (_rows(await session.execute(
        update(Call).where(Call.id.in_(ids)).values(caller_number="", citizen_id=None))),)


def _callbacks(settings: Settings, today: date) -> Sweep:
    cfg = settings.retention
    since = _kept_from(settings, today, cfg.callbacks_years)
    moment = Callback.updated_at if cfg.callbacks_from == "closed" else Callback.created_at
    return Sweep("delete", "callback", since,
                 select(Callback.id).where(Callback.status.in_(CLOSED_CALLBACKS), moment < since)
                 .order_by(Callback.id), _delete_callbacks, ("обратных звонков",))


async def _delete_callbacks(session: AsyncSession, ids: list[int]) -> tuple[int]:
    await session.execute(delete(CallbackWindow).where(CallbackWindow.callback_id.in_(ids)))
    await session.execute(delete(CallbackAttempt).where(CallbackAttempt.callback_id.in_(ids)))
    return (_rows(await session.execute(delete(Callback).where(Callback.id.in_(ids)))),)


def _bookings(settings: Settings, today: date) -> Sweep:
    cfg = settings.retention
    since = _kept_from(settings, today, cfg.bookings_years)
    pick = select(Booking.id)
    if cfg.bookings_from == "reception":
        pick = pick.join(ReceptionSlot, ReceptionSlot.id == Booking.slot_id).where(
            ReceptionSlot.starts_at < since)
    else:
        pick = pick.where(Booking.created_at < since)
    return Sweep("delete", "booking", since, pick.order_by(Booking.id), _delete_bookings,
                 ("записей на приём", "напоминаний", "ответов на опросы"))


async def _delete_bookings(session: AsyncSession, ids: list[int]) -> tuple[int, int, int]:
    """The reminders go with the booking; the survey answers about the reception stay
    for the statistics (R-P6), without the booking and the comment."""
    surveys = await _clear_comments(session, SurveyResponse.booking_id.in_(ids))
    await session.execute(update(SurveyResponse).where(SurveyResponse.booking_id.in_(ids))
                          .values(booking_id=None))
    sent = _rows(await session.execute(
        delete(Notification).where(Notification.booking_id.in_(ids))))
    bookings = _rows(await session.execute(delete(Booking).where(Booking.id.in_(ids))))
    return bookings, sent, surveys


# --- call recordings (issue 30) ----------------------------------------------------------------

def _recordings(settings: Settings, today: date, now: datetime) -> Sweep:
    """Past ``recording.keep_years`` from the call: the file removed, the row kept and
    marked removed (when), so a listener sees the recording existed and why it is gone."""
    since = _kept_from(settings, today, settings.recording.keep_years)
    base = settings.recording.directory.resolve()

    async def remove(session: AsyncSession, ids: list[int]) -> tuple[int]:
        for path in await session.scalars(select(CallRecording.path).where(
                CallRecording.id.in_(ids), CallRecording.path.is_not(None))):
            found = (base / str(path)).resolve()
            if found.is_relative_to(base):   # never a file outside the recordings
                found.unlink(missing_ok=True)
        return (_rows(await session.execute(
            update(CallRecording).where(CallRecording.id.in_(ids))
            .values(status=RecordingStatus.REMOVED, removed_at=now))),)

    kept = (RecordingStatus.STORED, RecordingStatus.FAILED)
    return Sweep("delete", "recording", since,
                 select(CallRecording.id).where(CallRecording.status.in_(kept),
                                                CallRecording.started_at < since)
                 .order_by(CallRecording.id), remove, ("записей разговоров",))


# --- the audit log and the citizens left ------------------------------------------------------

def mask_phones(text: str) -> str:
    return PHONE_IN_TEXT.sub(PHONE_MASK, text)


async def mask_audit_phones(sessions: async_sessionmaker[AsyncSession], since: datetime,
                            now: datetime) -> int:
    """Phone numbers in audit entries older than ``since`` are masked; the entries stay.

    Entries are read in id order from where the last run stopped up to the first one still
    young enough. The place is kept in the job's own audit entry (``object_id``: the last
    entry read), written with each batch that masked something and at the end."""
    async with sessions() as session:
        done = await session.scalar(
            select(AuditEntry.object_id).where(AuditEntry.action == MASK_ACTION)
            .order_by(AuditEntry.id.desc()).limit(1))
    last = marked = int(done) if done and done.isdigit() else 0
    total = 0
    finished = False
    while not finished:
        async with sessions() as session, session.begin():
            rows = (await session.scalars(select(AuditEntry).where(AuditEntry.id > last)
                                          .order_by(AuditEntry.id).limit(BATCH))).all()
            masked = 0
            for entry in rows:
                if entry.at >= since:
                    finished = True
                    break
                masked += _mask_entry(entry)
                last = entry.id
            finished = finished or len(rows) < BATCH
            if masked or (finished and last != marked):
                session.add(_mask_mark(last, masked, since, now))
                marked = last
        total += masked
    return total


def _mask_entry(entry: AuditEntry) -> int:
    if entry.action == MASK_ACTION:
        return 0
    object_id, details = mask_phones(entry.object_id), mask_phones(entry.details)
    if (object_id, details) == (entry.object_id, entry.details):
        return 0
    entry.object_id, entry.details = object_id, details
    return 1


def _mask_mark(last: int, masked: int, since: datetime, now: datetime) -> AuditEntry:
    return AuditEntry(at=now, action=MASK_ACTION, object_type="audit_log", object_id=str(last),
                      details=f"срок хранения истёк (записей с номером телефона: {masked}; "
                              f"ранее {since:%d.%m.%Y})")


def _left_citizens(settings: Settings, today: date) -> Sweep:
    """Citizens unchanged for the shortest period that no row of any table refers to (their
    own phone numbers aside), whatever tables the schema has gained."""
    since = _kept_from(settings, today, settings.retention.shortest_years)
    refs = [fk.parent for table in Base.metadata.tables.values()
            if table.name != CitizenPhone.__tablename__
            for fk in table.foreign_keys if fk.column.table.name == Citizen.__tablename__]
    pick = select(Citizen.id).where(Citizen.updated_at < since,
                                    *(~exists().where(ref == Citizen.id) for ref in refs))
    return Sweep("delete", "citizen", since, pick.order_by(Citizen.id), _delete_citizens,
                 ("граждан",))


async def _delete_citizens(session: AsyncSession, ids: list[int]) -> tuple[int]:
    await session.execute(delete(CitizenPhone).where(CitizenPhone.citizen_id.in_(ids)))
    return (_rows(await session.execute(delete(Citizen).where(Citizen.id.in_(ids)))),)


# --- the whole job -------------------------------------------------------------------------

@dataclass(frozen=True)
class RetentionReport:
    appeals: PurgeResult
    calls: int
    callbacks: int
    bookings: int
    audit_entries: int
    citizens: int
    recordings: int = 0

    def __str__(self) -> str:
        return (f"{self.appeals.appeals} appeals, {self.appeals.notices} notices, "
                f"{self.appeals.surveys} survey answers; {self.calls} calls anonymised; "
                f"{self.callbacks} callbacks, {self.bookings} bookings removed; phone numbers "
                f"masked in {self.audit_entries} audit entries; {self.citizens} citizens "
                f"removed; {self.recordings} call recordings removed")

    @property
    def changed(self) -> bool:
        return any((self.appeals.appeals, self.calls, self.callbacks, self.bookings,
                    self.audit_entries, self.citizens, self.recordings))


async def apply_retention(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                          today: date, now: datetime) -> RetentionReport:
    """Everything past its period; the citizens left with nothing last."""
    appeals = await purge_expired(sessions, settings, today, now)
    calls, callbacks, bookings = [
        (await _sweep(sessions, sweep, now))[0]
        for sweep in (_calls(settings, today), _callbacks(settings, today),
                      _bookings(settings, today))]
    audit = await mask_audit_phones(
        sessions, _kept_from(settings, today, settings.retention.audit_years), now)
    citizens = (await _sweep(sessions, _left_citizens(settings, today), now))[0]
    recordings = (await _sweep(sessions, _recordings(settings, today, now), now))[0]
    return RetentionReport(appeals, calls, callbacks, bookings, audit, citizens, recordings)


# --- a citizen's appeals on request (R-A9) ------------------------------------------------

async def citizen_history(session: AsyncSession, settings: Settings, citizen_id: int,
                          today: date) -> list[Appeal]:
    """The citizen's appeals of the kept years, newest first (R-A9)."""
    keep_from = cutoff(today, settings.appeals.retention_years)
    return list((await session.scalars(
        select(Appeal).where(Appeal.citizen_id == citizen_id,
                             Appeal.registered_on >= keep_from)
        .order_by(Appeal.registered_on.desc(), Appeal.id.desc()))).all())


def history_csv(appeals: list[Appeal]) -> str:
    out = io.StringIO()
    writer = SafeCsvWriter(out, delimiter=";")
    writer.writerow(["Рег. номер", "Дата регистрации", "Тема", "Состояние", "Срок ответа",
                     "Результат", "Дата ответа"])
    for a in appeals:
        writer.writerow([
            a.reg_number, f"{a.registered_on:%d.%m.%Y}", a.topic,
            STATUS_NAMES.get(a.status.value, a.status.value),
            f"{a.due_date:%d.%m.%Y}" if a.due_date else "",
            OUTCOME_NAMES.get(a.outcome.value, "") if a.outcome else "",
            f"{a.answered_at:%d.%m.%Y}" if a.answered_at else ""])
    return out.getvalue()
