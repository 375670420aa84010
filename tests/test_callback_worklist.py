"""Callbacks as the regulation says (R-H5, issue 27): windows still open today, the
deadline told to the caller and the windows chosen on the operator's form, a callback that
waits for the department's answer and is not dialled meanwhile, and the worklist's actions
(take, answer ready, call now, done with the answer) under their policies, over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr.ami import AMIClient
from ivr.calendar import WorkCalendar
from ivr.db.models import Callback, CallbackAttempt, CallbackSource, CallbackStatus, Staff
from ivr.demo import seed_demo
from ivr.notifier import NoticeSender
from ivr.runner import make_ami
from ivr.services.callbacks import (
    Window,
    answer_ready,
    claim_due,
    create_callback,
    offered_windows,
    remind_due,
)
from ivr.services.container import Services
from ivr.settings import Settings
from ivr.simulate import EventRecorder, is_event, wait_until
from web.app import init_app

from .conftest import BACKENDS, OPEN_TIME, Stack
from .security.ami_trace import seen_before
from .support.panel_client import audit_rows, log_in, put_on_call
from .support.records import services_on
from .support.smtp import SmtpServer, body_of

MSK = ZoneInfo("Europe/Moscow")
HOTLINE = "88001234567"          # organisation.hotline_numbers[0]: the callback's caller ID
CITIZEN = "79005550177"
FORM = {"phone": "8 900 555-01-77", "question": "Перерасчёт пособия",
        "deadline": "2026-11-27", "window": "2026-11-25T13:00"}


def _at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


def _spans(windows: list[Window]) -> list[str]:
    return [f"{w.start:%d %H:%M}-{w.end:%H:%M}" for w in windows]


# --- windows (R-H5) --------------------------------------------------------------------

@pytest.mark.parametrize(("now", "today"), [
    (_at(25, 11), ["25 11:00-13:00", "25 13:48-18:00"]),   # open: from now on
    (_at(25, 13, 20), ["25 13:48-18:00"]),                 # lunch: the afternoon
    (_at(25, 17, 20), ["25 17:20-18:00"]),                 # 40 minutes left: still offered
    (_at(25, 17, 40), []),                                 # 20 minutes left: not offered
    (_at(25, 20), []),                                     # closed
])
def test_windows_offer_what_is_left_of_today(settings: Settings, now: datetime,
                                             today: list[str]) -> None:
    """Wednesday 25.11: today's open periods still ahead come first, then Thu and Fri."""
    windows = offered_windows(WorkCalendar(settings.organisation), now, 2)
    assert _spans(windows) == [*today, "26 09:00-13:00", "26 13:48-18:00",
                               "27 09:00-13:00", "27 13:48-16:45"]


def test_windows_skip_holidays_and_shorten_the_eve(settings: Settings) -> None:
    """4.11 is a public holiday: on the 3rd (its eve, an hour shorter) the next days are
    the 5th and 6th; on the holiday itself nothing is offered for today."""
    calendar = WorkCalendar(settings.organisation)
    assert _spans(offered_windows(calendar, _at(3, 16, 0), 2)) == [
        "03 16:00-17:00", "05 09:00-13:00", "05 13:48-18:00", "06 09:00-13:00",
        "06 13:48-16:45"]
    assert _spans(offered_windows(calendar, _at(4, 11, 0), 1)) == [
        "05 09:00-13:00", "05 13:48-18:00"]


# --- the operator's form, over HTTP, on both databases ------------------------------------

@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str) -> AsyncIterator[Services]:
    services = services_on(settings, db_url, OPEN_TIME)
    await seed_demo(services.settings, today=OPEN_TIME.date())
    yield services
    await services.close()


async def _promise(client: TestClient, csrf: str, **fields: str) -> tuple[int, dict[str, str]]:
    resp = await client.post("/panel/workspace/callback", headers={"X-CSRF-Token": csrf},
                             data={**FORM, **fields})
    return resp.status, await resp.json()


async def _callback(svc: Services) -> Callback:
    async with svc.sessions() as s:
        found = await s.scalar(select(Callback).options(selectinload(Callback.windows)))
    assert found is not None
    return found


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_the_form_takes_the_deadline_and_the_windows_chosen(
    svc: Services, client: TestClient
) -> None:
    """R-H5: the deadline told to the caller is a working day, not past, within
    ``callbacks.deadline_max_working_days``; at least one window, from those offered; the
    number passes the dialling policy. Nothing is stored for a refused form."""
    csrf = await log_in(client, "petrov")
    put_on_call(client, "1002", "1700000000.1", CITIZEN)
    card = await (await client.get("/panel/workspace/card?linkedid=1700000000.1")).text()
    assert 'name="window" value="2026-11-25T13:00"' in card, "today's window offered"
    assert 'name="deadline" required min="2026-11-25" max="2026-12-09"' in card
    for fields, error_id in [
        ({"deadline": ""}, "no_deadline"), ({"deadline": "27.11.2026"}, "no_deadline"),
        ({"deadline": "2026-11-24"}, "deadline_past"),
        ({"deadline": "2026-11-28"}, "deadline_day_off"),        # Saturday
        ({"deadline": "2026-12-10"}, "deadline_too_far"),        # 11 working days on
        ({"window": ""}, "no_window"),
        ({"window": "2026-11-25T10:00"}, "no_window"),           # never offered
        ({"phone": "8-809-123-45-67"}, "number_refused"),
    ]:
        status, body = await _promise(client, csrf, **fields)
        assert (status, body["id"]) == (422, error_id), fields
        assert re.search("[а-я]", body["error"]), "a Russian message"
    async with svc.sessions() as s:
        assert await s.scalar(select(Callback.id)) is None, "nothing stored"

    resp = await client.post("/panel/workspace/callback", headers={"X-CSRF-Token": csrf},
                             data=[*FORM.items(), ("window", "2026-11-26T18:00")])
    assert resp.status == 200, await resp.text()
    assert "ответ до 27.11.2026" in (await resp.json())["ok"]
    stored = await _callback(svc)
    async with svc.sessions() as s:
        petrov = await s.scalar(select(Staff.id).where(Staff.login == "petrov"))
    assert (stored.phone, stored.promised_date, stored.status, stored.assignee_id,
            stored.created_by_id) == (CITIZEN, date(2026, 11, 27), CallbackStatus.READY,
                                      petrov, petrov)
    assert [(w.starts_at.astimezone(MSK), w.ends_at.astimezone(MSK))
            for w in stored.windows] == [(_at(25, 11), _at(25, 13)),
                                         (_at(26, 13, 48), _at(26, 18))]


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_waiting_for_the_departments_answer_is_not_dialled(
    svc: Services, client: TestClient
) -> None:
    """R-H5 «the department's input»: the callback waits (the dialer never claims it) and
    is on the assignee's worklist with its deadline; «ответ готов» lets the dialer call it
    inside the window open now."""
    csrf = await log_in(client, "petrov")
    status, _ = await _promise(client, csrf, waiting_info="1", deadline="2026-11-25")
    assert status == 200
    stored = await _callback(svc)
    assert (stored.status, stored.next_attempt_at) == (CallbackStatus.WAITING_INFO, None)
    assert await claim_due(svc.sessions, OPEN_TIME + timedelta(minutes=5)) == []
    page = await (await client.get("/panel/callbacks?which=mine")).text()
    assert "ждёт ответа подразделения" in page and "срок сегодня" in page
    overdue = await (await client.get("/panel/callbacks?which=overdue")).text()
    assert "ждёт ответа подразделения" not in overdue, "due today is not overdue yet"

    ready = await client.post(f"/panel/callbacks/{stored.id}/ready",
                              data={"_csrf": csrf}, allow_redirects=False)
    assert ready.status == 303
    [due] = await claim_due(svc.sessions, OPEN_TIME + timedelta(minutes=5))
    assert (due.callback_id, due.phone) == (stored.id, CITIZEN)
    assert await answer_ready(svc.sessions, stored.id, OPEN_TIME) is False, "once"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_the_assignee_is_reminded_by_email_on_the_deadline(
    settings: Settings, db_url: str, smtp: SmtpServer
) -> None:
    """R-H5: a callback still waiting for the department's answer on its deadline day is
    e-mailed to the assignee once (through the notice sender); a ready one is not."""
    svc = services_on(settings, db_url, OPEN_TIME, smtp={"port": smtp.port})
    await seed_demo(svc.settings, today=OPEN_TIME.date())
    try:
        async with svc.sessions() as s, s.begin():
            petrov = await s.scalar(select(Staff).where(Staff.login == "petrov"))
            assert petrov is not None
            petrov.email = "petrov@example.org"
        for question, waiting in (("Пособие", True), ("Субсидия", False)):
            made = await create_callback(
                svc.sessions, phone=CITIZEN, windows=[Window(_at(25, 9), _at(25, 13))],
                source=CallbackSource.OPERATOR, question=question, waiting_info=waiting,
                promised_date=OPEN_TIME.date())
            async with svc.sessions() as s, s.begin():
                found = await s.get(Callback, made)
                assert found is not None
                found.assignee_id = petrov.id
        assert await remind_due(svc.sessions, svc.calendar, _at(25, 20)) == 0, "closed"
        assert await remind_due(svc.sessions, svc.calendar, OPEN_TIME) == 1
        assert await remind_due(svc.sessions, svc.calendar, OPEN_TIME) == 0, "once"
        assert await NoticeSender(svc, None).run_once() == 1
        [mail] = smtp.inbox.to("petrov@example.org")
        assert "срок ответа 25.11.2026" in str(mail["Subject"])
        assert "Пособие" in body_of(mail) and CITIZEN not in body_of(mail)
    finally:
        await svc.close()


# --- the worklist's actions and their policies ---------------------------------------------

async def _page(client: TestClient, which: str = "department") -> str:
    return await (await client.get(f"/panel/callbacks?which={which}")).text()


async def _post(client: TestClient, csrf: str, callback_id: int, action: str,
                **data: str) -> int:
    resp = await client.post(f"/panel/callbacks/{callback_id}/{action}",
                             data={"_csrf": csrf, **data}, allow_redirects=False)
    return resp.status


async def _set_phone(svc: Services, callback_id: int, phone: str) -> None:
    async with svc.sessions() as s, s.begin():
        found = await s.get(Callback, callback_id)
        assert found is not None
        found.phone = phone


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_worklist_actions_belong_to_the_assignee(
    svc: Services, client: TestClient
) -> None:
    """The full number only to the employee the callback is assigned to (masked to the
    rest); only they call it or close it; their department may take it over, another
    department may not. Every action and every refusal is audited."""
    csrf = await log_in(client, "petrov")
    assert (await _promise(client, csrf))[0] == 200
    callback_id = (await _callback(svc)).id
    assert CITIZEN in await _page(client)
    await _set_phone(svc, callback_id, "78091234567")   # stored before a deny rule: premium
    assert await _post(client, csrf, callback_id, "call") == 422, "never dialled"
    await _set_phone(svc, callback_id, CITIZEN)

    csrf = await log_in(client, "ivanova")          # same department, not assigned
    page = await _page(client)
    assert CITIZEN not in page and "7900***0177" in page
    assert await _post(client, csrf, callback_id, "done", answer="Ответ дан") == 403
    assert await _post(client, csrf, callback_id, "call") == 403
    csrf = await log_in(client, "sidorova")          # another department
    assert await _post(client, csrf, callback_id, "take") == 403

    csrf = await log_in(client, "ivanova")
    assert await _post(client, csrf, callback_id, "take") == 303
    assert CITIZEN in await _page(client, "mine")
    assert await _post(client, csrf, callback_id, "done", answer="  ") == 400
    assert await _post(client, csrf, callback_id, "done",
                       answer="Перерасчёт сделан, выплата 30.11") == 303
    assert await _post(client, csrf, callback_id, "done", answer="ещё раз") == 409
    closed = await _callback(svc)
    assert (closed.status, closed.answer_text) == (CallbackStatus.DONE,
                                                   "Перерасчёт сделан, выплата 30.11")
    assert CITIZEN not in await _page(client, "mine"), "closed: off the worklist"

    csrf = await log_in(client, "petrov")            # no longer his
    assert await _post(client, csrf, callback_id, "done", answer="Ответ") == 403
    rows = [(a, d.split(":")[0]) for a, o, d in await audit_rows(svc) if o == "callback"]
    assert ("take", "") in rows and ("done", "") in rows
    assert [d for a, d in rows if a == "refused"] == [
        "callback_not_yours", "callback_not_yours", "callback_other_department",
        "callback_not_yours"]


# --- "call now" through the real Asterisk ------------------------------------------------

@pytest_asyncio.fixture
async def panel_ami(seeded: Stack) -> AsyncIterator[AMIClient]:
    link = make_ami(seeded.settings)
    await link.start()
    await link.wait_connected(10)
    yield link
    await link.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_call_now_rings_my_phone_then_the_citizen_with_the_hotline_number(
    seeded: Stack, ami: AMIClient, events: EventRecorder, panel_ami: AMIClient
) -> None:
    """R-H5 «call back»: the assignee's «Позвонить сейчас» takes the dialer's path: their
    phone (1002) rings first, then the citizen, who sees the hotline number."""
    services = seeded.services
    await ami.action({"Action": "Setvar", "Variable": f"CITIZEN_{CITIZEN}", "Value": "ignore"})
    await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": "30"})
    before = seen_before(events)
    try:
        async with TestClient(TestServer(init_app(services, panel_ami))) as client:
            csrf = await log_in(client, "petrov")
            waiting = {**FORM, "waiting_info": "1"}   # not the scheduler's: only "call now"
            resp = await client.post("/panel/workspace/callback", data=waiting,
                                     headers={"X-CSRF-Token": csrf})
            assert resp.status == 200, await resp.text()
            callback_id = (await _callback(services)).id
            assert await _post(client, csrf, callback_id, "call") == 303
            assert await _post(client, csrf, callback_id, "call") == 409, "one at a time"
            staff = await events.wait_for(lambda e: not before(e) and is_event(
                "Newexten", Context="hotline-callback")(e), 30,
                "the employee answered")
            rung = await events.wait_for(lambda e: not before(e) and is_event(
                "Newexten", Context="citizen-sim", Exten=CITIZEN, Application="NoOp")(e),
                60, "the citizen is rung")
        assert str(staff["Channel"]).startswith("Local/1002@operator-sim")
        assert str(rung["CallerIDNum"]) == HOTLINE
        async with services.sessions() as s:
            attempt = await s.scalar(select(CallbackAttempt))
            petrov = await s.scalar(select(Staff.id).where(Staff.login == "petrov"))
        assert attempt is not None and attempt.staff_id == petrov
        await wait_until(lambda: _status(services, callback_id, CallbackStatus.CALLING), 5,
                         "being called")
    finally:
        await ami.action({"Action": "Hangup", "Channel": "/operator-sim|citizen-sim/"},
                         check=False)
        for name in (f"CITIZEN_{CITIZEN}", "OP_TALK"):
            await ami.action({"Action": "Setvar", "Variable": name, "Value": ""})


async def _status(services: Services, callback_id: int, status: CallbackStatus) -> bool:
    async with services.sessions() as s:
        return await s.scalar(select(Callback.status).where(Callback.id == callback_id)) \
            == status

