"""The IVR menu, queues, operators' skills and the working calendar kept in the database
(issue 28, R-H1, R-H2): seeded once from the settings, edited by the administrator in the
panel, the API and the CLI, refused with a Russian reason, audited with before/after, and
live for callers (the menu prompt spoken from the topics' titles, queues.conf rewritten)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import date, time
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.cli import main as cli_main
from ivr.cli import status_lines
from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.models import ApiToken, AuditEntry, CalendarDay, MenuTopic, Staff
from ivr.demo import seed_demo
from ivr.ivr_setup import Step
from ivr.phrases import day_notice
from ivr.services import live_menu, menu
from ivr.services.container import Services
from ivr.services.menu import SetupError, TopicInput
from ivr.settings import Settings
from web.api import token_hash
from web.app import init_app

from .conftest import PANEL_NOW, hotline_environ
from .support.fake_ami import FakeAMI
from .support.panel_client import log_in
from .support.records import services_on

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    """The demo's people; queues.conf goes to ``tmp_path``, never to the test Asterisk."""
    services = services_on(settings, db_url, PANEL_NOW, asterisk={"config_dir": str(tmp_path)})
    await seed_demo(services.settings, today=PANEL_NOW.date())
    yield services
    await services.close()


async def _staff_id(svc: Services, login: str) -> int:
    async with svc.sessions() as s:
        return int(await s.scalar(select(Staff.id).where(Staff.login == login)) or 0)


async def _change(svc: Services, step: Step) -> menu.Change:
    async with svc.sessions() as s, s.begin():
        return await step(s)


async def test_settings_seed_once_then_the_database_rules_and_the_menu_is_spoken(
    svc: Services
) -> None:
    """R-H1: a fresh database takes the settings' topics; a topic removed stays removed;
    the menu prompt is rendered from the titles before a caller can hear it."""
    setup = await svc.menu.reload(svc)
    assert [t.digit for t in setup.ivr.topics] == [t.digit for t in svc.settings.ivr.topics]
    assert {q.name for q in setup.queues} == {"hotline-general", "hotline-services",
                                              "hotline-support", "hotline-inspections"}
    await _change(svc, lambda s: menu.remove_topic(s, "6"))
    await _change(svc, lambda s: menu.save_topic(s, TopicInput(
        "7", "pensions", "Пенсии и пособия", "queue", "hotline-support")))
    setup = await svc.menu.reload(svc)
    assert [t.digit for t in setup.ivr.topics] == ["1", "2", "3", "4", "5", "7"]
    spoken = svc.prompts.texts["menu"]
    assert "Пенсии и пособия — 7." in spoken and "Проверки" not in spoken
    assert svc.prompts.seconds(svc.prompts.path("menu")) > 3, "rendered, and spoken whole"


@SQLITE
async def test_another_process_takes_a_change_once_its_copy_ages(
    svc: Services, settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``--only agi`` process keeps its copy of the menu for ``MAX_AGE`` seconds (no
    query per call), then reads the panel's change."""
    agi_side = services_on(settings, db_url, PANEL_NOW)
    try:
        assert (await agi_side.menu.fresh(agi_side)).ivr.topic_for("6") is not None
        await _change(svc, lambda s: menu.remove_topic(s, "6"))
        assert (await agi_side.menu.fresh(agi_side)).ivr.topic_for("6") is not None
        monkeypatch.setattr(live_menu, "MAX_AGE", 0.0)
        assert (await agi_side.menu.fresh(agi_side)).ivr.topic_for("6") is None
        assert "Проверки" not in agi_side.prompts.texts["menu"]
    finally:
        await agi_side.close()


@SQLITE
async def test_refusals_say_why(svc: Services) -> None:
    """A digit used twice, an unknown queue, a queue the menu or an operator still uses,
    the general queue, names that would break queues.conf: refused, nothing changed."""
    await svc.menu.reload(svc)
    petrov, orlov = await _staff_id(svc, "petrov"), await _staff_id(svc, "orlov")
    await _change(svc, lambda s: menu.set_skill(s, petrov, "hotline-inspections", 2))
    await _change(svc, lambda s: menu.remove_topic(s, "6"))   # nothing leads there now
    refused = {
        "topic_digit_taken": lambda s: menu.save_topic(s, TopicInput(
            "2", "other", "Другое", "queue", "hotline-general")),
        "queue_unknown": lambda s: menu.save_topic(s, TopicInput(
            "8", "other", "Другое", "queue", "no-such-queue")),
        "queue_in_menu": lambda s: menu.remove_queue(s, "hotline-services", "hotline-general"),
        "queue_served": lambda s: menu.remove_queue(s, "hotline-inspections",
                                                    "hotline-general"),
        "queue_general": lambda s: menu.remove_queue(s, "hotline-general", "hotline-general"),
        "queue_name_invalid": lambda s: menu.save_queue(s, "x]\n[evil", "Злая", "ringall", 20),
        "queue_strategy_invalid": lambda s: menu.save_queue(s, "new", "Новая", "all\nx", 20),
        "skill_not_operator": lambda s: menu.set_skill(s, orlov, "hotline-general", 0),
    }
    for error_id, step in refused.items():
        with pytest.raises(SetupError) as exc:
            await _change(svc, step)
            pytest.fail(f"{error_id}: not refused")
        assert exc.value.error_id == error_id, str(exc.value)
        assert any("а" <= ch <= "я" for ch in str(exc.value)), "the reason is Russian"
    setup = await svc.menu.reload(svc)
    assert "hotline-inspections" in {q.name for q in setup.queues}


@SQLITE
async def test_calendar_days_close_shorten_and_are_told(svc: Services) -> None:
    """R-H2 on top of the federal calendar: a closure shuts the day and its reason is
    spoken; a shortened day closes early and says until when."""
    from ivr.services import work_days

    closed, short = date(2026, 11, 26), date(2026, 11, 27)
    await _change(svc, lambda s: work_days.save_day(s, closed, "closure", None,
                                                    "режим повышенной готовности"))
    await _change(svc, lambda s: work_days.save_day(s, short, "short", time(15, 0), ""))
    with pytest.raises(SetupError):
        await _change(svc, lambda s: work_days.save_day(s, closed, "closure", None, ""))
    await svc.menu.reload(svc)
    cal = svc.calendar
    assert cal.periods_on(closed) == () and not cal.is_working_day(closed)
    assert cal.periods_on(short)[-1].end.time() == time(15, 0)
    assert day_notice(cal, svc.prompts, closed) == \
        "Сегодня горячая линия не работает: режим повышенной готовности."
    assert day_notice(cal, svc.prompts, short) == \
        "Сегодня горячая линия работает до пятнадцати часов."
    assert day_notice(cal, svc.prompts, date(2026, 11, 25)) == ""


@pytest_asyncio.fixture
async def fake_ami() -> AsyncIterator[FakeAMI]:
    fake = FakeAMI()
    await fake.start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def panel(svc: Services, fake_ami: FakeAMI) -> AsyncIterator[TestClient]:
    """The panel with an AMI link to a scripted peer that records what it is asked."""
    ami = AMIClient("127.0.0.1", fake_ami.port, "u", "s", reconnect_max_delay=1)
    await ami.start()
    await ami.wait_connected(5)
    async with TestClient(TestServer(init_app(svc, ami))) as client:
        yield client
    await ami.close()


@SQLITE
async def test_admin_pages_change_audit_and_reload_asterisk(
    svc: Services, panel: TestClient, fake_ami: FakeAMI, tmp_path: Path
) -> None:
    """The administrator adds a queue and a topic: audited with before/after, queues.conf
    rewritten with the queue's strategy, Asterisk asked to re-read its queues; a digit used
    twice comes back with the reason. Operators may not even see the page."""
    csrf = await log_in(panel, "orlov")
    page = await panel.get("/panel/admin/ivr")
    assert page.status == 200 and "Государственные услуги" in await page.text()
    added = await panel.post("/panel/admin/ivr/queues", allow_redirects=False, data={
        "_csrf": csrf, "name": "hotline-pensions", "title": "Пенсии", "strategy": "ringall",
        "service_level_seconds": "30"})
    assert added.status == 303 and "error" not in added.headers["Location"]
    conf = (tmp_path / "queues.conf").read_text()
    assert "[hotline-pensions](hotline-template)\nstrategy = ringall\nservicelevel = 30" in conf
    assert {"Action": "QueueReload", "Parameters": "yes"}.items() <= fake_ami.received[-1].items()
    topic = {"_csrf": csrf, "digit": "7", "code": "pensions", "title": "Пенсии",
             "action": "queue", "queue": "hotline-pensions"}
    assert "error" not in (await panel.post("/panel/admin/ivr/topics", data=topic,
                                            allow_redirects=False)).headers["Location"]
    twice = await panel.post("/panel/admin/ivr/topics", data={**topic, "code": "other"})
    assert "Кнопка 7 уже занята пунктом «Пенсии»" in await twice.text()
    async with svc.sessions() as s:
        entries = list(await s.scalars(select(AuditEntry).where(
            AuditEntry.object_type.in_(["ivr_queue", "menu_topic"]))))
    assert [(e.action, e.object_id) for e in entries] == [("create", "hotline-pensions"),
                                                          ("create", "7")]
    assert json.loads(entries[1].details)["after"]["queue"] == "hotline-pensions"
    await log_in(panel, "petrov")
    assert (await panel.get("/panel/admin/ivr")).status == 403


@SQLITE
async def test_ready_joins_the_operators_own_queues_with_their_penalty(
    svc: Services, panel: TestClient, fake_ami: FakeAMI
) -> None:
    """«Готов» puts the operator into their skills' queues only, with the penalty, and out
    of every other queue."""
    csrf = await log_in(panel, "orlov")
    petrov = await _staff_id(svc, "petrov")
    await panel.post("/panel/admin/ivr/skills", data={
        "_csrf": csrf, "staff_id": str(petrov), "queue": "hotline-support", "penalty": "3"})
    csrf = await log_in(panel, "petrov")
    fake_ami.received.clear()
    ready = await panel.post("/panel/workspace/status", allow_redirects=False,
                             data={"_csrf": csrf, "state": "ready"})
    assert ready.status == 303 and "error" not in ready.headers["Location"]
    added = [(a["Queue"], a["Penalty"]) for a in fake_ami.received
             if a.get("Action") == "QueueAdd"]
    removed = {a["Queue"] for a in fake_ami.received if a.get("Action") == "QueueRemove"}
    assert added == [("hotline-support", "3")]
    assert removed == {"hotline-general", "hotline-services", "hotline-inspections"}


@SQLITE
async def test_api_changes_and_refuses_with_error_ids(svc: Services) -> None:
    """The same through the JSON API: 409 with a stable id for a queue still in the menu."""
    orlov = await _staff_id(svc, "orlov")
    async with svc.sessions() as s, s.begin():
        s.add(ApiToken(name="ИТ", token_hash=token_hash("it-token"), staff_id=orlov))
    auth = {"Authorization": "Bearer it-token"}
    async with TestClient(TestServer(init_app(svc))) as client:
        put = await client.put("/api/v1/ivr/topics/2", headers=auth, json={
            "code": "state_services", "title": "Госуслуги", "queue": "hotline-services"})
        body = await put.json()
        assert put.status == 200 and body["before"]["title"] == "Государственные услуги"
        assert body["after"]["title"] == "Госуслуги"
        gone = await client.delete("/api/v1/ivr/queues/hotline-services", headers=auth)
        assert gone.status == 409 and (await gone.json())["id"] == "queue_in_menu"
        listed = await (await client.get("/api/v1/ivr", headers=auth)).json()
        assert {"digit": "2", "title": "Госуслуги"}.items() <= listed["topics"][1].items()


@SQLITE
async def test_cli_sets_a_calendar_day_and_a_topic(db_url: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``hotline calendar set`` and ``hotline topics set``: saved and audited as the CLI;
    an unknown queue refused with exit code 1."""
    env = hotline_environ(HOTLINE_DATABASE__URL=db_url,
                          HOTLINE_ASTERISK__CONFIG_DIR=str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # The CLI runs its own event loop, as from a shell: in a thread of its own here.
    for argv, code in ((["calendar", "set", "2026-12-31", "--kind", "holiday",
                         "--note", "новогодний день"], 0),
                       (["topics", "set", "8", "--title", "Жильё", "--code", "housing",
                         "--queue", "hotline-general"], 0),
                       (["topics", "set", "9", "--title", "Жильё", "--code", "housing",
                         "--queue", "nowhere"], 1)):
        assert await asyncio.to_thread(cli_main, argv) == code, argv
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        titles = list(await s.scalars(select(MenuTopic.title).where(MenuTopic.digit == "8")))
        who = list(await s.scalars(select(AuditEntry.remote_addr).where(
            AuditEntry.object_type.in_(["calendar_day", "menu_topic"]))))
    await engine.dispose()
    assert (titles, who) == (["Жильё"], ["cli", "cli"])


@SQLITE
async def test_a_taken_queue_name_is_refused_and_editing_says_what_changed(
    svc: Services, panel: TestClient
) -> None:
    """«Добавить очередь» with the general queue's name is refused (409), the general queue
    and the menu untouched, the form kept; «Изменить» opens the queue filled in and the note
    after saving names what changed."""
    csrf = await log_in(panel, "orlov")
    taken = await panel.post("/panel/admin/ivr/queues", data={
        "_csrf": csrf, "name": "hotline-general", "title": "Новая очередь",
        "strategy": "ringall", "service_level_seconds": "20"})
    page = await taken.text()
    assert taken.status == 409 and "«hotline-general» уже есть" in page
    assert 'value="Новая очередь"' in page and '<details class="box" open>' in page
    assert "Новая очередь" not in {q.title for q in (await svc.menu.reload(svc)).queues}
    shown = await (await panel.get("/panel/admin/ivr?queue=hotline-general")).text()
    assert 'action="/panel/admin/ivr/queues/hotline-general/edit"' in shown
    assert re.search(r'<option value="rrmemory" selected>', shown)
    edited = await panel.post("/panel/admin/ivr/queues/hotline-general/edit", data={
        "_csrf": csrf, "title": "Общая очередь", "strategy": "rrmemory",
        "service_level_seconds": "30"})
    assert edited.status == 200 and ("Изменено: очередь «Общая очередь» — норматив ответа "
                                     "(секунд): «20» → «30»." in await edited.text())


@SQLITE
async def test_removals_ask_first_and_an_edit_is_filled_in(
    svc: Services, panel: TestClient
) -> None:
    """«Убрать» / «Удалить» only ask (the item stays) until the confirmation is sent; then
    a note says it is done. «Изменить» fills the topic's form with all it holds."""
    csrf = await log_in(panel, "orlov")
    asked = await panel.post("/panel/admin/ivr/topics/6/delete", data={"_csrf": csrf})
    page = await asked.text()
    assert asked.status == 200 and "Убрать из меню пункт 6 «Проверки»?" in page
    assert '<input type="hidden" name="confirm" value="1">' in page
    assert "6" in {t.digit for t in (await svc.menu.reload(svc)).ivr.topics}
    done = await panel.post("/panel/admin/ivr/topics/6/delete",
                            data={"_csrf": csrf, "confirm": "1"})
    assert "Удалено: пункт меню «Проверки»." in await done.text()
    assert "6" not in {t.digit for t in (await svc.menu.reload(svc)).ivr.topics}
    gone = "/panel/admin/ivr/queues/hotline-inspections/delete"   # nothing leads there now
    assert "Удалить очередь «Проверки»?" in await (await panel.post(gone, data={
        "_csrf": csrf})).text()
    assert "Удалено: очередь «Проверки»." in await (await panel.post(gone, data={
        "_csrf": csrf, "confirm": "1"})).text()
    form = await (await panel.get("/panel/admin/ivr?topic=2")).text()
    for filled in ('name="old_digit" value="2"', "<option selected>2</option>",
                   'value="Государственные услуги"', 'value="state_services"',
                   '<option value="queue" selected>',
                   '<option value="hotline-services" selected>'):
        assert filled in form, filled


@SQLITE
async def test_forms_keep_what_was_typed_after_a_refusal(
    svc: Services, panel: TestClient
) -> None:
    """The topic, skill and calendar forms come back with the reason and the typed values
    (422), not a bare redirect."""
    csrf = await log_in(panel, "orlov")
    petrov = await _staff_id(svc, "petrov")
    cases = (("/panel/admin/ivr/topics", {"digit": "8", "title": "Пенсии", "code": "Пенсии",
                                          "action": "queue", "queue": "hotline-support"},
              ("Служебный код пункта", 'value="Пенсии"', "<option selected>8</option>")),
             ("/panel/admin/ivr/skills", {"staff_id": str(petrov), "queue": "hotline-support",
                                          "penalty": "42"},
              ("Приоритет: от 0 до 10", 'value="42"',
               f'<option value="{petrov}" selected>')),
             ("/panel/admin/ivr/calendar", {"day": "2026-12-30", "kind": "short",
                                            "closes_at": "", "note": "перед праздником"},
              ("до которого часа", 'value="2026-12-30"', 'value="перед праздником"',
               '<option value="short" selected>')))
    for path, fields, shown in cases:
        refused = await panel.post(path, data={"_csrf": csrf, **fields})
        page = await refused.text()
        assert refused.status == 422, path
        for part in shown:
            assert part in page, (path, part)


async def test_hotline_status_tells_the_menu_and_days_the_database_holds(svc: Services) -> None:
    """`hotline status` answers from what the administrator set up, not the settings' seed:
    a renamed topic is listed, and a one-off closure makes the day closed."""
    await svc.menu.reload(svc)   # seeds the database from the settings
    async with svc.sessions() as s, s.begin():
        topic = await s.scalar(select(MenuTopic).where(MenuTopic.digit == "2"))
        assert topic is not None
        topic.title = "Пенсии и пособия"
    lines = await status_lines(svc.settings, PANEL_NOW)
    assert lines[0].startswith("Hotline:    open now")
    assert "              2 — Пенсии и пособия" in lines
    async with svc.sessions() as s, s.begin():
        s.add(CalendarDay(day=date(2026, 11, 25), kind="closure", note="Авария"))
    assert (await status_lines(svc.settings, PANEL_NOW))[0].startswith("Hotline:    closed now")
