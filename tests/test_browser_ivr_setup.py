"""Issue 28's first check, in Chromium on the running panel with the real Asterisk, from
an empty database (no ``hotline demo``): ``hotline init`` makes the administrator, who
creates a department, an operator with a phone extension serving two queues, a menu topic
and a reception official with a weekly schedule (R-P1). The operator logs in with the
password the panel showed once and goes ready — into their two queues only; a simulated
caller hears the new topic in the menu (spoken from the topics' titles, R-H1), presses its
digit and reaches that operator."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from ivr.ami import AMIClient
from ivr.cli import build_parser
from ivr.runner import make_ami
from ivr.simulate import EventRecorder, caller_channel, is_event, place_call, press
from ivr.tracking import CallTracker
from web.app import init_app

from .conftest import Stack
from .support.browser import console_errors
from .support.smtp import free_port

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

OPERATOR_QUEUES = {"hotline-services", "hotline-support"}


@pytest_asyncio.fixture
async def panel(stack: Stack) -> AsyncIterator[str]:
    """The panel with its own AMI link and the call tracker, as ``hotline serve`` runs
    them, on the stack's empty database."""
    listener, panel_ami = make_ami(stack.settings), make_ami(stack.settings)
    CallTracker(stack.services, listener)
    runner = web.AppRunner(init_app(stack.services, panel_ami))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    for client in (listener, panel_ami):
        await client.start()
        await client.wait_connected(10)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await panel_ami.close()
    await listener.close()


async def _hotline_init(stack: Stack, capsys: pytest.CaptureFixture[str]) -> str:
    """The real verb, in a worker thread (it runs its own event loop); its password."""
    args = build_parser().parse_args(["init", "--login", "admin"])
    assert await asyncio.to_thread(args.func, stack.settings, args) == 0
    return re.findall(r"^password: (\S+)$", capsys.readouterr().out, re.M)[0]


async def _logged_in(browser: Browser, base: str, login: str, password: str,
                     path: str) -> Page:
    page = await (await browser.new_context(locale="ru-RU")).new_page()
    await page.goto(f"{base}{path}")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    return page


async def _add_employee(admin: Page, base: str, login: str, fields: dict[str, str],
                        role: str, extension: str = "") -> tuple[int, str]:
    """The employee's id and the password the panel shows this once."""
    await admin.goto(f"{base}/panel/admin/staff")
    await admin.fill("#staff-new input[name=login]", login)
    for name, value in fields.items():
        await admin.fill(f"#staff-new input[name={name}]", value)
    await admin.select_option("#staff-new select[name=role]", role)
    await admin.select_option("#staff-new select[name=department_id]",
                              label="Отдел социальной поддержки")
    await admin.select_option("#staff-new select[name=extension]", extension)
    await admin.click("#staff-new button[type=submit]")
    password = await admin.locator("#shown-once dd code").nth(1).inner_text()
    card = await admin.get_attribute("text=Продолжить", "href") or ""
    return int(card.rsplit("/", 1)[1]), password


async def _set_up_the_ministry(admin: Page, base: str) -> str:
    """Everything through the panel's forms; the new operator's password."""
    await admin.fill("#department-new input[name=name]", "Отдел социальной поддержки")
    await admin.fill("#department-new input[name=short_name]", "Соцподдержка")
    await admin.click("#department-new button[type=submit]")
    # Beside the one `hotline init` made, nothing came with the database.
    await expect(admin.locator("section h2")).to_have_text(
        ["Администрирование горячей линии", "Отдел социальной поддержки"])
    operator_id, password = await _add_employee(
        admin, base, "belova", {"surname": "Белова", "first_name": "Ирина"}, "operator", "1001")
    await admin.goto(f"{base}/panel/admin/ivr/skills")
    for queue in sorted(OPERATOR_QUEUES):
        await admin.select_option("#skill-form select[name=staff_id]", str(operator_id))
        await admin.select_option("#skill-form select[name=queue]", queue)
        await admin.click("#skill-form button[type=submit]")
    # The queues' columns by name: general, inspections, services, support.
    await expect(admin.locator(f"#operator-{operator_id} td")).to_have_text(
        ["Белова И.", "1001", "—", "—", "приоритет 0", "приоритет 0"])
    await admin.goto(f"{base}/panel/admin/ivr")
    await admin.click("#topic-form >> xpath=.. >> summary")
    await admin.select_option("#topic-form select[name=digit]", "7")
    await admin.fill("#topic-form input[name=title]", "Пенсионные вопросы")
    await admin.fill("#topic-form input[name=code]", "pensions")
    await admin.select_option("#topic-form select[name=queue]", "hotline-support")
    await admin.click("#topic-form button[type=submit]")
    await expect(admin.locator("#topic-7")).to_contain_text("Пенсионные вопросы")
    await _add_official(admin, base)
    return password


async def _add_official(admin: Page, base: str) -> None:
    """A deputy minister receiving on Wednesdays (R-P1)."""
    deputy_id, _ = await _add_employee(admin, base, "sokolov", {
        "surname": "Соколов", "first_name": "Андрей", "position": "заместитель министра"},
        "department_head")
    await admin.goto(f"{base}/panel/admin/officials")
    await admin.select_option("#official-new select[name=staff_id]", str(deputy_id))
    await admin.fill("#official-new input[name=title]", "Заместитель министра")
    await admin.select_option("#official-new select[name=kind]", "deputy")
    await admin.click("#official-new button[type=submit]")
    await admin.select_option("#schedule-new select[name=weekday]", label="среда")
    await admin.click("#schedule-new button[type=submit]")
    await expect(admin.locator("#schedules li")).to_have_text(
        re.compile("^среда 14:00–16:00, по 30 мин."))


async def _queues_of(ami: AMIClient, extension: str) -> set[str]:
    reply = await ami.action({"Action": "QueueStatus"})
    return {m["Queue"] for m in reply
            if m.get("Event") == "QueueMember" and m.get("Name") == extension}


async def test_a_ministry_sets_up_from_an_empty_database_and_takes_a_call(
    stack: Stack, ami: AMIClient, events: EventRecorder, panel: str, browser: Browser,
    capsys: pytest.CaptureFixture[str]
) -> None:
    admin = await _logged_in(browser, panel, "admin", await _hotline_init(stack, capsys),
                             "/panel/admin/departments")
    problems = console_errors(admin)
    password = await _set_up_the_ministry(admin, panel)
    operator = await _logged_in(browser, panel, "belova", password, "/panel/workspace")
    problems += console_errors(operator)
    await operator.click("button[value=ready]")
    await expect(operator.locator("#live")).to_have_text("Ожидание звонка…")
    try:
        assert await _queues_of(ami, "1001") == OPERATOR_QUEUES
        # * during the greeting asks for the menu, so the caller hears all of it.
        call = await place_call(ami, caller="79005550101", number="88001234567", dtmf="*",
                                delay=0.5, hold=20)
        assert "Пенсионные вопросы — 7." in stack.services.prompts.texts["menu"]
        menu_file = stack.services.prompts.path("menu")
        await events.wait_for(lambda e: call.ours(e) and is_event("AGIExecStart")(e)
                              and menu_file in str(e.get("Command", "")), 30, "menu played")
        caller = caller_channel(events, call)
        await press(ami, caller, "7")
        await events.wait_for(lambda e: call.ours(e) and is_event(
            "AgentConnect", Queue="hotline-support", MemberName="1001")(e), 30,
            "Белова answers the new topic's call")
        await ami.action({"Action": "Hangup", "Channel": caller})
    finally:
        await operator.click("button[value=offline]")
    assert problems == []
