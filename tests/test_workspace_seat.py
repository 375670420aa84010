"""The operator's seat (issue 29): the console's markup, the card popped while the phone
rings, the walk's fixes (wrap-up spared by a journal saved during the call, a transfer to an
unreachable colleague that costs nothing, R-H4), the operator's and the supervisor's day
from the agent-state facts, and the supervisor's figures' age, service levels and chart."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from panoramisk.message import Message
from sqlalchemy import func, select

from ivr.db.models import (
    AgentState,
    AgentStateChange,
    Call,
    Callback,
    CallbackSource,
    CallbackStatus,
    CallLeg,
    CallOutcome,
    MenuTopic,
    Quality,
    Rating,
    RatingStatus,
    Staff,
    Transfer,
)
from ivr.services import agent_day
from ivr.services.container import Services
from web import supervisor
from web.workspace import HUB, OperatorHub

from .conftest import PANEL_NOW
from .support.panel_client import audit_rows, log_in, put_on_call

NOW = PANEL_NOW
CALLER = "79001234567"   # Морозова, the demo's citizen
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class ScriptedAMI:
    """Just enough of the AMI link for the hub: the actions asked, canned answers."""

    def __init__(self, devices: dict[str, str] | None = None) -> None:
        self.actions: list[dict[str, str]] = []
        self.devices = devices or {}
        self.connected = asyncio.Event()
        self.connected.set()

    def subscribe(self, _event: str, _handler: object) -> None:
        pass

    async def action(self, action: dict[str, str], **_: Any) -> Any:
        self.actions.append(action)
        if action["Action"] == "DeviceStateList":
            return [Message({"Event": "DeviceStateChange", "Device": device, "State": state})
                    for device, state in self.devices.items()]
        if action["Action"] == "QueueStatus":
            return []
        return Message({"Response": "Success"})


async def _call(svc: Services, linkedid: str, *, ago: timedelta, rated: bool = False,
                login: str = "petrov") -> int:
    async with svc.sessions() as s, s.begin():
        staff_id = await s.scalar(select(Staff.id).where(Staff.login == login))
        call = Call(linkedid=linkedid, caller_number=CALLER, started_at=NOW - ago,
                    answered_at=NOW - ago, operator_id=staff_id, topic="state_services",
                    ivr_path="2", queue="hotline-services", outcome=CallOutcome.ANSWERED)
        s.add(call)
        await s.flush()
        s.add(CallLeg(call_id=call.id, operator_id=staff_id, channel=f"PJSIP/{linkedid}",
                      answered_at=call.answered_at, talk_seconds=90))
        if rated:
            s.add(Rating(call_id=call.id, operator_id=staff_id, answer_received=True,
                         quality=Quality.SATISFIED, status=RatingStatus.COMPLETE,
                         rated_at=NOW - ago + timedelta(minutes=3)))
        return call.id


def _ringing(client: TestClient, extension: str, linkedid: str) -> None:
    assert client.app is not None
    client.app[HUB]._on_called(Message({
        "Event": "AgentCalled", "Interface": f"PJSIP/{extension}", "Linkedid": linkedid,
        "CallerIDNum": CALLER, "Queue": "hotline-services",
        "DestChannel": f"PJSIP/{extension}-00000002"}))


# --- the console -----------------------------------------------------------------------------

async def test_operators_land_on_the_workspace_others_on_the_home_page(
        client: TestClient) -> None:
    for login, page in (("petrov", "/panel/workspace"), ("smirnova", "/panel")):
        client.session.cookie_jar.clear()
        resp = await client.post("/login", data={"login": login, "password": "hotline-demo",
                                                 "next": "/panel"}, allow_redirects=False)
        assert resp.headers["Location"] == page, login


async def test_pages_have_viewport_favicon_and_russian_not_found(client: TestClient) -> None:
    login = await (await client.get("/login")).text()
    await log_in(client, "petrov")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in login
    assert 'href="/static/favicon.svg"' in login
    icon = await client.get("/static/favicon.svg")
    assert icon.status == 200 and icon.content_type == "image/svg+xml"
    for path in ("/nowhere", "/static/nowhere.js"):
        missing = await client.get(path)
        assert missing.status == 404
        assert "Страница не найдена" in await missing.text(), path


async def test_the_workspace_is_one_screen_of_labelled_controls(
        svc: Services, client: TestClient) -> None:
    await log_in(client, "petrov")
    page = await (await client.get("/panel/workspace")).text()
    assert re.search(r'id="agent-state"[^>]*role="status" aria-live="polite"', page)
    assert '<label for="pause-reason"' in page and 'id="pause-reason"' in page
    reasons = page.split('id="pause-reason"')[1].split("</select>")[0]
    assert "перерыв" in reasons and "поствызывная обработка" not in reasons, \
        "wrap-up is its own button («Обработка»), not a pause reason too"
    assert '<label for="kb-q">' in page and 'id="kb-q"' in page
    assert 'class="phone-slot"' in page and 'id="call-timer"' in page
    assert re.search(r'<script type="module" src="/static/js/workspace.js" nonce="[^"]+">',
                     page)
    assert "style=" not in page and "<script>" not in page, "no inline style or script"
    # Without an AMI link the page says so instead of pretending the operator waits.
    assert "Состояние в Asterisk неизвестно" in page and "Ожидание звонка" not in page
    css = await (await client.get("/static/panel.css")).text()
    assert "min-height: 32px" in css


async def test_an_operator_without_a_phone_password_is_told_whom_to_ask(
        client: TestClient) -> None:
    """The operator asks the administrator (the employee's card creates the password);
    console commands are not the operator's business."""
    await log_in(client, "petrov")
    answer = await (await client.get("/panel/phone/credentials")).json()
    assert answer["id"] == "phone_no_password"
    assert "попросите администратора" in answer["reason"]
    assert "«Новый пароль телефона»" in answer["reason"] and "hotline" not in answer["reason"]


async def test_the_card_pops_while_the_phone_rings_with_titles_and_formatted_numbers(
        svc: Services, client: TestClient) -> None:
    await _call(svc, "earlier-1", ago=timedelta(days=2), rated=True)
    await _call(svc, "ring-1", ago=timedelta(seconds=5))
    await log_in(client, "petrov")
    assert client.app is not None
    page = client.app[HUB].listen("1002")
    _ringing(client, "1002", "ring-1")
    assert page.get_nowait()["type"] == "ringing"
    card = await client.get("/panel/workspace/card?linkedid=ring-1")
    assert card.status == 200, "the ringing operator sees the card before answering"
    text = await card.text()
    assert "+7 900 123-45-67" in text and "79001234567</h2>" not in text
    title = next(t.title for t in svc.settings.ivr.topics if t.code == "state_services")
    assert f"Тема: <strong>{title}</strong>" in text and f"путь в меню: {title}" in text
    assert "state_services" not in text.split('id="card-earlier"')[1].split("</table>")[0]
    earlier = text.split('id="card-earlier"')[1].split("</table>")[0]
    assert "дан ответ" in earlier and "ответ получен" in earlier and "удовлетворён" in earlier
    # «Вопрос» of the booking is the caller's words, never the topic's code.
    booking_topic = re.search(r'<input name="topic"[^>]*>', text.split('id="book-form"')[1])
    assert booking_topic is not None and "value=" not in booking_topic.group(0)
    # Not a colleague's ring: refused.
    await log_in(client, "ivanova")
    assert (await client.get("/panel/workspace/card?linkedid=ring-1")).status == 403


async def test_a_callback_promised_during_the_call_shows_on_the_card(
        svc: Services, client: TestClient) -> None:
    call_id = await _call(svc, "cb-1", ago=timedelta(seconds=30))
    async with svc.sessions() as s, s.begin():
        s.add(Callback(phone="79990000000", call_id=call_id, source=CallbackSource.OPERATOR,
                       question="Уточнить размер пособия", status=CallbackStatus.READY))
    put_on_call(client, "1002", "cb-1", CALLER)
    await log_in(client, "petrov")
    card = await (await client.get("/panel/workspace/card?linkedid=cb-1")).text()
    listed = card.split('id="card-callbacks"')[1].split("</ul>")[0]
    assert "Уточнить размер пособия" in listed and "в этом звонке" in listed


async def test_a_journal_saved_during_the_call_spares_the_wrap_up(
        svc: Services, client: TestClient) -> None:
    """The walk: saving the journal while talking still left the operator paused for the
    whole wrap-up; now the wrap-up ends when the journal is saved, whenever that was."""
    assert client.app is not None
    hub: OperatorHub = client.app[HUB]
    hub.ami = fake = ScriptedAMI()   # type: ignore[assignment]
    await _call(svc, "wj-1", ago=timedelta(seconds=40))
    await _call(svc, "wj-2", ago=timedelta(seconds=20))
    csrf = await log_in(client, "petrov")
    put_on_call(client, "1002", "wj-1", CALLER)
    saved = await client.post("/panel/workspace/journal", headers={"X-CSRF-Token": csrf},
                              data={"linkedid": "wj-1", "topic": "state_services",
                                    "question": "Сроки", "answer": "Десять дней",
                                    "outcome": "answered"})
    assert saved.status == 200
    hub._on_complete(Message({"Event": "AgentComplete", "Interface": "PJSIP/1002",
                              "Linkedid": "wj-1"}))
    await asyncio.sleep(0)
    assert not [a for a in fake.actions if a["Action"] == "QueuePause"], "no wrap-up"
    # The next call, hung up before the journal: the wrap-up pause as before.
    put_on_call(client, "1002", "wj-2", CALLER)
    hub._on_complete(Message({"Event": "AgentComplete", "Interface": "PJSIP/1002",
                              "Linkedid": "wj-2"}))
    for _ in range(20):
        await asyncio.sleep(0)
    assert [a["Reason"] for a in fake.actions if a["Action"] == "QueuePause"] == [
        "после звонка: журнал"]
    hub.stop_wrapup("1002")


async def test_a_transfer_to_an_unreachable_colleague_fails_clearly_and_costs_nothing(
        svc: Services, client: TestClient) -> None:
    """R-H4: the failed attempt is not one of the caller's two transfers; the colleague
    list shows who is reachable."""
    assert client.app is not None
    hub: OperatorHub = client.app[HUB]
    device = svc.settings.asterisk.operator_dial.format
    hub.ami = ScriptedAMI({device(extension="1003"): "UNAVAILABLE",   # type: ignore[assignment]
                           device(extension="1001"): "NOT_INUSE"})
    call_id = await _call(svc, "tr-1", ago=timedelta(seconds=30))
    csrf = await log_in(client, "petrov")
    put_on_call(client, "1002", "tr-1", CALLER)
    card = await (await client.get("/panel/workspace/card?linkedid=tr-1")).text()
    options = card.split('name="extension"')[1].split("</select>")[0]
    assert "— недоступен" in options and "— свободен" in options
    assert options.index("свободен") < options.index("недоступен"), "reachable first"
    resp = await client.post("/panel/workspace/transfer", headers={"X-CSRF-Token": csrf},
                             data={"extension": "1003", "note": ""})
    answer = await resp.json()
    assert resp.status == 409 and answer["used"] == 0
    assert "телефон коллеги недоступен" in answer["error"] and "не засчитан" in answer["error"]
    async with svc.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Transfer).where(
            Transfer.call_id == call_id)) == 0
    assert ("transfer_unreachable", "call", "1003") in await audit_rows(svc)


# --- the day, from the agent-state facts ------------------------------------------------------

async def _states(svc: Services, extension: str, *rows: tuple[int, AgentState, str]) -> None:
    async with svc.sessions() as s, s.begin():
        staff_id = await s.scalar(select(Staff.id).where(Staff.extension == extension))
        for minutes_ago, state, reason in rows:
            s.add(AgentStateChange(extension=extension, staff_id=staff_id, state=state,
                                   reason=reason, at=NOW - timedelta(minutes=minutes_ago)))


async def test_the_day_sums_states_and_pauses_by_reason(svc: Services,
                                                        client: TestClient) -> None:
    await _states(svc, "1002", (24 * 60, AgentState.READY, ""),   # yesterday: carried over
                  (60, AgentState.PAUSED, "перерыв"), (50, AgentState.READY, ""),
                  (30, AgentState.ON_CALL, ""), (28, AgentState.WRAPUP, ""),
                  (27, AgentState.PAUSED, "обучение"))
    await _call(svc, "day-1", ago=timedelta(minutes=30))
    start = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)   # midnight in Moscow
    async with svc.sessions() as s:
        [day] = await agent_day.days(s, start, start + timedelta(days=1), NOW,
                                     staff_id=await s.scalar(select(Staff.id).where(
                                         Staff.login == "petrov")))
    assert day.pauses == {"перерыв": 600, "обучение": 27 * 60}
    assert day.seconds[AgentState.READY] == (600 + 20) * 60   # 00:00–10:00, 10:10–10:30
    assert day.seconds[AgentState.ON_CALL] == 120 and day.seconds[AgentState.WRAPUP] == 60
    assert (day.state, day.reason, day.calls, day.talk_seconds) == (
        AgentState.PAUSED, "обучение", 1, 90)
    await log_in(client, "petrov")
    mine = (await (await client.get("/panel/workspace")).text()).split('id="my-day"')[1]
    assert "Пауза: перерыв</dt><dd>10 мин" in mine and "Пауза: обучение" in mine
    await log_in(client, "smirnova")
    board = await (await client.get("/panel/supervisor/operators")).text()
    row = next(r for r in board.split("<tr>") if "Петров" in r)
    assert "Пауза: обучение" in row and "27 мин" in row and "10 мин" in row
    assert 'data-refresh="15"' in board, "the table refreshes itself"
    assert "<th>В этом состоянии с</th>" in board and "<th>С</th>" not in board
    await log_in(client, "petrov")
    assert (await client.get("/panel/supervisor/operators")).status == 403


# --- the supervisor's figures ---------------------------------------------------------------

async def test_figures_say_their_age_and_agree_with_their_csv(
        svc: Services, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk: «обновляются раз в полминуты» on 13-minute-old figures, and «Оценок нет» on
    the page while its CSV listed ratings."""
    await log_in(client, "smirnova")
    first = await (await client.get("/panel/supervisor?period=month")).text()
    assert "Оценок нет" in first.split('id="by_operator"')[1].split("</table>")[0]
    await _call(svc, "sl-1", ago=timedelta(hours=1), rated=True)
    monkeypatch.setattr(supervisor, "FIGURES_TTL", 0.0)   # the figures are now "old"
    page = await (await client.get("/panel/supervisor?period=month")).text()
    table = page.split('id="by_operator"')[1].split("</table>")[0]
    assert "Оценок нет" not in table and "Петров" in table
    topics = page.split('id="by_topic"')[1].split("</table>")[0]
    assert '">Государственные услуги</a>' in topics and '">state_services<' not in topics
    behind = await (await client.get("/panel/supervisor/calls?period=month&topic="
                                     "state_services")).text()
    assert "<td>Государственные услуги</td>" in behind and "state_services<" not in behind
    csv = await (await client.get("/panel/supervisor/export/by_operator?period=month")).text()
    assert "Петров" in csv
    by_topic = await (await client.get("/panel/supervisor/export/by_topic?period=month")).text()
    assert "Государственные услуги" in by_topic and "state_services" not in by_topic
    assert re.search(r'id="figures-age" data-refresh="30">Показатели на [\d:]+, '
                     r'<span class="age">\d+ с назад</span>', page)
    data = json.loads(page.split('id="ratings-chart-data">')[1].split("</script>")[0])
    assert data["answered"] == [100] and data["rated"] == [1]
    assert '<script type="module" src="/static/js/supervisor.js"' in page


async def test_figures_a_little_old_are_shown_at_once_and_renewed_behind(
        svc: Services, client: TestClient) -> None:
    """Past the TTL the page answers with the last figures and their age (no wait over a
    million calls); the renewal runs behind it, and the next page has the new call."""
    await log_in(client, "smirnova")
    await client.get("/panel/supervisor?period=month")
    figures = client.app[supervisor.FIGURES]
    await _call(svc, "sl-2", ago=timedelta(hours=1), rated=True)
    for key, (at, values) in list(figures.cache.items()):
        figures.cache[key] = (at - 1.5 * supervisor.FIGURES_TTL, values)
    page = await (await client.get("/panel/supervisor?period=month")).text()
    assert "Оценок нет" in page.split('id="by_operator"')[1].split("</table>")[0]
    assert re.search(r'<span class="age">4\d с назад</span>', page)
    await asyncio.gather(*figures.refreshing.values())
    page = await (await client.get("/panel/supervisor?period=month")).text()
    assert "Петров" in page.split('id="by_operator"')[1].split("</table>")[0]


async def test_the_dashboard_names_topics_as_the_administrators_menu_does(
        svc: Services, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A topic renamed in the panel's menu is named so on the dashboard and in its CSV,
    not by the settings that only seeded the menu."""
    await _call(svc, "sl-3", ago=timedelta(hours=1), rated=True)
    await svc.menu.reload(svc)
    async with svc.sessions() as s, s.begin():
        topic = await s.scalar(select(MenuTopic).where(MenuTopic.code == "state_services"))
        assert topic is not None
        topic.title = "Госуслуги и справки"
    await svc.menu.reload(svc)
    monkeypatch.setattr(supervisor, "FIGURES_TTL", 0.0)
    await log_in(client, "smirnova")
    page = await (await client.get("/panel/supervisor?period=month")).text()
    assert "Госуслуги и справки" in page.split('id="by_topic"')[1].split("</table>")[0]
    csv = await (await client.get("/panel/supervisor/export/by_topic?period=month")).text()
    assert "Госуслуги и справки" in csv


async def test_service_level_is_shown_both_ways(
        svc: Services, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """6 of 9 callers abandoned: Asterisk's figure says 100 %, the other one 33 %."""
    monkeypatch.setattr(supervisor, "FIGURES_TTL", 0.0)   # computed before these calls
    async with svc.sessions() as s, s.begin():
        for i in range(9):
            answered = i < 3
            s.add(Call(linkedid=f"q-{i}", caller_number=f"7900000000{i}",
                       dialed_number="88001234567",
                       started_at=NOW - timedelta(minutes=20 + i),
                       queue_joined_at=NOW - timedelta(minutes=20 + i), wait_seconds=5,
                       answered_at=NOW - timedelta(minutes=19 + i) if answered else None,
                       outcome=CallOutcome.ANSWERED if answered else CallOutcome.ABANDONED))
    await log_in(client, "smirnova")
    page = await (await client.get("/panel/supervisor")).text()
    assert re.search(r"Доля принятых за \d+ с из дождавшихся ответа</dt><dd id=\"kpi-sl\">100 %",
                     page)
    assert re.search(r"Доля принятых за \d+ с из всех позвонивших в очередь</dt>"
                     r"<dd id=\"kpi-sl-all\">33 %", page)
    assert "по Asterisk" not in page
