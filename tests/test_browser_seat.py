"""The operator's seat in Chromium at 1366×768 (issue 29): idle, ringing and in a call, the
call's controls within the screen without scrolling; the agent state and the clocks from
Asterisk's events; the supervisor's table of the operators' day. The screenshots land in
var/test/screens/ (docs/screenshots/ holds copies)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, ViewportSize, expect

from ivr.agent_states import AgentStates, recording
from ivr.ami import AMIClient
from ivr.demo import DEMO_PASSWORD
from ivr.runner import make_ami
from ivr.settings import PROJECT_ROOT
from ivr.simulate import EventRecorder, is_event, place_call
from ivr.tracking import CallTracker
from web.app import init_app

from .conftest import Stack
from .support.browser import console_errors
from .support.smtp import free_port

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
SCREENS = PROJECT_ROOT / "var" / "test" / "screens"
SCREEN: ViewportSize = {"width": 1366, "height": 768}
# What the operator must reach during a call without scrolling.
CALL_CONTROLS = ("#status button[value=ready]", "#status button[value=pause]", "#pause-reason",
                 "#to-survey", "#tab-journal", "#tab-transfer", "#tab-callback", "#tab-book",
                 "#journal-form button[type=submit]", "#kb-q")


@pytest_asyncio.fixture
async def panel(seeded: Stack) -> AsyncIterator[str]:
    """The panel with its own AMI link; the call tracker and the agent-state facts on
    another, as ``hotline serve`` runs them."""
    listener, panel_ami = make_ami(seeded.settings), make_ami(seeded.settings)
    CallTracker(seeded.services, listener)
    AgentStates(listener, recording(seeded.services.recorder))
    runner = web.AppRunner(init_app(seeded.services, panel_ami))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    for link in (listener, panel_ami):
        await link.start()
        await link.wait_connected(10)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await panel_ami.close()
    await listener.close()


async def _logged_in(browser: Browser, base: str, login: str, lands: str) -> Page:
    page = await (await browser.new_context(viewport=SCREEN)).new_page()
    await page.goto(f"{base}/login")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(re.escape(lands) + "$"))
    return page


async def _within_the_screen(page: Page) -> None:
    for selector in CALL_CONTROLS:
        box = await page.locator(selector).bounding_box()
        assert box is not None, f"{selector} is shown"
        assert box["y"] >= 0 and box["y"] + box["height"] <= SCREEN["height"], selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= SCREEN["width"], selector
        assert box["height"] >= 32 or selector == "#kb-q", f"{selector}: 32 px at least"
    sizes = await page.evaluate("[document.documentElement.scrollHeight, window.innerHeight,"
                                " document.documentElement.scrollWidth, window.innerWidth]")
    assert sizes[0] <= sizes[1] and sizes[2] <= sizes[3], f"the page scrolls: {sizes}"


async def test_the_seat_fits_one_screen_idle_ringing_and_in_a_call(
    seeded: Stack, ami: AMIClient, events: EventRecorder, panel: str, browser: Browser
) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    petrov = await _logged_in(browser, panel, "petrov", "/panel/workspace")
    problems = console_errors(petrov)
    await petrov.click("button[value=ready]")
    await expect(petrov.locator("#agent-state")).to_contain_text("Готов")
    await petrov.screenshot(path=str(SCREENS / "workspace-idle.png"))
    for name, value in (("OP_RING_1002", "2"), ("OP_TALK_1002", "3")):
        await ami.action({"Action": "Setvar", "Variable": name, "Value": value})
    try:
        call = await place_call(ami, caller="79001234567", number="88001234567", dtmf="2",
                                hold=15)
        # The card pops while the phone rings, before the answer (AgentCalled).
        await expect(petrov.locator("#live")).to_contain_text("Звонит: +7 900 123-45-67",
                                                              timeout=20000)
        await expect(petrov.locator("#citizen")).to_contain_text("Морозова")
        await petrov.screenshot(path=str(SCREENS / "workspace-ringing.png"))
        await expect(petrov.locator("#agent-state")).to_contain_text("Разговор", timeout=10000)
        await expect(petrov.locator("#call-timer")).to_have_text(re.compile(r"00:0\d"))
        await _within_the_screen(petrov)
        await petrov.screenshot(path=str(SCREENS / "workspace-call.png"))
        await events.wait_for(lambda e: call.ours(e) and is_event("AgentComplete")(e), 30,
                              "the conversation ended")
        # After the call: Asterisk has him paused for the journal, and the page says so.
        await expect(petrov.locator("#agent-state")).to_contain_text(
            "Поствызывная обработка", timeout=5000)
        await expect(petrov.locator("#wrapup-left")).to_contain_text("осталось")
        await petrov.reload()
        await expect(petrov.locator("#agent-state")).to_contain_text("Поствызывная обработка")
    finally:
        await petrov.click("button[value=offline]")
        for name in ("OP_RING_1002", "OP_TALK_1002"):
            await ami.action({"Action": "Setvar", "Variable": name, "Value": ""})
    await expect(petrov.locator("#agent-state")).to_contain_text("Не в очередях")
    assert problems == []

    await seeded.services.recorder.sync()   # the call's leg and the states, written
    # The facts carry Asterisk's real times; the stack's clock was pinned for the IVR's hours.
    seeded.services.clock = lambda: datetime.now(UTC)
    boss = await _logged_in(browser, panel, "smirnova", "/panel")
    await boss.goto(f"{panel}/panel/supervisor/operators")
    row = boss.locator("#operators-day tr", has_text="Петров")
    await expect(row).to_contain_text("Не в очередях")
    await expect(row.locator("td").nth(4)).to_have_text("1")   # calls
    await expect(row.locator("td").nth(5)).not_to_have_text("0 с")   # talk time
    await boss.screenshot(path=str(SCREENS / "supervisor-operators.png"))
