"""Numbers the hotline never dials (issue 25), through the real Asterisk: premium and
international numbers typed in the IVR are refused with a prompt and never taken; the API
answers 422 for them; a number stored before the policy (or before a deny prefix) stops at
the dialer and the notice sender, the last gates before ``Originate``; and every call to a
citizen presents the hotline's number, never the citizen's own."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from panoramisk.message import Message
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ivr.ami import AMIClient
from ivr.db.models import (
    ApiToken,
    Appeal,
    Call,
    Callback,
    CallbackSource,
    CallbackStatus,
    CallOutcome,
    Channel,
    Citizen,
    CitizenPhone,
    Notification,
    NotificationStatus,
    Staff,
)
from ivr.demo import DEMO_PASSWORD
from ivr.dialer import CallbackDialer
from ivr.dialling import DiallingPolicy
from ivr.notifier import NoticeSender
from ivr.runner import make_ami
from ivr.services import receptions
from ivr.services.callbacks import NUMBER_REFUSED, Window, create_callback
from ivr.simulate import EventRecorder, caller_channel, is_event, place_call, press, wait_until
from web.app import init_app

from ..conftest import OPEN_TIME, Stack
from .ami_trace import assert_no_trace, seen_before

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MSK = ZoneInfo("Europe/Moscow")
HOTLINE = "88001234567"   # organisation.hotline_numbers[0]: the caller ID by default
CITIZEN = "79007654321"   # the demo's Волков
# Rung but never answering (citizen-sim's CITIZEN_<number> = ignore): the caller-ID tests
# leave no intro or notice played for another test's waits to mistake for its own.
SILENT = "79005550123"


def _played(stack: Stack, linkedid: str, prompt: str, nth: int = 1):  # type: ignore[no-untyped-def]
    """The ``nth`` time our flow played the fixed ``prompt`` on the call."""
    path = stack.services.prompts.path(prompt)

    def seen(events: EventRecorder) -> bool:
        return len(events.matching(lambda e: str(e.get("Linkedid")) == linkedid
                                   and is_event("AGIExecStart")(e)
                                   and path in str(e.get("Command", "")))) >= nth
    return seen


async def _heard(stack: Stack, events: EventRecorder, linkedid: str, prompt: str,
                 nth: int = 1) -> None:
    seen = _played(stack, linkedid, prompt, nth)

    async def check() -> bool:
        return seen(events)
    await wait_until(check, 40, f"{prompt} played ({nth})")


async def test_premium_and_international_numbers_typed_in_the_ivr_are_refused(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """After hours; the caller's own number is foreign, so it is not even offered: they
    type a premium number, then an international one (11 keys), and hear why each time."""
    seeded.services.clock = lambda: datetime(2026, 11, 25, 20, 0, tzinfo=MSK)
    before = seen_before(events)
    call = await place_call(ami, caller="+375291234567", number=HOTLINE, hold=120)
    await _heard(seeded, events, call.linkedid, "callback_offer")
    caller = caller_channel(events, call)
    await press(ami, caller, "1")
    await _heard(seeded, events, call.linkedid, "callback_enter_number")
    assert not _played(seeded, call.linkedid, "invalid")(events)
    await press(ami, caller, "88091234567")
    await _heard(seeded, events, call.linkedid, "number_refused_premium")
    await _heard(seeded, events, call.linkedid, "callback_enter_number", 2)
    await press(ami, caller, "81037529123")
    await _heard(seeded, events, call.linkedid, "number_refused_international")
    await events.wait_for(lambda e: is_event("Hangup", Uniqueid=call.linkedid)(e), 60,
                          "the call ends with the farewell")
    await seeded.services.recorder.sync()
    async with seeded.services.sessions() as s:
        row = await s.scalar(select(Call).where(Call.linkedid == call.linkedid))
        taken = await s.scalar(select(func.count()).select_from(Callback))
    assert row is not None and row.outcome == CallOutcome.AFTER_HOURS
    assert taken == 0, "no callback to a refused number"
    assert not events.matching(lambda e: not before(e) and is_event("Newchannel")(e)
                               and "citizen-sim" in str(e.get("Channel", ""))), "never dialled"


async def test_the_api_answers_422_for_numbers_the_hotline_does_not_dial(
    seeded: Stack, aiohttp_client  # type: ignore[no-untyped-def]
) -> None:
    services = seeded.services
    async with services.sessions() as s, s.begin():
        head = await s.scalar(select(Staff).where(Staff.login == "kuznetsov"))
        assert head is not None
        s.add(ApiToken(name="СЭДД", token_hash=hashlib.sha256(b"dialling-token").hexdigest(),
                       staff_id=head.id))
    client = await aiohttp_client(init_app(services))
    auth = {"Authorization": "Bearer dialling-token"}
    body = {"reg_number": "7001", "registered_on": "2026-11-24", "channel": "post",
            "surname": "Лебедева", "first_name": "Мария", "topic": "Пособия",
            "text": "Прошу разъяснить"}
    for phone, message in [("8-809-123-45-67", "платные"), ("+375 29 123-45-67",
                                                            "международные"),
                           ("00 1 202 555 0123", "международные"), ("01", "Короткие")]:
        refused = await client.post("/api/v1/appeals", headers=auth,
                                    json={**body, "phone": phone})
        error = (await refused.json())["error"]
        assert refused.status == 422 and "телефон" in error and message in error, phone
    csv = ("reg_number;registered_on;channel;phone\n7002;24.11.2026;почта;89001112233\n"
           "7003;24.11.2026;почта;810 375 29 123-45-67\n")
    imported = await client.post("/api/v1/appeals/import", data=csv.encode(), headers=auth)
    assert imported.status == 422
    assert (await imported.json())["errors"] == [
        "строка 3: телефон: На международные номера горячая линия не звонит: укажите "
        "российский номер."]
    created = await client.post("/api/v1/appeals", headers=auth,
                                json={**body, "phone": "+7 (900) 111-22-33"})
    assert created.status == 201
    async with services.sessions() as s:
        appeals = [(a.reg_number, a.contact_phone) for a in await s.scalars(
            select(Appeal).where(Appeal.reg_number.like("700%")))]
    assert appeals == [("7001", "79001112233")]


@contextlib.asynccontextmanager
async def _link(stack: Stack) -> AsyncIterator[AMIClient]:
    listener = make_ami(stack.settings)
    await listener.start()
    try:
        await listener.wait_connected(10)
        yield listener
    finally:
        await listener.close()


def _around(now: datetime) -> list[Window]:
    return [Window(now - timedelta(hours=1), now + timedelta(hours=1))]


async def _assign(stack: Stack, callback_id: int, extension: str) -> None:
    async with stack.services.sessions() as s, s.begin():
        callback = await s.get(Callback, callback_id)
        assert callback is not None
        callback.assignee_id = await s.scalar(select(Staff.id).where(
            Staff.extension == extension))


async def test_the_dialer_is_the_last_gate_for_a_callback(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """Taken while 8-809 was allowed; the prefix is gone from the settings now: the callback
    fails with the reason, and no phone rings."""
    services = seeded.services
    before = seen_before(events)
    callback_id = await create_callback(
        services.sessions, phone="88091234567", windows=_around(OPEN_TIME),
        source=CallbackSource.OPERATOR, policy=DiallingPolicy(allow_prefixes=("7809",)),
        question="Пособие")
    assert callback_id is not None
    await _assign(seeded, callback_id, "1002")
    async with _link(seeded) as listener:
        assert await CallbackDialer(services, listener).run_once() == 1
    async with services.sessions() as s:
        callback = await s.scalar(select(Callback).options(selectinload(Callback.attempts))
                                  .where(Callback.id == callback_id))
    assert callback is not None and callback.status == CallbackStatus.FAILED
    assert [a.outcome for a in callback.attempts] == [NUMBER_REFUSED]
    await assert_no_trace(ami, events, "8091234567", before)


async def test_the_notice_sender_is_the_last_gate_for_a_phone_notice(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    services = seeded.services
    before = seen_before(events)
    async with services.sessions() as s, s.begin():
        citizen = Citizen(surname="Ковальчук", first_name="Ольга",
                          preferred_channel=Channel.PHONE,
                          phones=[CitizenPhone(phone="+375291234567")])  # once allowed
        s.add(citizen)
        await s.flush()
        notice = Notification(dedup_key="security:notice:phone", kind="appeal_redirected",
                              channel=Channel.PHONE, address="+375291234567",
                              citizen_id=citizen.id, body="Ваше обращение направлено.",
                              status=NotificationStatus.PENDING, next_attempt_at=OPEN_TIME)
        s.add(notice)
    async with _link(seeded) as listener:
        assert await NoticeSender(services, listener).run_once() == 1
    async with services.sessions() as s:
        stored = await s.get(Notification, notice.id)
    assert stored is not None and stored.status == NotificationStatus.FAILED
    assert stored.attempts == 1, "failed for good at once: no retry will dial it"
    assert (stored.last_error or "").startswith("номер не набирается: На международные")
    await assert_no_trace(ami, events, "375291234567", before)


def _citizen_rung(events: EventRecorder, number: str):  # type: ignore[no-untyped-def]
    """From now on: the simulated citizen's phone rings (the first step of ``citizen-sim``
    on the ``;2`` half, whose caller ID is what the citizen's phone shows)."""
    before = seen_before(events)

    def match(e: Message) -> bool:
        return not before(e) and is_event("Newexten", Context="citizen-sim", Exten=number,
                                          Application="NoOp")(e)
    return match


@pytest_asyncio.fixture
async def silent_citizen(ami: AMIClient) -> AsyncIterator[str]:
    await ami.action({"Action": "Setvar", "Variable": f"CITIZEN_{SILENT}", "Value": "ignore"})
    try:
        yield SILENT
    finally:
        await ami.action({"Action": "Setvar", "Variable": f"CITIZEN_{SILENT}", "Value": ""})


async def test_a_called_back_citizen_sees_the_hotline_number_not_their_own(
    seeded: Stack, ami: AMIClient, events: EventRecorder, silent_citizen: str
) -> None:
    """The employee's phone carries the citizen's number (they see whom they call); the
    citizen's leg presents the hotline's (``dialling.caller_id``, by default the first
    published number)."""
    services = seeded.services
    callback_id = await create_callback(services.sessions, phone=silent_citizen,
                                        windows=_around(OPEN_TIME),
                                        source=CallbackSource.OPERATOR, question="Пособие")
    assert callback_id is not None
    await _assign(seeded, callback_id, "1002")
    await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": "30"})
    rang = _citizen_rung(events, silent_citizen)
    try:
        async with _link(seeded) as listener:
            assert await CallbackDialer(services, listener).run_once() == 1
            rung = await events.wait_for(rang, 60, "the citizen is rung")
        assert str(rung["CallerIDNum"]) == HOTLINE
    finally:
        await ami.action({"Action": "Hangup", "Channel": "/operator-sim|citizen-sim/"},
                         check=False)
        await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": ""})


async def test_a_phone_notice_presents_the_hotline_number(
    seeded: Stack, ami: AMIClient, events: EventRecorder, silent_citizen: str
) -> None:
    services = seeded.services
    async with services.sessions() as s, s.begin():
        citizen_id = await s.scalar(select(CitizenPhone.citizen_id).where(
            CitizenPhone.phone == CITIZEN))
        s.add(Notification(dedup_key="security:notice:callerid", kind="appeal_redirected",
                           channel=Channel.PHONE, address=silent_citizen, citizen_id=citizen_id,
                           body="Ваше обращение направлено.",
                           status=NotificationStatus.PENDING, next_attempt_at=OPEN_TIME))
    rang = _citizen_rung(events, silent_citizen)
    try:
        async with _link(seeded) as listener:
            assert await NoticeSender(services, listener).run_once() == 1
            rung = await events.wait_for(rang, 60, "the citizen is rung")
        assert str(rung["CallerIDNum"]) == HOTLINE
    finally:
        await ami.action({"Action": "Hangup", "Channel": "/citizen-sim/"}, check=False)


async def _panel_as(client: TestClient, login: str) -> str:
    """Logged in; the form token of the workspace page."""
    await client.post("/login", data={"login": login, "password": DEMO_PASSWORD,
                                      "next": "/panel"})
    page = await (await client.get("/panel/workspace")).text()
    return re.search(r'name="_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


async def test_reminder_calls_and_supervisor_callbacks_pass_the_policy(
    seeded: Stack, aiohttp_client  # type: ignore[no-untyped-def]
) -> None:
    """R-P3: a reminder asked for by phone is a call; R-H5: the supervisor's one-click
    callback is one too. Both are refused for a number the hotline does not dial."""
    services = seeded.services
    async with services.sessions() as s, s.begin():
        citizen = Citizen(surname="Ковальчук", first_name="Ольга",
                          phones=[CitizenPhone(phone="+375291234567")])
        s.add(citizen)
        s.add(Call(linkedid="security-low-rating", caller_number="+375291234567",
                   started_at=OPEN_TIME))
        await s.flush()
        slots = await receptions.free_slots(s, OPEN_TIME, limit=1)
    with pytest.raises(receptions.BookingError, match="Напоминание звонком невозможно"):
        await receptions.book(services.sessions, services.settings, services.calendar,
                              receptions.BookingRequest(slot_id=slots[0].id,
                                                        citizen_id=citizen.id,
                                                        reminder_channel=Channel.PHONE),
                              OPEN_TIME)

    client = await aiohttp_client(init_app(services))
    csrf = await _panel_as(client, "ivanova")
    refused = await client.post("/panel/workspace/book", headers={"X-CSRF-Token": csrf}, data={
        "phone": "8-809-123-45-67", "slot_id": str(slots[0].id), "reminder_channel": "phone",
        "surname": "Зайцева", "first_name": "Ольга"})
    assert refused.status == 422
    assert "Напоминание звонком невозможно" in (await refused.json())["error"]

    csrf = await _panel_as(client, "smirnova")
    low = await client.post("/panel/supervisor/callback", allow_redirects=False, data={
        "_csrf": csrf, "linkedid": "security-low-rating"})
    assert low.status == 422 and "международные" in await low.text()
    async with services.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Callback)) == 0
        assert not list(await s.scalars(select(Citizen).where(Citizen.surname == "Зайцева")))
