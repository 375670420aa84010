"""Issue 28's check for the IVR part, in Chromium on the running panel with the real
Asterisk: the administrator creates a queue and a menu topic and puts an operator on the
queue; the operator goes ready; a simulated caller hears the new topic in the menu (the
menu prompt the AGI plays is the one rendered from the topics' titles, R-H1), presses its
digit and reaches that operator through the new queue."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.asterisk_queues import apply_queues
from ivr.db.models import Staff
from ivr.demo import DEMO_PASSWORD
from ivr.runner import make_ami
from ivr.services.menu import seed_queues
from ivr.simulate import EventRecorder, caller_channel, is_event, place_call, press
from ivr.tracking import CallTracker
from web.app import init_app

from .conftest import Stack
from .support.browser import console_errors
from .support.smtp import free_port

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest_asyncio.fixture
async def panel(seeded: Stack) -> AsyncIterator[tuple[str, AMIClient]]:
    """The panel with its own AMI link and the call tracker, as ``hotline serve`` runs
    them; afterwards the test Asterisk's queues are the settings' again."""
    listener, panel_ami = make_ami(seeded.settings), make_ami(seeded.settings)
    CallTracker(seeded.services, listener)
    runner = web.AppRunner(init_app(seeded.services, panel_ami))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    for client in (listener, panel_ami):
        await client.start()
        await client.wait_connected(10)
    yield f"http://127.0.0.1:{port}", panel_ami
    await apply_queues(seeded.settings, seed_queues(seeded.settings.ivr), panel_ami)
    await runner.cleanup()
    await panel_ami.close()
    await listener.close()


async def _logged_in(browser: Browser, base: str, login: str, path: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{base}{path}")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    return page


async def _set_up_pensions(admin: Page, petrov_id: int) -> None:
    """A queue, a topic at digit 7 leading to it, Петров serving it — all in the panel."""
    await admin.click("#queue-form >> xpath=.. >> summary")
    await admin.fill("#queue-form input[name=name]", "hotline-pensions")
    await admin.fill("#queue-form input[name=title]", "Пенсии")
    await admin.select_option("#queue-form select[name=strategy]", "ringall")
    await admin.click("#queue-form button[type=submit]")
    await expect(admin.locator("#queue-hotline-pensions")).to_contain_text("всем сразу")
    await admin.click("#topic-form >> xpath=.. >> summary")
    await admin.select_option("#topic-form select[name=digit]", "7")
    await admin.fill("#topic-form input[name=title]", "Пенсионные вопросы")
    await admin.fill("#topic-form input[name=code]", "pensions")
    await admin.select_option("#topic-form select[name=queue]", "hotline-pensions")
    await admin.click("#topic-form button[type=submit]")
    await expect(admin.locator("#topic-7")).to_contain_text("Пенсии")
    await admin.click("text=Очереди операторов")
    await admin.select_option("#skill-form select[name=staff_id]", str(petrov_id))
    await admin.select_option("#skill-form select[name=queue]", "hotline-pensions")
    await admin.click("#skill-form button[type=submit]")
    await expect(admin.locator(f"#operator-{petrov_id}")).to_contain_text("приоритет 0")


async def test_admin_sets_up_a_topic_and_the_operator_takes_its_call(
    seeded: Stack, ami: AMIClient, events: EventRecorder,
    panel: tuple[str, AMIClient], browser: Browser
) -> None:
    base, _ = panel
    services = seeded.services
    async with services.sessions() as s:
        petrov_id = int(await s.scalar(select(Staff.id).where(Staff.login == "petrov")) or 0)
    admin = await _logged_in(browser, base, "orlov", "/panel/admin/ivr")
    problems = console_errors(admin)
    await _set_up_pensions(admin, petrov_id)
    petrov = await _logged_in(browser, base, "petrov", "/panel/workspace")
    await petrov.click("button[value=ready]")
    await expect(petrov.locator("#live")).to_have_text("Ожидание звонка…")
    try:
        # * during the greeting asks for the menu, so the caller hears all of it.
        call = await place_call(ami, caller="79005550101", number="88001234567", dtmf="*",
                                delay=0.5, hold=20)
        assert "Пенсионные вопросы — 7." in services.prompts.texts["menu"]
        menu_file = services.prompts.path("menu")
        await events.wait_for(lambda e: call.ours(e) and is_event("AGIExecStart")(e)
                              and menu_file in str(e.get("Command", "")), 30, "menu played")
        caller = caller_channel(events, call)
        await press(ami, caller, "7")
        await events.wait_for(lambda e: call.ours(e) and is_event(
            "AgentConnect", Queue="hotline-pensions", MemberName="1002")(e), 30,
            "Петров answers from the new queue")
        await ami.action({"Action": "Hangup", "Channel": caller})
    finally:
        await petrov.click("button[value=offline]")
    assert problems == []
