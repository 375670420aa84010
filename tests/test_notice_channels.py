"""Notice channels (R-A2, R-A5, issue 27): the channel a citizen chose, the duplicate and the
postal address are taken at intake (API, CSV, the panel's form), checked where they enter,
kept on the citizen's card, and notices follow them; an appeal by post with no e-mail or
phone becomes a print-ready letter in the outbox, offered for printing in the panel."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from ivr.db.models import (
    ApiToken,
    Appeal,
    Channel,
    Citizen,
    CitizenPhone,
    Notification,
    NotificationStatus,
    Role,
    Staff,
)
from ivr.demo import DEMO_PASSWORD
from ivr.letters import Letter
from ivr.notifier import NoticeSender
from ivr.passwords import hash_password
from ivr.services import intake, notices
from ivr.services.container import Services
from ivr.settings import Settings
from web.api import token_hash
from web.app import init_app

from .conftest import BACKENDS
from .support.panel_client import audit_rows, log_in
from .support.records import People, add_people, services_on

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)   # 11:00 in Moscow, a working Wednesday
AUTH = {"Authorization": "Bearer intake-token"}
ADDRESS = "123456, г. Демонстрационный, ул. Садовая, д. 7, кв. 12"
BASE = {"registered_on": "2026-11-24", "channel": "post", "surname": "Зайцева",
        "first_name": "Нина", "topic": "Пособия", "text": "Прошу разъяснить"}


@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str) -> AsyncIterator[Services]:
    services = services_on(settings, db_url, NOW, smtp={"port": 1})
    yield services
    await services.close()


async def staff_with_passwords(svc: Services) -> People:
    """The records' people, able to log in to the panel, a token for the head, and an
    operator (who has no business with appeals)."""
    people = await add_people(svc)
    async with svc.sessions() as s, s.begin():
        await s.execute(update(Staff).values(password_hash=hash_password(DEMO_PASSWORD)))
        s.add(ApiToken(name="СЭДД", token_hash=token_hash("intake-token"),
                       staff_id=people.head.id))
        s.add(Staff(login="operator", surname="Петров", first_name="Сергей",
                    position="консультант", department_id=people.head.department_id,
                    role=Role.OPERATOR, password_hash=hash_password(DEMO_PASSWORD)))
    return people


@pytest_asyncio.fixture
async def client(svc: Services) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(init_app(svc))) as c:
        yield c


async def _citizen_of(svc: Services, appeal_id: int) -> Citizen:
    async with svc.sessions() as s:
        appeal = await s.get(Appeal, appeal_id)
        assert appeal is not None and appeal.citizen_id is not None
        return await notices.load_citizen(s, appeal.citizen_id)


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_api_intake_records_each_channel_and_refuses_each_bad_input(
    svc: Services, client: TestClient
) -> None:
    """R-A2: the chosen channel, the duplicate and the postal address are checked where
    they enter (a Russian 422 naming the field) and recorded on the citizen's card."""
    await staff_with_passwords(svc)
    for n, (fields, expected) in enumerate([
        ({"notify_channel": "факс"}, "канал для уведомлений: выберите"),
        ({"notify_channel": "email"}, "нужен адрес электронной почты"),
        ({"notify_channel": "phone"}, "нужен телефон"),
        ({"notify_channel": "post"}, "нужен почтовый адрес"),
        ({"notify_channel": "post", "postal_address": "ул. 5"}, "почтовый адрес: укажите"),
        ({"notify_channel": "post", "postal_address": "где-то в городе, у реки"},
         "почтовый адрес: укажите"),
        ({"notify_channel": "post", "postal_address": ADDRESS, "extra_channel": "почта"},
         "дополнительный канал совпадает"),
        ({"notify_channel": "state_portal", "extra_channel": "email"},
         "нужен адрес электронной почты"),
        ({"notify_channel": "phone", "phone": "8-809-123-45-67"}, "телефон"),
        ({"topic": "Погода"}, "нет в классификаторе"),
    ]):
        resp = await client.post("/api/v1/appeals", headers=AUTH,
                                 json={**BASE, "reg_number": f"70{n:02}", **fields})
        body = await resp.json()
        assert (resp.status, expected in body["error"]) == (422, True), (fields, body)
    async with svc.sessions() as s:
        assert await s.scalar(select(Appeal.id)) is None, "nothing registered"

    chosen: list[tuple[dict[str, str], tuple[Any, ...]]] = [
        ({"notify_channel": "электронная почта", "email": "zaytseva@example.org"},
         (Channel.EMAIL, None, "")),
        ({"notify_channel": "телефон", "phone": "8 (900) 333-44-55"},
         (Channel.PHONE, None, "")),
        ({"notify_channel": "почта", "postal_address": f"  {ADDRESS}\n"},
         (Channel.POST, None, ADDRESS)),
        ({"notify_channel": "ЕПГУ", "extra_channel": "post", "postal_address": ADDRESS},
         (Channel.STATE_PORTAL, Channel.POST, ADDRESS)),
    ]
    for n, (fields, card) in enumerate(chosen):
        resp = await client.post("/api/v1/appeals", headers=AUTH, json={
            **BASE, "reg_number": f"71{n:02}", "surname": f"Гражданин {n}", **fields})
        assert resp.status == 201, await resp.text()
        citizen = await _citizen_of(svc, (await resp.json())["id"])
        assert (citizen.preferred_channel, citizen.extra_channel,
                citizen.postal_address) == card, fields


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_csv_columns_of_the_channels_are_checked_by_line(svc: Services) -> None:
    """R-A2 in the document-flow export: the optional columns notify_channel,
    extra_channel, postal_address; each bad row reported by its line, nothing imported."""
    header = "reg_number;registered_on;channel;surname;email;topic;notify_channel;" \
             "extra_channel;postal_address\n"
    good = f"7201;24.11.2026;почта;Зайцева;;01.01;почта;;{ADDRESS}\n"
    bad = ("7202;24.11.2026;почта;Орлова;;Пособия;голубь;;\n"
           "7203;24.11.2026;ЕПГУ;Белова;;Пособия;ЕПГУ;электронная почта;\n")
    report = await intake.import_csv(svc.sessions, svc.settings, svc.calendar,
                                     header + good + bad, now=NOW)
    assert report.imported == 0
    assert [e.split(":")[0] for e in report.errors] == ["строка 3", "строка 4"]
    assert "канал для уведомлений" in report.errors[0]
    assert "нужен адрес электронной почты" in report.errors[1]
    report = await intake.import_csv(svc.sessions, svc.settings, svc.calendar,
                                     header + good, now=NOW)
    assert (report.imported, report.errors) == (1, [])
    async with svc.sessions() as s:
        citizen = await s.scalar(select(Citizen).where(Citizen.surname == "Зайцева"))
    assert citizen is not None
    assert (citizen.preferred_channel, citizen.postal_address) == (Channel.POST, ADDRESS)


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_notices_follow_the_chosen_channel_and_the_duplicate(svc: Services) -> None:
    """R-A2: the chosen channel; the duplicate the citizen asked for; where the law fixes
    the chosen channel (the state portal) a duplicate even when none was asked for."""
    people = await add_people(svc)
    cases = [   # chosen, extra, e-mail, phone, address → channels of a notice
        (Channel.POST, Channel.EMAIL, "a@example.org", None, ADDRESS, ["post", "email"]),
        (Channel.PHONE, Channel.POST, None, "79003334455", ADDRESS, ["phone", "post"]),
        (Channel.EMAIL, None, "b@example.org", "79003334456", ADDRESS, ["email"]),
        (Channel.STATE_PORTAL, None, "c@example.org", None, "", ["state_portal", "email"]),
        (Channel.STATE_PORTAL, None, None, None, ADDRESS, ["state_portal", "post"]),
        (Channel.POST, None, None, None, ADDRESS, ["post"]),
        (Channel.EMAIL, Channel.PHONE, "d@example.org", None, "", ["email"]),  # no phone
    ]
    async with svc.sessions() as s, s.begin():
        for n, (chosen, extra, email, phone, address, expected) in enumerate(cases):
            citizen = Citizen(surname=f"Случай {n}", email=email, postal_address=address,
                              preferred_channel=chosen, extra_channel=extra,
                              phones=[CitizenPhone(phone=phone)] if phone else [])
            s.add(citizen)
            await s.flush()
            citizen = await notices.load_citizen(s, citizen.id)
            letter = Letter("test", "Тема", "Текст", "Текст")
            queued = await notices.enqueue(s, svc.settings, citizen, letter,
                                           key=f"case:{n}", now=NOW)
            assert [q.channel.value for q in queued] == expected, (chosen, extra)
    assert people.portal_citizen.extra_channel == Channel.EMAIL


async def _register_by_post(client: TestClient, csrf: str, **fields: str) -> Any:
    form = {"_csrf": csrf, "reg_number": "7301", "registered_on": "2026-11-24",
            "channel": "post", "surname": "Зайцева", "first_name": "Нина",
            "patronymic": "Петровна", "topic": "01.01", "text": "Прошу разъяснить",
            "postal_address": ADDRESS, **fields}
    return await client.post("/panel/appeals/new", data=form, allow_redirects=False)


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_posted_appeal_without_email_or_phone_is_a_letter_to_print(
    svc: Services, client: TestClient
) -> None:
    """R-A2: registered in the panel's form by post, with only a postal address: the
    registration notice waits in the outbox as a print-ready A4 letter; the API lists it
    with its letter, the panel offers «Печать»; every view is audited; the letter escapes
    what the address holds."""
    await staff_with_passwords(svc)
    csrf = await log_in(client, "head")
    form = await (await client.get("/panel/appeals/new")).text()
    for field in ("notify_channel", "extra_channel", "postal_address"):
        assert f'name="{field}"' in form
    assert '<option value="01.01" >01.01 Пособия</option>' in form, "the classifier's topics"
    refused = await _register_by_post(client, csrf, notify_channel="email")
    assert refused.status == 422
    page = await refused.text()
    assert "нужен адрес электронной почты" in page and ADDRESS in page, "the form kept"

    created = await _register_by_post(client, csrf, postal_address=f"<b>{ADDRESS}</b>")
    assert created.status == 303, await created.text()
    appeal_id = int(created.headers["Location"].rsplit("/", 1)[1])
    assert await NoticeSender(svc, None).run_once() == 1
    async with svc.sessions() as s:
        [notice] = (await s.scalars(select(Notification))).all()
    assert (notice.channel, notice.status, notice.appeal_id) == (
        Channel.POST, NotificationStatus.OUTBOX, appeal_id)

    listed = await (await client.get("/api/v1/outbox?channel=post", headers=AUTH)).json()
    [item] = listed["items"]
    assert item["letter_url"] == f"/api/v1/outbox/{notice.id}/letter"
    letter = await client.get(item["letter_url"], headers=AUTH)
    assert letter.status == 200 and letter.content_type == "text/html"
    html = await letter.text()
    assert "Обращение № 7301 зарегистрировано" in html and "/static/letter.css" in html
    assert "Зайцева Нина Петровна" in html and "&lt;b&gt;123456" in html
    assert "<b>123456" not in html, "the address is text, never markup"
    css = await (await client.get("/static/letter.css")).text()
    assert "size: A4" in css

    outbox = await client.get("/panel/outbox")
    assert outbox.status == 200
    assert f'href="/panel/outbox/{notice.id}/letter"' in await outbox.text()
    card = await (await client.get(f"/panel/appeals/{appeal_id}")).text()
    assert f'/panel/outbox/{notice.id}/letter" target="_blank">Печать' in card
    assert re.search(r'id="postal-address">&lt;b&gt;123456', card), "on the citizen's card"
    printed = await client.get(f"/panel/outbox/{notice.id}/letter")
    assert printed.status == 200 and 'id="print"' in await printed.text()
    assert (await client.get(f"/panel/outbox/{notice.id + 1}/letter")).status == 404

    await log_in(client, "operator")
    assert (await client.get("/panel/outbox")).status == 403
    assert (await client.get(f"/panel/outbox/{notice.id}/letter")).status == 403
    seen = [(a, o) for a, o, d in await audit_rows(svc) if "письм" in d or "outbox" in d]
    assert seen == [("view", "notification")] * 4 + [("refused", "notification")] * 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_only_post_copies_are_letters(svc: Services, client: TestClient) -> None:
    """A copy by e-mail or the state portal has no printable letter (404, not another
    citizen's text by a guessed number)."""
    people = await staff_with_passwords(svc)
    async with svc.sessions() as s, s.begin():
        citizen = await notices.load_citizen(s, people.portal_citizen.id)
        letter = Letter("test", "Тема", "Текст", "Текст")
        queued = await notices.enqueue(s, svc.settings, citizen, letter, key="x", now=NOW)
    assert [q.channel for q in queued] == [Channel.STATE_PORTAL, Channel.EMAIL]
    for notice in queued:
        resp = await client.get(f"/api/v1/outbox/{notice.id}/letter", headers=AUTH)
        assert resp.status == 404
        assert (await resp.json())["id"] == "letter_not_found"
    assert (await client.get("/api/v1/outbox/1/letter")).status == 401
