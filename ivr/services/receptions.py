"""Personal reception (R-P1–R-P6): slots from the officials' schedules, booking from free
slots, cancellation from every channel, reminders, attendance and the survey after it.

No double booking: the database holds one live booking per slot (a partial unique index),
so of two operators taking one slot at once exactly one wins, on SQLite and PostgreSQL
alike; the other gets :class:`SlotTaken`.

Reminders (R-P3) are due at the same local clock time the day before and two hours before
the reception, in the organisation's zone. The reminder job stamps the booking and queues
the notice in one transaction, and the notice's key is unique: each fires once, whenever
the job runs and however often the service restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload, selectinload

from ..calendar import WorkCalendar
from ..db.models import (
    Booking,
    BookingStatus,
    Channel,
    Citizen,
    Official,
    ReceptionException,
    ReceptionSchedule,
    ReceptionSlot,
)
from ..dialling import DiallingPolicy, NumberRefused
from ..letters import reception_booked, reception_reminder, reception_survey
from ..settings import Settings
from . import delivery, notices
from .delivery import Need
from .surveys import CANCEL_SALT, make_token
from .verification import citizen_phones, phone_ends_with

CANCELLED_VIA_IVR = "hotline IVR"
CANCELLED_VIA_PHONE_REMINDER = "phone reminder"
CANCELLED_VIA_EMAIL = "e-mail link"
CANCELLED_VIA_PANEL = "panel"
CANCELLED_VIA_MINISTRY = "ministry"   # the official's vacation or a cancelled day
# minister / deputy: their schedule's days; department staff: the whole working day (R-P1).
SCHEDULED_KINDS = ("minister", "deputy")
DEFAULT_SLOT_MINUTES = 30
REMINDERS = {"reminder_day": "reminded_day_before_at",
             "reminder_2h": "reminded_two_hours_before_at"}


# A booking with what is said and shown about it: its slot, the official, their name.
# A booking's slot, its official and the official's staff row: each many-to-one, so joined
# into the booking's own query rather than three more queries.
BOOKING_DETAILS = joinedload(Booking.slot).joinedload(ReceptionSlot.official) \
    .joinedload(Official.staff)


class SlotTaken(Exception):
    """The slot was booked by someone else a moment ago."""


class BookingError(Exception):
    """A booking that can't be made, phrased for the operator."""


# --- slots -----------------------------------------------------------------------------------

def _spans(official: Official, schedules: list[ReceptionSchedule], day: date,
           calendar: WorkCalendar) -> list[tuple[datetime, datetime, int]]:
    if not calendar.is_working_day(day):
        return []
    tz = calendar.tz
    if official.kind in SCHEDULED_KINDS:
        return [(datetime.combine(day, s.starts, tz), datetime.combine(day, s.ends, tz),
                 s.slot_minutes) for s in schedules if s.weekday == day.weekday()]
    minutes = schedules[0].slot_minutes if schedules else DEFAULT_SLOT_MINUTES
    return [(p.start, p.end, minutes) for p in calendar.periods_on(day)]


async def generate_slots(sessions: async_sessionmaker[AsyncSession], calendar: WorkCalendar,
                         today: date, days: int) -> int:
    """Create the missing slots of the next ``days`` days; the number created."""
    created = 0
    async with sessions() as session, session.begin():
        officials = (await session.scalars(select(Official).where(Official.active))).all()
        for official in officials:
            schedules = list((await session.scalars(select(ReceptionSchedule).where(
                ReceptionSchedule.official_id == official.id))).all())
            away = await days_away(session, official.id, today, today + timedelta(days=days))
            start = datetime.combine(today, time(0), calendar.tz)
            have = set(await session.scalars(select(ReceptionSlot.starts_at).where(
                ReceptionSlot.official_id == official.id, ReceptionSlot.starts_at >= start)))
            for offset in range(days + 1):
                if today + timedelta(days=offset) in away:
                    continue   # vacation, a cancelled day
                for begin, end, minutes in _spans(official, schedules,
                                                  today + timedelta(days=offset), calendar):
                    at = begin
                    while at + timedelta(minutes=minutes) <= end:
                        if at not in have:
                            session.add(ReceptionSlot(official_id=official.id, starts_at=at,
                                                      ends_at=at + timedelta(minutes=minutes)))
                            created += 1
                        at += timedelta(minutes=minutes)
    return created


async def days_away(session: AsyncSession, official_id: int, first: date,
                    last: date) -> set[date]:
    """The days from ``first`` to ``last`` the official does not receive (exceptions)."""
    rows = await session.scalars(select(ReceptionException).where(
        ReceptionException.official_id == official_id,
        ReceptionException.starts_on <= last, ReceptionException.ends_on >= first))
    away: set[date] = set()
    for row in rows:
        day = max(row.starts_on, first)
        while day <= min(row.ends_on, last):
            away.add(day)
            day += timedelta(days=1)
    return away


def _live_booking(slot_id: object) -> object:
    return exists().where(Booking.slot_id == slot_id,
                          Booking.status.in_((BookingStatus.BOOKED, BookingStatus.ATTENDED)))


def _called_off(slot_id: object) -> object:
    """A slot whose reception the ministry called off (an official's exception): its
    booking is kept as the record of the notice, and the time is never offered again."""
    return exists().where(Booking.slot_id == slot_id,
                          Booking.cancelled_via == CANCELLED_VIA_MINISTRY)


async def free_slots(session: AsyncSession, now: datetime, *, official_id: int | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     limit: int = 50) -> list[ReceptionSlot]:
    """Free slots from ``now`` (or ``since``) up to ``until``, of one official when given:
    asked for the minister, his slots come first, not after weeks of department ones."""
    query = (select(ReceptionSlot).where(ReceptionSlot.starts_at > max(now, since or now),
                                         ~_live_booking(ReceptionSlot.id),  # type: ignore[operator]
                                         ~_called_off(ReceptionSlot.id))  # type: ignore[operator]
             .order_by(ReceptionSlot.starts_at).limit(limit)
             .options(selectinload(ReceptionSlot.official).selectinload(Official.staff)))
    if official_id is not None:
        query = query.where(ReceptionSlot.official_id == official_id)
    if until is not None:
        query = query.where(ReceptionSlot.starts_at < until)
    return list((await session.scalars(query)).all())


async def officials(session: AsyncSession) -> list[Official]:
    """Everyone who receives citizens, the minister and deputies first (R-P1)."""
    rank = {kind: n for n, kind in enumerate(SCHEDULED_KINDS)}
    rows = await session.scalars(select(Official).options(joinedload(Official.staff)))
    return sorted(rows, key=lambda o: (rank.get(o.kind, len(rank)), o.staff.surname))


# --- booking and cancelling --------------------------------------------------------------

@dataclass(frozen=True)
class BookingRequest:
    slot_id: int
    citizen_id: int
    topic: str = ""
    booked_via: str = "panel"
    booked_by_id: int | None = None
    needs: frozenset[Need] = frozenset()   # R-P5: they change how notices are sent
    accessibility_needs: str = ""          # anything else: a sign-language interpreter, …
    reminder_channel: Channel | None = None
    remind_day_before: bool = True
    remind_two_hours_before: bool = False


async def book(sessions: async_sessionmaker[AsyncSession], settings: Settings,
               calendar: WorkCalendar, request: BookingRequest, now: datetime) -> int:
    """Book a free slot and queue the written confirmation with place and directions
    (R-P3).
    Raises :class:`SlotTaken` when another booking holds it."""
    if request.reminder_channel not in (None, Channel.PHONE, Channel.EMAIL):
        raise BookingError("Напоминание о приёме возможно по телефону или электронной почте.")
    try:
        async with sessions() as session, session.begin():
            slot = await session.get(ReceptionSlot, request.slot_id)
            if slot is None:
                raise BookingError("Такого времени приёма нет.")
            if slot.starts_at <= now:
                raise BookingError("Это время приёма уже прошло.")
            if await session.scalar(select(_called_off(slot.id))):  # type: ignore[call-overload]
                raise BookingError("В это время приём отменён. Выберите другое.")
            citizen = await notices.load_citizen(session, request.citizen_id)
            _check_phone_reminder(settings, citizen, request.reminder_channel)
            booking = _new_booking(request, slot, citizen, now)
            session.add(booking)
            await session.flush()
            booking = await _load(session, booking.id)
            _check_reminder_reachable(booking, citizen)
            await _confirm_in_writing(session, settings, calendar, booking, citizen, now)
            return booking.id
    except IntegrityError:
        raise SlotTaken("Это время уже занято. Выберите другое.") from None


def _new_booking(request: BookingRequest, slot: ReceptionSlot, citizen: Citizen,
                 now: datetime) -> Booking:
    reminded = request.remind_day_before or request.remind_two_hours_before
    channel = request.reminder_channel or (
        Channel.EMAIL if citizen.email and citizen.preferred_channel != Channel.PHONE
        else Channel.PHONE)
    return Booking(
        slot_id=slot.id, citizen_id=citizen.id, topic=request.topic,
        booked_via=request.booked_via, booked_by_id=request.booked_by_id,
        need_hearing=Need.HEARING in request.needs, need_sight=Need.SIGHT in request.needs,
        need_mobility=Need.MOBILITY in request.needs,
        accessibility_needs=request.accessibility_needs,
        reminder_channel=channel if reminded else None,
        remind_day_before=request.remind_day_before,
        remind_two_hours_before=request.remind_two_hours_before,
        status=BookingStatus.BOOKED, created_at=now)


def _check_reminder_reachable(booking: Booking, citizen: Citizen) -> None:
    """A reminder asked for must reach the citizen by a way they can take in (R-P5)."""
    if booking.reminder_channel is not None and not delivery.reminder_channels(booking,
                                                                                 citizen):
        raise BookingError("Напоминание отправить некуда: гражданину с нарушением слуха "
                           "звонок не подходит, а адреса электронной почты нет.")


async def _confirm_in_writing(session: AsyncSession, settings: Settings,
                              calendar: WorkCalendar, booking: Booking, citizen: Citizen,
                              now: datetime) -> None:
    """The confirmation with place and directions (R-P3), saying which reminders will come
    and where; a large-print copy goes to the outbox for post when hearing is impaired."""
    channels = delivery.confirmation_channels(
        booking, citizen, list(settings.notices.legally_fixed_channels))
    letter = reception_booked(booking, settings.organisation, calendar.tz,
                              delivery.summary(booking, citizen, channels))
    key = f"booking:{booking.id}:booked"
    await notices.enqueue(session, settings, citizen, letter, key=key, now=now,
                          booking_id=booking.id,
                          channels=[c for c in channels if c != Channel.POST])
    if Channel.POST in channels:
        post = delivery.large_print(letter) if booking.need_hearing else letter
        await notices.enqueue(session, settings, citizen, post, key=key, now=now,
                              booking_id=booking.id, channels=[Channel.POST])


async def delivery_summary(session: AsyncSession, settings: Settings,
                           booking_id: int) -> list[str]:
    """What was sent and what will be, as the confirmation says it: for the operator;
    nothing for a booking that isn't there."""
    booking = await session.scalar(select(Booking).where(Booking.id == booking_id)
                                   .options(BOOKING_DETAILS))
    if booking is None:
        return []
    citizen = await notices.load_citizen(session, booking.citizen_id)
    channels = delivery.confirmation_channels(
        booking, citizen, list(settings.notices.legally_fixed_channels))
    return delivery.summary(booking, citizen, channels)


def _check_phone_reminder(settings: Settings, citizen: Citizen,
                          channel: Channel | None) -> None:
    """A reminder asked for by phone is a call the dialling policy must allow."""
    if channel != Channel.PHONE:
        return
    phone = notices.address_for(citizen, Channel.PHONE)
    try:
        DiallingPolicy.from_settings(settings).decide(phone)
    except NumberRefused as refused:
        raise BookingError(f"Напоминание звонком невозможно. {refused}") from None


async def _load(session: AsyncSession, booking_id: int) -> Booking:
    booking = await session.scalar(select(Booking).where(Booking.id == booking_id).options(
        BOOKING_DETAILS).execution_options(populate_existing=True))
    assert booking is not None
    return booking


# A booking's number as a caller types it: the row id, at most nine digits (an int4 on
# PostgreSQL; a longer string of keys is no booking's number).
BOOKING_NUMBER_DIGITS = 9


async def verified_booking(session: AsyncSession, number: str,
                           last_four: str) -> Booking | None:
    """The booking, when ``last_four`` end one of its citizen's phones. None alike for an
    unknown number and for wrong digits: a caller can't learn which bookings exist."""
    if not number.isdecimal() or len(number) > BOOKING_NUMBER_DIGITS:
        return None
    booking = await session.get(Booking, int(number))
    if booking is None:
        return None
    phones = await citizen_phones(session, booking.citizen_id)
    return booking if phone_ends_with(phones, last_four) else None


async def upcoming_for_citizen(session: AsyncSession, citizen_id: int,
                               now: datetime) -> list[Booking]:
    rows = await session.scalars(
        select(Booking)
        .join(ReceptionSlot, Booking.slot_id == ReceptionSlot.id)
        .where(Booking.citizen_id == citizen_id, Booking.status == BookingStatus.BOOKED,
               ReceptionSlot.starts_at > now)
        .order_by(ReceptionSlot.starts_at)
        .options(BOOKING_DETAILS))
    return list(rows)


async def cancel(session: AsyncSession, booking_id: int, *, via: str, now: datetime) -> bool:
    """Cancel a live booking (R-P4); the slot is free again at once."""
    booking = await session.get(Booking, booking_id, with_for_update=True)
    if booking is None or booking.status != BookingStatus.BOOKED:
        return False
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = now
    booking.cancelled_via = via
    return True


async def confirm(session: AsyncSession, booking_id: int, *, now: datetime) -> bool:
    booking = await session.get(Booking, booking_id)
    if booking is None or booking.status != BookingStatus.BOOKED:
        return False
    booking.confirmed_at = booking.confirmed_at or now
    return True


def cancel_link(settings: Settings, booking_id: int) -> str:
    token = make_token(settings.panel.secret, booking_id=booking_id, salt=CANCEL_SALT)
    return settings.reception.cancel_link_base_url + token


# --- reminders, attendance, survey -------------------------------------------------------

def reminder_moments(booking: Booking, calendar: WorkCalendar) -> dict[str, datetime]:
    """When each reminder the citizen asked for is due: the same local time the day before
    (DST-safe: computed on the local clock), and two hours before."""
    starts = calendar.local(booking.slot.starts_at)
    moments = {}
    if booking.remind_day_before:
        day_before = datetime.combine(starts.date() - timedelta(days=1), starts.time(),
                                      calendar.tz)
        moments["reminder_day"] = day_before
    if booking.remind_two_hours_before:
        moments["reminder_2h"] = starts - timedelta(hours=2)
    return moments


async def send_due_reminders(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                             calendar: WorkCalendar, now: datetime) -> int:
    """Queue every reminder whose moment has come and which was not sent yet; the number
    queued. A reminder whose moment passed before the booking was made is not sent (the
    booking itself told the facts). The channels follow the citizen's choice and needs
    (:func:`delivery.reminder_channels`, R-P3, R-P5)."""
    queued = 0
    async with sessions() as session, session.begin():
        rows = (await session.scalars(
            select(Booking).join(ReceptionSlot, Booking.slot_id == ReceptionSlot.id)
            .where(Booking.status == BookingStatus.BOOKED, ReceptionSlot.starts_at > now,
                   Booking.remind_day_before | Booking.remind_two_hours_before,
                   (Booking.reminded_day_before_at.is_(None)
                    | Booking.reminded_two_hours_before_at.is_(None)),
                   ReceptionSlot.starts_at <= now + timedelta(days=1, hours=2))
            .options(BOOKING_DETAILS)
            .with_for_update(skip_locked=True, of=Booking))).all()
        for booking in rows:
            for kind, moment in reminder_moments(booking, calendar).items():
                stamp = REMINDERS[kind]
                if getattr(booking, stamp) is not None or moment > now:
                    continue
                if booking.created_at >= moment:
                    continue   # booked after the moment: the booking itself told the facts
                setattr(booking, stamp, now)
                citizen = await notices.load_citizen(session, booking.citizen_id)
                channels = delivery.reminder_channels(booking, citizen)
                letter = reception_reminder(booking, settings.organisation, calendar.tz,
                                            kind=kind,
                                            cancel_link=cancel_link(settings, booking.id),
                                            needs_text=delivery.needs_text(booking))
                queued += len(await notices.enqueue(
                    session, settings, citizen, letter, key=f"booking:{booking.id}:{kind}",
                    now=now, booking_id=booking.id, channels=channels))
    return queued


async def mark_attendance(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                          calendar: WorkCalendar, booking_id: int, *, attended: bool,
                          now: datetime) -> None:
    """Attended or no-show (recorded once the reception began); an attended citizen is
    offered the survey (R-P6): a link by e-mail, or a short automated call with DTMF."""
    async with sessions() as session, session.begin():
        booking = await _load(session, booking_id)
        if booking.status not in (BookingStatus.BOOKED, BookingStatus.ATTENDED,
                                  BookingStatus.NO_SHOW):
            raise BookingError("Запись отменена: отметить явку нельзя.")
        if booking.slot.starts_at > now:
            raise BookingError("Приём ещё не начался.")
        booking.status = BookingStatus.ATTENDED if attended else BookingStatus.NO_SHOW
        booking.attendance_marked_at = now
        if not attended:
            return
        citizen = await notices.load_citizen(session, booking.citizen_id)
        channel = Channel.EMAIL if citizen.email else Channel.PHONE
        if not notices.address_for(citizen, channel):
            return
        await notices.enqueue(session, settings, citizen,
                              reception_survey(booking, settings.organisation, calendar.tz),
                              key=f"booking:{booking.id}:survey", now=now,
                              booking_id=booking.id, channels=[channel])
