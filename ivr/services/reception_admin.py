"""Keeping personal reception (R-P1): who receives (the minister, deputies, department
heads, specialists), their weekly schedules and places, the slots made from them, and the
days they do not receive.

A weekly schedule that overlaps another of the same official is refused. An exception
(a vacation, a cancelled day) removes the free slots of its days at once, cancels the
bookings on them and queues a notice to each booked citizen by their own channels
(R-A2, R-P5), all in the one transaction with its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..calendar import WorkCalendar
from ..db.models import (
    Booking,
    BookingStatus,
    ExceptionKind,
    Official,
    ReceptionException,
    ReceptionSchedule,
    ReceptionSlot,
    Staff,
)
from ..letters import reception_cancelled
from ..settings import Settings
from . import audit, delivery, notices
from .admin import AdminError
from .receptions import BOOKING_DETAILS, CANCELLED_VIA_MINISTRY, SCHEDULED_KINDS

KIND_NAMES = {"minister": "министр", "deputy": "заместитель министра",
              "department_head": "руководитель подразделения", "specialist": "специалист",
              "department": "сотрудник подразделения"}
EXCEPTION_NAMES = {ExceptionKind.VACATION: "отпуск", ExceptionKind.CANCELLED: "приём отменён"}
WEEKDAYS = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота",
            "воскресенье")
MAX_EXCEPTION_DAYS = 366


@dataclass(frozen=True)
class OfficialDetails:
    staff_id: int
    title: str
    kind: str
    place: str = ""
    directions: str = ""


def _values(official: Official) -> dict[str, object]:
    return {"сотрудник": official.staff_id, "должность": official.title,
            "вид": KIND_NAMES.get(official.kind, official.kind), "место": official.place,
            "как пройти": official.directions, "принимает": "да" if official.active else "нет"}


async def save_official(session: AsyncSession, official_id: int | None,
                        details: OfficialDetails, *, who: int | None) -> Official:
    if details.kind not in KIND_NAMES:
        raise AdminError("Выберите, кто принимает: министр, заместитель, руководитель "
                         "подразделения или специалист.")
    title = details.title.strip()
    if not title or len(title) > 300:
        raise AdminError("Должность для граждан: от 1 до 300 символов.")
    staff = await session.get(Staff, details.staff_id)
    if staff is None or not staff.active:
        raise AdminError("Сотрудник не найден или отключён.")
    clash = await session.scalar(select(Official.id).where(
        Official.staff_id == details.staff_id))
    if clash is not None and clash != official_id:
        raise AdminError(f"{staff.initials_name} уже ведёт приём: измените его запись.")
    official = Official() if official_id is None else await official_by_id(session,
                                                                          official_id)
    before = None if official_id is None else _values(official)
    official.staff_id, official.title, official.kind = details.staff_id, title, details.kind
    official.place, official.directions = details.place.strip(), details.directions.strip()
    if official_id is None:
        official.active = True
        session.add(official)
    await session.flush()
    audit.write(session, who, "update" if before else "create", "official", official.id,
                before=before, after=_values(official))
    return official


async def official_by_id(session: AsyncSession, official_id: int) -> Official:
    official = await session.get(Official, official_id, options=[
        selectinload(Official.staff)])
    if official is None:
        raise AdminError("Должностное лицо не найдено.")
    return official


async def _future_free_slots(session: AsyncSession, official_id: int,
                             now: datetime) -> list[ReceptionSlot]:
    booked = select(Booking.slot_id).where(Booking.status.in_(
        (BookingStatus.BOOKED, BookingStatus.ATTENDED)))
    return list((await session.scalars(select(ReceptionSlot).where(
        ReceptionSlot.official_id == official_id, ReceptionSlot.starts_at > now,
        ReceptionSlot.id.not_in(booked)))).all())


async def set_active(session: AsyncSession, official: Official, active: bool,
                     now: datetime, *, who: int | None) -> None:
    """Retire an official (their free slots go; a citizen still booked must be told
    first, through an exception) or bring them back."""
    if not active:
        booked = await session.scalar(select(Booking.id).join(ReceptionSlot).where(
            ReceptionSlot.official_id == official.id, ReceptionSlot.starts_at > now,
            Booking.status == BookingStatus.BOOKED).limit(1))
        if booked is not None:
            raise AdminError("К этому должностному лицу записаны граждане: сначала отмените "
                             "их приём (исключение «приём отменён»), чтобы они получили "
                             "уведомление.")
        for slot in await _future_free_slots(session, official.id, now):
            await session.delete(slot)
    before = _values(official)
    official.active = active
    audit.write(session, who, "update", "official", official.id, before=before,
                after=_values(official))


# --- weekly schedules ------------------------------------------------------------------------

@dataclass(frozen=True)
class ScheduleDetails:
    weekday: int
    starts: time
    ends: time
    slot_minutes: int = 30


def schedule_text(s: ReceptionSchedule | ScheduleDetails) -> str:
    return (f"{WEEKDAYS[s.weekday]} {s.starts:%H:%M}–{s.ends:%H:%M}, "
            f"по {s.slot_minutes} мин.")


def _check_schedule(given: ScheduleDetails) -> None:
    if not 0 <= given.weekday <= 6:
        raise AdminError("День недели: от понедельника до воскресенья.")
    if not 5 <= given.slot_minutes <= 240:
        raise AdminError("Длительность приёма одного гражданина: от 5 до 240 минут.")
    if given.starts >= given.ends:
        raise AdminError("Приём должен заканчиваться позже, чем начинается.")
    span = (datetime.combine(date.min, given.ends) - datetime.combine(date.min, given.starts))
    if span < timedelta(minutes=given.slot_minutes):
        raise AdminError("В это время не помещается ни одного приёма такой длительности.")


async def add_schedule(session: AsyncSession, official: Official, given: ScheduleDetails, *,
                       who: int | None) -> ReceptionSchedule:
    """One weekly reception time; refused when it overlaps another of the same official."""
    _check_schedule(given)
    for other in await session.scalars(select(ReceptionSchedule).where(
            ReceptionSchedule.official_id == official.id,
            ReceptionSchedule.weekday == given.weekday)):
        if other.starts < given.ends and given.starts < other.ends:
            # The schedule's text ends with «мин.»: no second period after it.
            raise AdminError(f"Время пересекается с уже назначенным приёмом: "
                             f"{schedule_text(other)} Измените время или удалите тот "
                             "приём.")
    row = ReceptionSchedule(official_id=official.id, weekday=given.weekday,
                            starts=given.starts, ends=given.ends,
                            slot_minutes=given.slot_minutes)
    session.add(row)
    await session.flush()
    audit.write(session, who, "create", "reception_schedule", row.id,
                f"должностное лицо {official.id}", after={"приём": schedule_text(row)})
    return row


async def remove_schedule(session: AsyncSession, official: Official, schedule_id: int,
                          calendar: WorkCalendar, now: datetime, *, who: int | None) -> int:
    """The weekly time goes, with its future free slots (booked ones stay: the citizens
    keep them unless the day is cancelled). The number of slots removed."""
    row = await session.get(ReceptionSchedule, schedule_id)
    if row is None or row.official_id != official.id:
        raise AdminError("Такого времени приёма нет.")
    removed = 0
    for slot in await _future_free_slots(session, official.id, now):
        local = calendar.local(slot.starts_at)
        if local.weekday() == row.weekday and row.starts <= local.time() < row.ends:
            await session.delete(slot)
            removed += 1
    audit.write(session, who, "delete", "reception_schedule", row.id,
                f"должностное лицо {official.id}; свободных слотов удалено: {removed}",
                before={"приём": schedule_text(row)})
    await session.delete(row)
    return removed


# --- exceptions: vacation, a cancelled day -----------------------------------------------

@dataclass(frozen=True)
class ExceptionDetails:
    kind: ExceptionKind
    starts_on: date
    ends_on: date
    reason: str = ""


async def add_exception(session: AsyncSession, settings: Settings, calendar: WorkCalendar,
                        official: Official, given: ExceptionDetails, now: datetime, *,
                        who: int | None) -> tuple[ReceptionException, int]:
    """The days off; their free slots removed, their bookings cancelled and each citizen
    notified by their channels. The exception and how many citizens were notified."""
    if given.ends_on < given.starts_on:
        raise AdminError("Последний день не может быть раньше первого.")
    if given.ends_on < calendar.today(now):
        raise AdminError("Эти дни уже прошли.")
    if (given.ends_on - given.starts_on).days >= MAX_EXCEPTION_DAYS:
        raise AdminError("Исключение — не больше года; для ухода насовсем снимите "
                         "должностное лицо с приёма.")
    reason = given.reason.strip()[:500]
    row = ReceptionException(official_id=official.id, kind=given.kind,
                             starts_on=given.starts_on, ends_on=given.ends_on,
                             reason=reason, created_by_id=who)
    session.add(row)
    await session.flush()
    first = datetime.combine(given.starts_on, time(0), calendar.tz)
    last = datetime.combine(given.ends_on + timedelta(days=1), time(0), calendar.tz)
    notified = await _cancel_bookings(session, settings, calendar, official, first, last,
                                      reason, now)
    await session.execute(delete(ReceptionSlot).where(
        ReceptionSlot.official_id == official.id, ReceptionSlot.starts_at >= max(first, now),
        ReceptionSlot.starts_at < last,
        ReceptionSlot.id.not_in(select(Booking.slot_id))))
    audit.write(session, who, "create", "reception_exception", row.id,
                f"должностное лицо {official.id}; записей отменено: {notified}",
                after=exception_values(row))
    return row, notified


def exception_values(row: ReceptionException) -> dict[str, object]:
    return {"вид": EXCEPTION_NAMES[row.kind], "с": f"{row.starts_on:%d.%m.%Y}",
            "по": f"{row.ends_on:%d.%m.%Y}", "причина": row.reason}


async def _cancel_bookings(session: AsyncSession, settings: Settings, calendar: WorkCalendar,
                           official: Official, first: datetime, last: datetime, reason: str,
                           now: datetime) -> int:
    bookings = (await session.scalars(
        select(Booking).join(ReceptionSlot, Booking.slot_id == ReceptionSlot.id)
        .where(ReceptionSlot.official_id == official.id, ReceptionSlot.starts_at >= first,
               ReceptionSlot.starts_at < last, ReceptionSlot.starts_at > now,
               Booking.status == BookingStatus.BOOKED)
        .options(BOOKING_DETAILS).with_for_update(of=Booking))).all()
    for booking in bookings:
        booking.status = BookingStatus.CANCELLED
        booking.cancelled_at, booking.cancelled_via = now, CANCELLED_VIA_MINISTRY
        citizen = await notices.load_citizen(session, booking.citizen_id)
        channels = delivery.notice_channels(booking, citizen,
                                            list(settings.notices.legally_fixed_channels))
        await notices.enqueue(session, settings, citizen,
                              reception_cancelled(booking, settings.organisation,
                                                  calendar.tz, reason),
                              key=f"booking:{booking.id}:cancelled", now=now,
                              booking_id=booking.id, channels=channels)
    return len(bookings)


async def remove_exception(session: AsyncSession, official: Official, exception_id: int, *,
                           who: int | None) -> None:
    """The days are open again (slots come with the next generation); cancelled bookings
    stay cancelled: their citizens were told."""
    row = await session.get(ReceptionException, exception_id)
    if row is None or row.official_id != official.id:
        raise AdminError("Такого исключения нет.")
    audit.write(session, who, "delete", "reception_exception", row.id,
                f"должностное лицо {official.id}", before=exception_values(row))
    await session.delete(row)


# --- what the pages show ---------------------------------------------------------------------

@dataclass(frozen=True)
class OfficialView:
    official: Official
    schedules: list[ReceptionSchedule]
    exceptions: list[ReceptionException]
    scheduled: bool      # minister / deputy: their schedule's days; others: working day


async def official_view(session: AsyncSession, official: Official,
                        today: date) -> OfficialView:
    schedules = list((await session.scalars(select(ReceptionSchedule).where(
        ReceptionSchedule.official_id == official.id).order_by(
        ReceptionSchedule.weekday, ReceptionSchedule.starts))).all())
    exceptions = list((await session.scalars(select(ReceptionException).where(
        ReceptionException.official_id == official.id,
        ReceptionException.ends_on >= today).order_by(ReceptionException.starts_on))).all())
    return OfficialView(official, schedules, exceptions, official.kind in SCHEDULED_KINDS)


async def all_officials(session: AsyncSession) -> list[Official]:
    rank = {kind: n for n, kind in enumerate(KIND_NAMES)}
    rows = await session.scalars(select(Official).options(selectinload(Official.staff)))
    return sorted(rows, key=lambda o: (not o.active, rank.get(o.kind, len(rank)),
                                       o.staff.surname))
