"""Keeping personal reception in the administration pages (issue 28, R-P1): officials,
weekly schedules (an overlap refused), slots made from them, and the days an official
does not receive — the booked citizens' receptions cancelled and each of them told by
their own channel; every change audited with before and after."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from ivr.db.models import (
    AuditEntry,
    Booking,
    BookingStatus,
    Citizen,
    Notification,
    Official,
    ReceptionSlot,
    Staff,
)
from ivr.services import receptions
from ivr.services.container import Services
from ivr.services.receptions import BookingRequest

from .support.panel_client import log_in

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def _ids(svc: Services) -> tuple[int, int, int]:
    """The minister's official id, Кузнецов's staff id, Морозова's citizen id."""
    async with svc.sessions() as s:
        minister = await s.scalar(select(Official.id).where(Official.kind == "minister"))
        head = await s.scalar(select(Staff.id).where(Staff.login == "kuznetsov"))
        citizen = await s.scalar(select(Citizen.id).where(Citizen.surname == "Морозова"))
    assert minister and head and citizen
    return minister, head, citizen


async def test_an_official_with_a_weekly_schedule_and_slots(svc: Services,
                                                            client: TestClient) -> None:
    csrf = await log_in(client, "orlov")
    _, head, _ = await _ids(svc)
    made = await client.post("/panel/admin/officials", data={
        "staff_id": str(head), "title": "Заместитель министра", "kind": "deputy",
        "place": "каб. 201", "_csrf": csrf}, allow_redirects=False)
    assert made.status == 303
    official = int(made.headers["Location"].split("/")[-1].split("?")[0])
    twice = await client.post("/panel/admin/officials", data={
        "staff_id": str(head), "title": "Другая запись", "kind": "deputy", "_csrf": csrf})
    assert twice.status == 400 and "уже ведёт приём" in await twice.text()

    thursday = {"weekday": "3", "starts": "10:00", "ends": "12:00", "slot_minutes": "30"}
    added = await client.post(f"/panel/admin/officials/{official}/schedule",
                              data={**thursday, "_csrf": csrf}, allow_redirects=False)
    assert added.status == 303
    overlap = await client.post(f"/panel/admin/officials/{official}/schedule", data={
        **thursday, "starts": "11:30", "ends": "13:00", "_csrf": csrf})
    assert overlap.status == 400
    assert ("Время пересекается с уже назначенным приёмом: четверг 10:00–12:00, по 30 мин. "
            "Измените время" in await overlap.text())
    for bad, message in (({"starts": "12:00", "ends": "10:00"}, "заканчиваться позже"),
                         ({"slot_minutes": "1"}, "от 5 до 240 минут"),
                         ({"starts": "25:00"}, "ЧЧ:ММ"), ({"weekday": "9"}, "День недели")):
        refused = await client.post(f"/panel/admin/officials/{official}/schedule",
                                    data={**thursday, **bad, "_csrf": csrf})
        assert refused.status == 400 and message in await refused.text(), bad
    friday = await client.post(f"/panel/admin/officials/{official}/schedule", data={
        **thursday, "weekday": "4", "_csrf": csrf}, allow_redirects=False)
    assert friday.status == 303, "another day does not overlap"

    slots = await client.post("/panel/admin/slots", data={"_csrf": csrf},
                              allow_redirects=False)
    assert slots.status == 303 and "done=slots-" in slots.headers["Location"]
    async with svc.sessions() as s:
        made_slots = list(await s.scalars(select(ReceptionSlot).where(
            ReceptionSlot.official_id == official)))
    days = {svc.calendar.local(slot.starts_at).weekday() for slot in made_slots}
    assert made_slots and days <= {3, 4}
    page = await (await client.get(f"/panel/admin/officials/{official}")).text()
    assert "четверг 10:00–12:00, по 30 мин." in page

    retired = await client.post(f"/panel/admin/officials/{official}/retire",
                                data={"_csrf": csrf}, allow_redirects=False)
    assert retired.status == 303, "nobody booked: retired, the free slots gone"
    await receptions.generate_slots(svc.sessions, svc.calendar,
                                    svc.calendar.today(svc.clock()), 30)
    async with svc.sessions() as s:
        assert not await receptions.free_slots(s, svc.clock(), official_id=official), \
            "no slots for a retired official, now or from the slot job"


async def _book(svc: Services, official: int, citizen: int) -> tuple[int, date]:
    async with svc.sessions() as s:
        slot = (await receptions.free_slots(s, svc.clock(), official_id=official))[0]
    booking = await receptions.book(svc.sessions, svc.settings, svc.calendar, BookingRequest(
        slot_id=slot.id, citizen_id=citizen), svc.clock())
    return booking, svc.calendar.local(slot.starts_at).date()


async def test_a_cancelled_day_cancels_the_bookings_and_tells_the_citizens(
    svc: Services, client: TestClient
) -> None:
    minister, _, citizen = await _ids(svc)
    booking, day = await _book(svc, minister, citizen)
    csrf = await log_in(client, "orlov")
    retire = await client.post(f"/panel/admin/officials/{minister}/retire",
                               data={"_csrf": csrf})
    assert retire.status == 400 and "записаны граждане" in await retire.text()

    off = await client.post(f"/panel/admin/officials/{minister}/exception", data={
        "kind": "cancelled", "starts_on": day.isoformat(), "reason": "командировка",
        "_csrf": csrf}, allow_redirects=False)
    assert off.status == 303 and off.headers["Location"].endswith("done=notified-1")
    async with svc.sessions() as s:
        cancelled = await s.get(Booking, booking)
        notices = list(await s.scalars(select(Notification).where(
            Notification.booking_id == booking, Notification.kind == "reception_cancelled")))
        left = await receptions.free_slots(s, svc.clock(), official_id=minister)
        audited = await s.scalar(select(AuditEntry.details).where(
            AuditEntry.object_type == "reception_exception"))
    assert cancelled is not None and cancelled.status is BookingStatus.CANCELLED
    assert cancelled.cancelled_via == receptions.CANCELLED_VIA_MINISTRY
    [notice] = notices
    assert notice.channel.value == "email" and notice.address == "morozova@example.org"
    assert "отменён" in notice.body and "командировка" in notice.body
    assert all(svc.calendar.local(s.starts_at).date() != day for s in left), \
        "nothing offered on the cancelled day"
    assert audited and "вид: «приём отменён»" in audited and "записей отменено: 1" in audited

    await receptions.generate_slots(svc.sessions, svc.calendar, svc.calendar.today(
        svc.clock()), 30)
    async with svc.sessions() as s:
        again = await receptions.free_slots(s, svc.clock(), official_id=minister)
    assert all(svc.calendar.local(s.starts_at).date() != day for s in again), \
        "the slot job makes no slots on an exception's day"

    late = await client.post(f"/panel/admin/officials/{minister}/exception", data={
        "kind": "vacation", "starts_on": (day + timedelta(days=9)).isoformat(),
        "ends_on": day.isoformat(), "_csrf": csrf})
    assert late.status == 400 and "не может быть раньше первого" in await late.text()
