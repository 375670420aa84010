"""Personal reception as booked from a call (R-P2, R-P3, R-P5): free slots by official and
date, the reminder choice stored and followed, the confirmation saying what was sent, and
accessibility needs changing the channels."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from ivr.db.models import (
    ApiToken,
    Booking,
    Channel,
    Citizen,
    Notification,
    Official,
    ReceptionSchedule,
    ReceptionSlot,
)
from ivr.notifier import NoticeSender
from ivr.passwords import hash_password
from ivr.services import receptions
from ivr.services.container import Services
from ivr.services.delivery import Need
from ivr.services.receptions import BookingRequest
from ivr.settings import Settings
from web.api import token_hash
from web.app import init_app

from .support.records import People, add_people, services_on
from .support.smtp import SmtpServer, body_of

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)   # Wed 11:00 in Moscow
PASSWORD = "длинный-пароль-для-теста"
API = {"Authorization": "Bearer reception-token"}


@pytest_asyncio.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str, smtp: SmtpServer) -> AsyncIterator[Services]:
    services = services_on(settings, db_url, NOW, smtp={"host": "127.0.0.1", "port": smtp.port,
                                                        "starttls": False})
    yield services
    await services.close()


@pytest_asyncio.fixture
async def people(svc: Services) -> People:
    people = await add_people(svc)
    async with svc.sessions() as s, s.begin():
        head = await s.merge(people.head)
        head.password_hash = hash_password(PASSWORD)
        s.add(ApiToken(name="портал", token_hash=token_hash("reception-token"),
                       staff_id=head.id))
    return people


@pytest_asyncio.fixture
async def client(svc: Services, people: People,
                 aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    client: TestClient = await aiohttp_client(init_app(svc))
    login = await client.post("/login", data={"login": "head", "password": PASSWORD,
                                              "next": "/panel"}, allow_redirects=False)
    assert login.status == 303
    return client


async def _csrf(client: TestClient) -> dict[str, str]:
    page = await (await client.get("/panel/workspace")).text()
    found = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert found
    return {"X-CSRF-Token": found.group(1)}


async def _minister_and_specialist(svc: Services, people: People) -> tuple[int, int]:
    """The minister on Fridays 10:00–12:00; a specialist every working day in 20-minute
    slots — dozens a day, ahead of the minister's in time."""
    async with svc.sessions() as s, s.begin():
        minister = Official(staff_id=people.head.id, title="Министр", kind="minister",
                            place="каб. 301")
        specialist = Official(staff_id=people.executor.id, title="Главный специалист",
                              kind="department")
        s.add_all([minister, specialist])
        await s.flush()
        s.add_all([ReceptionSchedule(official_id=minister.id, weekday=4, starts=time(10),
                                     ends=time(12), slot_minutes=30),
                   ReceptionSchedule(official_id=specialist.id, weekday=0, starts=time(9),
                                     ends=time(18), slot_minutes=20)])
        ids = minister.id, specialist.id
    await receptions.generate_slots(svc.sessions, svc.calendar, NOW.date(), days=14)
    return ids


async def test_free_slots_by_official_and_date_in_the_pane_the_page_and_the_api(
    svc: Services, people: People, client: TestClient
) -> None:
    """R-P2: the client picks among the free slots — asked for the minister, every free
    time of his is listed, also those the nearest-forty list never reached; one day or a
    period narrows it; bad parameters are refused in Russian (400), an unknown official
    with 422."""
    minister, _ = await _minister_and_specialist(svc, people)
    async with svc.sessions() as s:
        nearest = await receptions.free_slots(s, NOW, limit=40)
        his = list(await s.scalars(select(ReceptionSlot.id).where(
            ReceptionSlot.official_id == minister).order_by(ReceptionSlot.starts_at)))
    assert len(his) == 8 and not [x for x in nearest if x.official_id == minister], \
        "the minister's Fridays lie beyond the nearest forty times"

    pane = await (await client.get("/panel/workspace/slots")).json()
    assert len(pane["items"]) == 40 and "Министр" not in str(pane["items"])
    assert pane["officials"][0] == {"id": minister, "label": "Министр Кузнецов О. Н."}
    asked = await (await client.get(f"/panel/workspace/slots?official_id={minister}")).json()
    assert [x["id"] for x in asked["items"]] == his
    friday = await (await client.get(
        f"/panel/workspace/slots?official_id={minister}&date=2026-12-04")).json()
    assert [x["label"][:16] for x in friday["items"]] == [
        "04.12.2026 10:00", "04.12.2026 10:30", "04.12.2026 11:00", "04.12.2026 11:30"]
    period = await (await client.get(f"/panel/workspace/slots?official_id={minister}"
                                     "&date_from=2026-11-28&date_to=2026-12-31")).json()
    assert [x["id"] for x in period["items"]] == his[4:]

    for query, status, text in (
            ("date=04.12.2026", 400, "ГГГГ-ММ-ДД"), ("official_id=1%20OR%201=1", 400,
                                                     "Должностное лицо"),
            ("date_from=2026-12-10&date_to=2026-12-01", 400, "раньше"),
            ("date_from=2026-01-01&date_to=2026-12-31", 400, "не длиннее"),
            ("official_id=999999", 422, "Такого должностного лица нет")):
        for path, headers in (("/panel/workspace/slots", {}),
                              ("/api/v1/receptions/slots", API)):
            bad = await client.get(f"{path}?{query}", headers=headers)
            assert bad.status == status and text in (await bad.json())["error"], (path, query)

    api = await (await client.get(f"/api/v1/receptions/slots?official_id={minister}"
                                  "&date_from=2026-11-25&date_to=2026-12-31",
                                  headers=API)).json()
    assert [x["id"] for x in api["items"]] == his
    assert {x["official_id"] for x in api["items"]} == {minister}
    page = await (await client.get(f"/panel/receptions?official_id={minister}")).text()
    offered = re.search(r'<select name="slot_id">(.*?)</select>', page, re.S)
    assert offered and offered.group(1).count("Министр") == len(his)


async def _book_from_the_call(client: TestClient, slot_id: int, **fields: str) -> dict:  # type: ignore[type-arg]
    answer = await client.post("/panel/workspace/book", headers=await _csrf(client), data={
        "phone": "79001234567", "slot_id": str(slot_id), "topic": "Пособие", **fields})
    body = await answer.json()
    assert answer.status == 200, body
    return body  # type: ignore[no-any-return]


async def test_the_reminder_chosen_on_the_call_is_stored_confirmed_and_sent(
    svc: Services, people: People, client: TestClient, smtp: SmtpServer
) -> None:
    """R-P3: the operator asks which reminder the caller wants — two hours before, by
    e-mail; it is stored, the confirmation (and the operator's screen) say so with the
    address masked, and only that reminder is sent: by e-mail, through SMTP."""
    minister, _ = await _minister_and_specialist(svc, people)
    async with svc.sessions() as s:
        [slot, second, *_] = await receptions.free_slots(s, NOW, official_id=minister)
    answer = await _book_from_the_call(client, slot.id, reminder_channel="email",
                                       reminder_when="2h")
    promise = "Напоминание за два часа до приёма придёт по электронной почте на m***@example.org."
    assert promise in answer["ok"] and promise in answer["delivery"]
    async with svc.sessions() as s:
        booking = await s.get(Booking, answer["id"])
    assert booking is not None
    assert (booking.reminder_channel, booking.remind_day_before,
            booking.remind_two_hours_before) == (Channel.EMAIL, False, True)

    sender = NoticeSender(svc, None)
    assert await sender.run_once() == 2, "the confirmation: state portal and e-mail"
    [confirmation] = smtp.inbox.to("morozova@example.org")
    assert promise in body_of(confirmation) and "каб. 301" in body_of(confirmation)
    assert "Подтверждение записи отправлено в личный кабинет на Госуслугах, по " \
           "электронной почте на m***@example.org." in body_of(confirmation)

    day_before = slot.starts_at - timedelta(days=1)
    two_hours = slot.starts_at - timedelta(hours=2)
    assert await receptions.send_due_reminders(svc.sessions, svc.settings, svc.calendar,
                                               day_before) == 0, "no day-before reminder"
    assert await receptions.send_due_reminders(svc.sessions, svc.settings, svc.calendar,
                                               two_hours) == 1
    svc.clock = lambda: two_hours
    assert await sender.run_once() == 1
    reminders = [m for m in smtp.inbox.to("morozova@example.org")
                 if m["Subject"] == "Напоминание о личном приёме"]
    assert len(reminders) == 1 and "сегодня" in body_of(reminders[0])
    async with svc.sessions() as s:
        kinds = list((await s.execute(select(Notification.kind, Notification.channel).where(
            Notification.booking_id == booking.id, Notification.kind.like("reminder%"))))
            .tuples())
    assert kinds == [("reminder_2h", Channel.EMAIL)]

    # «Не нужно»: no reminder is stored, none is sent, and the confirmation says so.
    svc.clock = lambda: NOW
    none = await _book_from_the_call(client, second.id, reminder_channel="",
                                     reminder_when="both")
    assert "Напоминание о приёме не придёт." in none["ok"]
    async with svc.sessions() as s:
        quiet = await s.get(Booking, none["id"])
    assert quiet is not None and (quiet.reminder_channel, quiet.remind_day_before,
                                  quiet.remind_two_hours_before) == (None, False, False)
    assert await receptions.send_due_reminders(
        svc.sessions, svc.settings, svc.calendar, second.starts_at - timedelta(hours=2)) == 0

    wrong = await client.post("/panel/workspace/book", headers=await _csrf(client), data={
        "phone": "79001234567", "slot_id": str(second.id), "reminder_channel": "email",
        "reminder_when": "week"})
    assert wrong.status == 400 and "Когда напомнить" in (await wrong.json())["error"]

    # The receptions page asks the same and shows what was sent after booking.
    async with svc.sessions() as s:
        third = (await receptions.free_slots(s, NOW, official_id=minister))[0]
    csrf = (await _csrf(client))["X-CSRF-Token"]
    page = await client.post("/panel/receptions/book", data={
        "_csrf": csrf, "slot_id": str(third.id), "phone": "79001234567",
        "reminder_channel": "phone", "reminder_when": "both"})
    assert page.status == 200 and re.search(r"/panel/receptions\?booked=\d+$", str(page.url))
    assert "Напоминание за день и за два часа до приёма придёт звонком на +7 900 ***-**-67, " \
           "по электронной почте на m***@example.org." in await page.text()


async def _slot(svc: Services, people: People) -> ReceptionSlot:
    minister, _ = await _minister_and_specialist(svc, people)
    async with svc.sessions() as s:
        return (await receptions.free_slots(s, NOW, official_id=minister))[0]


async def _notices(svc: Services, booking_id: int) -> dict[str, list[Channel]]:
    found: dict[str, list[Channel]] = {}
    async with svc.sessions() as s:
        for kind, channel in (await s.execute(select(Notification.kind, Notification.channel)
                                              .where(Notification.booking_id == booking_id)
                                              .order_by(Notification.id))).tuples():
            found.setdefault(kind, []).append(channel)
    return found


async def _remind_both(svc: Services, slot: ReceptionSlot) -> None:
    for moment in (slot.starts_at - timedelta(days=1), slot.starts_at - timedelta(hours=2)):
        await receptions.send_due_reminders(svc.sessions, svc.settings, svc.calendar, moment)


async def test_impaired_hearing_gets_email_and_a_large_print_letter_not_calls(
    svc: Services, people: People, client: TestClient
) -> None:
    """R-P5: a caller with impaired hearing who asked for phone reminders gets them by
    e-mail; the confirmation goes by e-mail and as a large-print letter (print-ready HTML)
    in the outbox for post; the operator's screen says so."""
    slot = await _slot(svc, people)
    async with svc.sessions() as s, s.begin():
        citizen = await s.get(Citizen, people.portal_citizen.id)
        assert citizen is not None
        citizen.postal_address = "г. Демонстрационный, ул. Садовая, д. 7, кв. 12"
    answer = await _book_from_the_call(client, slot.id, reminder_channel="phone",
                                       reminder_when="both", need="hearing",
                                       accessibility_needs="сурдопереводчик")
    assert "письмом крупным шрифтом по адресу г. Демонстра…" in answer["ok"]
    assert "Напоминание за день и за два часа до приёма придёт по электронной почте на " \
           "m***@example.org." in answer["ok"] and "звонком" not in answer["ok"]
    await _remind_both(svc, slot)
    assert await _notices(svc, answer["id"]) == {
        "reception_booked": [Channel.STATE_PORTAL, Channel.EMAIL],
        "reception_booked_large_print": [Channel.POST],
        "reminder_day": [Channel.EMAIL], "reminder_2h": [Channel.EMAIL]}
    async with svc.sessions() as s:
        letter = await s.scalar(select(Notification).where(
            Notification.booking_id == answer["id"], Notification.channel == Channel.POST))
        booking = await s.get(Booking, answer["id"])
        reminder = await s.scalar(select(Notification.body).where(
            Notification.booking_id == answer["id"], Notification.kind == "reminder_day"))
    assert reminder is not None and "Мы учли ваши особые потребности: нарушение слуха; " \
                                    "сурдопереводчик." in reminder
    assert letter is not None and letter.kind == "reception_booked_large_print"
    assert "Принимает: Министр Кузнецов О. Н.." in letter.body
    svc.clock = lambda: NOW
    assert await NoticeSender(svc, None).run_once() >= 1
    printed = await client.get(f"/panel/outbox/{letter.id}/letter")
    assert printed.status == 200
    text = await printed.text()
    assert 'class="letter large-print"' in text and "Принимает: Министр" in text
    assert booking is not None and (booking.need_hearing, booking.need_sight,
                                    booking.accessibility_needs) == (True, False,
                                                                     "сурдопереводчик")
    page = await (await client.get("/panel/receptions")).text()
    assert "нарушение слуха; сурдопереводчик" in page


async def test_impaired_sight_gets_a_call_and_email_instead_of_paper(
    svc: Services, people: People
) -> None:
    """R-P5: a citizen who takes notices by post, with impaired sight, gets the
    confirmation as a call and an e-mail (for a screen reader) rather than a paper letter;
    the e-mail reminder chosen comes as a call too."""
    slot = await _slot(svc, people)
    async with svc.sessions() as s, s.begin():
        citizen = await s.get(Citizen, people.portal_citizen.id)
        assert citizen is not None
        citizen.preferred_channel, citizen.extra_channel = Channel.POST, None
        citizen.postal_address = "г. Демонстрационный, ул. Садовая, д. 7"
    booking_id = await receptions.book(svc.sessions, svc.settings, svc.calendar, BookingRequest(
        slot_id=slot.id, citizen_id=people.portal_citizen.id, needs=frozenset({Need.SIGHT}),
        reminder_channel=Channel.EMAIL, remind_day_before=True), NOW)
    await _remind_both(svc, slot)
    assert await _notices(svc, booking_id) == {
        "reception_booked": [Channel.PHONE, Channel.EMAIL],
        "reminder_day": [Channel.EMAIL, Channel.PHONE]}
    async with svc.sessions() as s:
        said = await receptions.delivery_summary(s, svc.settings, booking_id)
    assert said == ["Подтверждение записи отправлено звонком на +7 900 ***-**-67, по "
                    "электронной почте на m***@example.org.",
                    "Напоминание за день до приёма придёт по электронной почте на "
                    "m***@example.org, звонком на +7 900 ***-**-67."]

    # Without needs the same citizen gets paper, and the choice alone.
    async with svc.sessions() as s:
        other = (await receptions.free_slots(s, NOW, official_id=slot.official_id))[0]
    plain = await receptions.book(svc.sessions, svc.settings, svc.calendar, BookingRequest(
        slot_id=other.id, citizen_id=people.portal_citizen.id,
        reminder_channel=Channel.EMAIL), NOW)
    await _remind_both(svc, other)
    assert await _notices(svc, plain) == {"reception_booked": [Channel.POST],
                                          "reminder_day": [Channel.EMAIL]}


async def test_a_reminder_nobody_can_take_in_is_refused_at_booking(
    svc: Services, people: People, client: TestClient
) -> None:
    """R-P5: a caller with impaired hearing and no e-mail can't be reminded by a call: the
    operator is told at once, nothing is booked; a need off the list is refused."""
    slot = await _slot(svc, people)
    refused = await client.post("/panel/workspace/book", headers=await _csrf(client), data={
        "phone": "79007654321", "slot_id": str(slot.id), "reminder_channel": "phone",
        "need": "hearing"})
    assert refused.status == 409 and "слуха" in (await refused.json())["error"]
    odd = await client.post("/panel/workspace/book", headers=await _csrf(client), data={
        "phone": "79007654321", "slot_id": str(slot.id), "need": "<script>"})
    assert odd.status == 400 and "из списка" in (await odd.json())["error"]
    async with svc.sessions() as s:
        assert await s.scalar(select(Booking.id)) is None
