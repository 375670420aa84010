"""Personal reception (R-P1–R-P6): slots from schedules, no double booking, reminders once
each across a restart, cancellation by the e-mail link, attendance and the survey."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.models import (
    Booking,
    BookingStatus,
    Channel,
    Notification,
    Official,
    ReceptionSchedule,
    ReceptionSlot,
)
from ivr.services import receptions
from ivr.services.container import Services
from ivr.services.receptions import BookingRequest, SlotTaken
from ivr.settings import Settings
from web.app import init_app

from .support.records import People, add_people, services_on

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)   # Wed 11:00 in Moscow


@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str) -> AsyncIterator[Services]:
    services = services_on(settings, db_url, NOW)
    yield services
    await services.close()


async def _officials(svc: Services, people: People) -> tuple[int, int]:
    """A deputy minister on Wednesdays 14:00–16:00 (30 min) and a department specialist
    during the working day (20 min)."""
    async with svc.sessions() as s, s.begin():
        deputy = Official(staff_id=people.head.id, title="Заместитель министра",
                          kind="deputy", place="каб. 210", directions="второй этаж, налево")
        specialist = Official(staff_id=people.executor.id, title="Главный специалист",
                              kind="department")
        s.add_all([deputy, specialist])
        await s.flush()
        s.add_all([ReceptionSchedule(official_id=deputy.id, weekday=2, starts=time(14),
                                     ends=time(16), slot_minutes=30),
                   ReceptionSchedule(official_id=specialist.id, weekday=0, starts=time(9),
                                     ends=time(18), slot_minutes=20)])
        return deputy.id, specialist.id


async def _slots(svc: Services, official_id: int) -> list[datetime]:
    async with svc.sessions() as s:
        rows = await s.scalars(select(ReceptionSlot.starts_at).where(
            ReceptionSlot.official_id == official_id).order_by(ReceptionSlot.starts_at))
        return [svc.calendar.local(t) for t in rows]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_slots_follow_schedules_working_days_and_lunch(svc: Services) -> None:
    """R-P1: the deputy on his Wednesdays; the specialist in working hours, lunch and the
    New Year holidays left out."""
    people = await add_people(svc)
    deputy, specialist = await _officials(svc, people)
    today = datetime(2025, 12, 29).date()        # Mon; 31.12.2025–11.01.2026 are days off
    created = await receptions.generate_slots(svc.sessions, svc.calendar, today, days=14)
    assert await receptions.generate_slots(svc.sessions, svc.calendar, today, days=14) == 0
    deputy_slots = await _slots(svc, deputy)
    assert deputy_slots == [], "the only Wednesdays (31.12, 7.01) are days off"
    spec = await _slots(svc, specialist)
    days = sorted({t.date().isoformat() for t in spec})
    assert days == ["2025-12-29", "2025-12-30", "2026-01-12"]
    monday = [t.time() for t in spec if t.date().isoformat() == "2026-01-12"]
    assert monday[0] == time(9, 0) and time(12, 40) in monday
    assert not any(time(12, 48) < t < time(13, 48) for t in monday), "no slot over lunch"
    # 30.12 is not shortened (31.12 is a day off moved from a weekend, not a holiday).
    assert max(t for t in spec if t.date().isoformat() == "2025-12-30").time() == time(17, 28)
    assert created == len(spec)


async def test_two_operators_booking_one_slot_at_once_one_wins(
    settings: Settings, db_url: str
) -> None:
    """No double booking even with two operators (two connections) clicking the same slot."""
    first = services_on(settings, db_url, NOW)
    second_engine = make_engine(db_url)
    second = Services(first.settings, second_engine, make_sessionmaker(second_engine),
                      first.calendar, first.prompts, first.recorder)
    second.clock = first.clock
    try:
        people = await add_people(first)
        deputy, _ = await _officials(first, people)
        await receptions.generate_slots(first.sessions, first.calendar, NOW.date(), days=7)
        async with first.sessions() as s:
            [slot, *_] = await receptions.free_slots(s, NOW, official_id=deputy)

        def request(citizen_id: int) -> BookingRequest:
            return BookingRequest(slot_id=slot.id, citizen_id=citizen_id, booked_via="panel")

        results = await asyncio.gather(
            receptions.book(first.sessions, first.settings, first.calendar,
                            request(people.portal_citizen.id), NOW),
            receptions.book(second.sessions, second.settings, second.calendar,
                            request(people.phone_citizen.id), NOW),
            return_exceptions=True)
        won = [r for r in results if isinstance(r, int)]
        lost = [r for r in results if isinstance(r, SlotTaken)]
        assert len(won) == 1 and len(lost) == 1, results
        async with first.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Booking)) == 1
            free = [x.id for x in await receptions.free_slots(s, NOW, official_id=deputy)]
            booked_note = await s.scalar(select(Notification).where(
                Notification.kind == "reception_booked"))
        assert slot.id not in free
        assert booked_note is not None and "каб. 210" in booked_note.body, \
            "R-P3: place and directions are given on booking"

        # Cancelled: the slot is free at once, and the other citizen gets it.
        async with first.sessions() as s, s.begin():
            assert await receptions.cancel(s, won[0], via=receptions.CANCELLED_VIA_PANEL,
                                           now=NOW)
        loser = (people.phone_citizen.id if results[0] == won[0]
                 else people.portal_citizen.id)
        assert await receptions.book(second.sessions, second.settings, second.calendar,
                                     request(loser), NOW) > won[0]
    finally:
        await second_engine.dispose()
        await first.close()


async def _book_for(svc: Services, people: People, slot_at: datetime, *,
                    channel: Channel, booked_at: datetime) -> int:
    async with svc.sessions() as s, s.begin():
        deputy = Official(staff_id=people.head.id, title="Заместитель министра",
                          kind="deputy")
        s.add(deputy)
        await s.flush()
        slot = ReceptionSlot(official_id=deputy.id, starts_at=slot_at,
                             ends_at=slot_at + timedelta(minutes=30))
        s.add(slot)
        await s.flush()
        slot_id = slot.id
    return await receptions.book(svc.sessions, svc.settings, svc.calendar, BookingRequest(
        slot_id=slot_id, citizen_id=people.portal_citizen.id, reminder_channel=channel,
        remind_day_before=True, remind_two_hours_before=True,
        accessibility_needs="индукционная петля"), booked_at)


async def test_a_booking_opens_by_phone_only_with_its_number_and_the_phone_digits(
    svc: Services
) -> None:
    """R-P4 (issue 25): the IVR finds a booking by its number and the last four digits of
    the citizen's phone, never by one of them alone; the number is in the confirmation;
    keys that are no booking's number (too long for the column, '*') are refused."""
    people = await add_people(svc)
    booking_id = await _book_for(svc, people, NOW + timedelta(days=2), channel=Channel.EMAIL,
                                 booked_at=NOW)
    number = str(booking_id)
    async with svc.sessions() as s:
        found = await receptions.verified_booking(s, number, "4567")
        assert found is not None and found.id == booking_id
        for typed, digits in ((number, "0000"), (number, "4321"), (number, ""),
                              (number, "45678"), (str(booking_id + 1), "4567"), ("", "4567"),
                              ("999999999", "4567"), ("9" * 12, "4567"),
                              (f"{number}*", "4567")):
            assert await receptions.verified_booking(s, typed, digits) is None, typed
        upcoming = await receptions.upcoming_for_citizen(s, people.portal_citizen.id, NOW)
        confirmation = await s.scalar(select(Notification.body).where(
            Notification.kind == "reception_booked", Notification.channel == Channel.EMAIL))
    assert [b.id for b in upcoming] == [booking_id]
    assert confirmation is not None and f"Номер записи: {booking_id}." in confirmation


async def test_reminders_fire_once_each_at_local_time_across_a_restart(
    settings: Settings, db_url: str
) -> None:
    """R-P3, R-P5: a reception on Fri 27.11.2026 at 10:00 in Vladivostok (UTC+10): the
    reminders are due at 10:00 the day before and at 08:00 that day, local time; each is
    queued once, however often the job runs and across a service restart. A phone
    reminder is duplicated as text to the citizen's e-mail."""
    vlad = settings.organisation.model_copy(update={"timezone": "Asia/Vladivostok"})
    settings = settings.model_copy(update={"organisation": vlad})
    starts = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)        # 10:00 in Vladivostok
    day_before = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)    # 10:00 local, the day before
    two_hours = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)    # 08:00 local
    clock = [datetime(2026, 11, 23, 3, 0, tzinfo=UTC)]

    def start() -> Services:
        services = services_on(settings, db_url, clock[0])
        services.clock = lambda: clock[0]
        return services

    async def run(services: Services, at: datetime) -> int:
        clock[0] = at
        return await receptions.send_due_reminders(services.sessions, services.settings,
                                                   services.calendar, at)

    svc = start()
    try:
        people = await add_people(svc)
        booking_id = await _book_for(svc, people, starts, channel=Channel.PHONE,
                                     booked_at=clock[0])
        assert await run(svc, day_before - timedelta(minutes=1)) == 0
        assert await run(svc, day_before) == 2            # phone + the e-mail text (R-P5)
        assert await run(svc, day_before + timedelta(minutes=1)) == 0
    finally:
        await svc.close()

    svc = start()                                          # the service restarted
    try:
        assert await run(svc, day_before + timedelta(hours=3)) == 0
        assert await run(svc, two_hours - timedelta(seconds=1)) == 0
        assert await run(svc, two_hours + timedelta(minutes=5)) == 2
        assert await run(svc, two_hours + timedelta(minutes=6)) == 0
        async with svc.sessions() as s:
            rows = (await s.execute(select(Notification.kind, Notification.channel)
                                    .where(Notification.booking_id == booking_id)
                                    .order_by(Notification.id))).all()
            phone = await s.scalar(select(Notification.body).where(
                Notification.kind == "reminder_2h", Notification.channel == Channel.PHONE))
            mail = await s.scalar(select(Notification.body).where(
                Notification.kind == "reminder_day", Notification.channel == Channel.EMAIL))
            booking = await s.get(Booking, booking_id)
        assert [(k, c.value) for k, c in rows] == [
            ("reception_booked", "state_portal"), ("reception_booked", "email"),
            ("reminder_day", "phone"), ("reminder_day", "email"),
            ("reminder_2h", "phone"), ("reminder_2h", "email")]
        assert booking is not None
        assert booking.reminded_day_before_at == day_before
        assert booking.reminded_two_hours_before_at == two_hours + timedelta(minutes=5)
        assert phone is not None and "сегодня, двадцать седьмого ноября, в десять часов" in phone
        assert mail is not None and "27.11.2026 в 10:00" in mail
        assert "индукционная петля" in mail and "/reception/cancel/" in mail
    finally:
        await svc.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_booked_after_the_moment_gets_no_stale_reminder(
    settings: Settings, db_url: str
) -> None:
    svc = services_on(settings, db_url, NOW)
    try:
        people = await add_people(svc)
        starts = NOW + timedelta(hours=5)
        booking_id = await _book_for(svc, people, starts, channel=Channel.EMAIL, booked_at=NOW)
        assert await receptions.send_due_reminders(svc.sessions, svc.settings, svc.calendar,
                                                   NOW + timedelta(minutes=1)) == 0
        assert await receptions.send_due_reminders(
            svc.sessions, svc.settings, svc.calendar, starts - timedelta(hours=2)) == 1
        async with svc.sessions() as s:
            kinds = set(await s.scalars(select(Notification.kind).where(
                Notification.booking_id == booking_id)))
        assert kinds == {"reception_booked", "reminder_2h"}
    finally:
        await svc.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_cancel_link_from_the_email_frees_the_slot_and_attendance_brings_the_survey(
    svc: Services, aiohttp_client  # type: ignore[no-untyped-def]
) -> None:
    """R-P4 by the e-mail link (a GET only shows, the POST cancels); R-P6: an attended
    citizen is offered the survey."""
    people = await add_people(svc)
    starts = NOW + timedelta(days=2)
    booking_id = await _book_for(svc, people, starts, channel=Channel.EMAIL, booked_at=NOW)
    link = receptions.cancel_link(svc.settings, booking_id)
    path = link[link.index("/reception/cancel/"):]
    client = await aiohttp_client(init_app(svc))
    page = await client.get(path)
    assert page.status == 200 and "Заместитель министра" in await page.text()
    async with svc.sessions() as s:
        assert (await s.get(Booking, booking_id)).status == BookingStatus.BOOKED  # type: ignore[union-attr]
    assert (await client.get(path[:-4] + "abcd")).status == 404
    done = await client.post(path)
    assert done.status == 200 and "отменена" in await done.text()
    assert (await client.post(path)).status == 410
    async with svc.sessions() as s:
        booking = await s.get(Booking, booking_id)
        assert booking is not None
        assert (booking.status, booking.cancelled_via) == (BookingStatus.CANCELLED,
                                                           receptions.CANCELLED_VIA_EMAIL)
        assert booking.slot_id in [x.id for x in await receptions.free_slots(s, NOW)]

    # Another booking of the same slot; the citizen comes; the survey goes by e-mail.
    async with svc.sessions() as s:
        slot_id = (await s.get(Booking, booking_id)).slot_id  # type: ignore[union-attr]
    second = await receptions.book(svc.sessions, svc.settings, svc.calendar, BookingRequest(
        slot_id=slot_id, citizen_id=people.portal_citizen.id), NOW)
    with pytest.raises(receptions.BookingError, match="не начался"):
        await receptions.mark_attendance(svc.sessions, svc.settings, svc.calendar, second,
                                         attended=True, now=NOW)
    await receptions.mark_attendance(svc.sessions, svc.settings, svc.calendar, second,
                                     attended=True, now=starts + timedelta(minutes=40))
    async with svc.sessions() as s:
        survey = await s.scalar(select(Notification).where(
            Notification.kind == "reception_survey"))
    assert survey is not None and survey.channel == Channel.EMAIL and "/survey/" in survey.body
