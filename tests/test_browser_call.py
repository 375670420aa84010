"""The whole hotline in a real browser (issue 5's "done when"): Chromium (Playwright) on the
running panel, a real simulated call through the real Asterisk.

The operator (Петров, phone 1002) logs in and goes ready; a citizen calls; the screen-pop
shows her appeal and her reception booking; the operator fills the journal and transfers
the call from the panel to Сидорова (1003), whose own panel pops the call; she transfers
it back; the third transfer is refused in the UI; the caller rates by DTMF and the rating is
on the supervisor's dashboard; the audit log lists who viewed the citizen's card.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Dialog, Page, expect
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import (
    Call,
    JournalEntry,
    Quality,
    Rating,
    Staff,
    Transfer,
    TransferOutcome,
)
from ivr.demo import DEMO_PASSWORD
from ivr.runner import make_ami
from ivr.settings import PROJECT_ROOT
from ivr.simulate import EventRecorder, caller_channel, is_event, place_call, press, wait_until
from ivr.tracking import CallTracker
from web.app import init_app

from .conftest import Stack
from .support.browser import csp_violations
from .support.smtp import free_port
from .test_transfers import _talking

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
CITIZEN = "79001234567"          # the demo's Морозова: appeal 1024, a booking with the minister
SCREENS = PROJECT_ROOT / "var" / "test" / "screens"


@pytest_asyncio.fixture
async def panel(seeded: Stack) -> AsyncIterator[str]:
    """The panel with its own AMI link, and the call tracker, as ``hotline serve`` runs them."""
    listener, panel_ami = make_ami(seeded.settings), make_ami(seeded.settings)
    CallTracker(seeded.services, listener)
    runner = web.AppRunner(init_app(seeded.services, panel_ami))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await listener.start()
    await panel_ami.start()
    await listener.wait_connected(10)
    await panel_ami.wait_connected(10)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await panel_ami.close()
    await listener.close()


async def _logged_in(browser: Browser, base: str, login: str, path: str) -> Page:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(f"{base}{path}")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    return page


async def _transfer(page: Page, extension: str, note: str = "") -> None:
    await page.click("#tab-transfer")   # the card's panes are tabs of one area
    await page.select_option("#transfer-form select[name=extension]", extension)
    await page.fill("#transfer-form input[name=note]", note)
    await page.click("#transfer-form button[type=submit]")


async def test_call_screen_pop_journal_two_transfers_third_refused_rating_on_dashboard(
    seeded: Stack, ami: AMIClient, events: EventRecorder, panel: str, browser: Browser
) -> None:
    services = seeded.services
    SCREENS.mkdir(parents=True, exist_ok=True)
    petrov = await _logged_in(browser, panel, "petrov", "/panel/workspace")
    sidorova = await _logged_in(browser, panel, "sidorova", "/panel/workspace")
    # A script, style or frame the Content-Security-Policy refused is a console error.
    problems = [csp_violations(petrov), csp_violations(sidorova)]
    await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": "120"})
    await petrov.click("button[value=ready]")          # in every topic queue, unpaused
    await expect(petrov.locator(".error")).to_have_count(0)
    try:
        call = await place_call(ami, caller=CITIZEN, number="88001234567", dtmf="2", hold=180)
        seen: set[str] = set()
        first_leg = await _talking(events, call, "1002", seen, timeout=60)
        assert first_leg

        # Screen-pop: the citizen's card, with her appeal and her booking (R-H3: greeting).
        await expect(petrov.locator("#citizen")).to_contain_text("Морозова Татьяна", timeout=5000)
        await expect(petrov.locator("#card-appeals")).to_contain_text("1024")
        # The menu path and topic by title, never a code (issue 29).
        title = next(t.title for t in services.settings.ivr.topics if t.code == "state_services")
        await expect(petrov.locator("#ivr-path")).to_contain_text(f"Тема: {title}")
        await expect(petrov.locator("#ivr-path")).not_to_contain_text("state_services")
        await expect(petrov.locator("#card-bookings")).to_contain_text("Министр")
        await expect(petrov.locator(".greeting")).to_contain_text(
            "Министерство труда и социальной защиты Демонстрационной области, "
            "консультант горячей линии Сергей Игоревич")

        # The journal (R-H6), with a knowledge-base article found beside the call.
        await petrov.fill("#kb-search input[name=q]", "компенсация жилья")
        await petrov.click("#kb-search button")
        await petrov.click("#kb-results button")
        # «в журнал» fills the journal's field and puts the cursor there (issue 29).
        await expect(petrov.locator("#journal-form input[name=article_id]")).to_be_focused()
        await expect(petrov.locator("#journal-form input[name=article_id]")).not_to_have_value("")
        await petrov.fill("#journal-form textarea[name=question]", "Как получить компенсацию")
        await petrov.fill("#journal-form textarea[name=answer]", "Рассказал о порядке подачи")
        await petrov.click("#journal-form button[type=submit]")
        await expect(petrov.locator("#journal-result")).to_have_text(
            "Запись в журнале сохранена.")

        # She also wants to see the deputy minister: booked from the free times, beside
        # the call (R-P1), the reminder by phone.
        await petrov.click("#tab-book")
        await petrov.click("#load-slots")
        await expect(petrov.locator("#book-slots option").first).not_to_have_attribute(
            "value", "")
        await petrov.select_option("#book-slots", index=1)
        await petrov.fill("#book-form input[name=topic]", "Компенсация за жильё")
        await petrov.click("#book-form button[type=submit]")
        await expect(petrov.locator("#book-result")).to_contain_text("Записан на")
        # The card's bookings show it at once; the journal typed above is still there.
        await expect(petrov.locator("#card-bookings")).to_contain_text("Компенсация за жильё")
        await expect(petrov.locator("#card-bookings")).to_contain_text("Министр")
        await expect(petrov.locator("#journal-form textarea[name=question]")).to_have_value(
            "Как получить компенсацию")
        await petrov.screenshot(path=str(SCREENS / "operator-workspace.png"), full_page=True)
        # She changes her mind: cancelled from the card after a confirmation (a slip of the
        # mouse cancels nothing), and the row says so at once.
        booked = petrov.locator("#card-bookings tr", has_text="Компенсация за жильё")
        asked: list[str] = []

        async def confirm(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()
        petrov.once("dialog", confirm)
        await booked.locator(".cancel-booking").click()
        await expect(booked).to_contain_text("отменена")
        assert asked and asked[0].startswith("Отменить запись №")
        await expect(booked).to_contain_text("отменена")
        await expect(booked.locator(".cancel-booking")).to_have_count(0)

        # Transfer 1: Петров → Сидорова, from the panel, with a note for her whisper.
        await _transfer(petrov, "1003", "уточнить сроки")
        await expect(petrov.locator("#transfers-used")).to_have_text("1")
        await _talking(events, call, "1003", seen, timeout=60)
        await expect(sidorova.locator("#citizen")).to_contain_text("Морозова", timeout=5000)
        await expect(sidorova.locator("#transfers-used")).to_have_text("1")
        # R-H9 beside the greeting; her own journal entry (R-H6): the transfer adds one.
        await expect(sidorova.locator(".limits")).to_contain_text(
            "не заполняет за него заявления")
        await sidorova.fill("#journal-form textarea[name=question]", "Сроки выплаты")
        await sidorova.select_option("#journal-form select[name=outcome]", "transferred")
        await sidorova.click("#journal-form button[type=submit]")
        await expect(sidorova.locator("#journal-result")).to_contain_text(
            "Запись в журнале сохранена.")

        # Transfer 2: Сидорова → back to Петров, whose leg ends soon after: the rating.
        await ami.action({"Action": "Setvar", "Variable": "OP_TALK_1002", "Value": "16"})
        await _transfer(sidorova, "1002")
        await expect(sidorova.locator("#transfers-used")).to_have_text("2")
        await _talking(events, call, "1002", seen, timeout=60)
        # Her part ended (a transferred leg: no AgentComplete, the whisper's hang-up
        # handler says so): her page says so, and the automatic wrap-up follows.
        await expect(sidorova.locator("#live")).to_contain_text(
            re.compile("Разговор завершён|Поствызывная обработка"), timeout=10000)

        # Transfer 3: refused in the UI (the same rule as the dialplan gate), and recorded.
        await expect(petrov.locator("#transfers-used")).to_have_text("2", timeout=5000)
        await _transfer(petrov, "1003")
        await expect(petrov.locator("#transfer-result")).to_contain_text("Перевод невозможен")

        # The caller rates (R-H8): answer received, satisfied.
        caller = caller_channel(events, call)
        prompts = services.prompts
        for prompt, key in (("rating_answer", "1"), ("rating_quality", "1")):
            path = prompts.path(prompt)
            await events.wait_for(lambda e, p=path: call.ours(e) and is_event("AGIExecStart")(
                e) and p in str(e.get("Command", "")), 60, prompt)
            await press(ami, caller, key)

        async def rated() -> Rating | None:
            async with services.sessions() as s:
                return await s.scalar(select(Rating).join(Call).where(
                    Call.linkedid == call.linkedid))
        rating = await wait_until(rated, 30, "rating stored")
    finally:
        await petrov.click("button[value=offline]")
        for name in ("OP_TALK", "OP_TALK_1002"):
            await ami.action({"Action": "Setvar", "Variable": name, "Value": ""})
    async with services.sessions() as s:
        petrov_id = await s.scalar(select(Staff.id).where(Staff.login == "petrov"))
        transfers = list(await s.scalars(select(Transfer.outcome).join(Call).where(
            Call.linkedid == call.linkedid).order_by(Transfer.seq)))
        journal = (await s.execute(
            select(Staff.login, JournalEntry.question).select_from(JournalEntry)
            .join(Call, Call.id == JournalEntry.call_id)
            .join(Staff, Staff.id == JournalEntry.operator_id)
            .where(Call.linkedid == call.linkedid).order_by(JournalEntry.id))).tuples().all()
    assert (rating.answer_received, rating.quality, rating.operator_id) == (
        True, Quality.SATISFIED, petrov_id)
    assert transfers == [TransferOutcome.COMPLETED, TransferOutcome.COMPLETED,
                         TransferOutcome.REFUSED]
    assert journal == [("petrov", "Как получить компенсацию"), ("sidorova", "Сроки выплаты")]
    assert problems == [[], []]

    # The supervisor's dashboard: the rating, for Петров; the refused third.
    boss = await _logged_in(browser, panel, "smirnova", "/panel/supervisor")
    row = boss.locator("#by_operator tr", has_text="Петров Сергей")
    # The figures are refreshed in the background once 30 s old: the page shows the last
    # ones with their time, and a reload a moment later the new ones.
    for _ in range(20):
        if await row.count() and "1 (100 %)" in await row.inner_text():
            break
        await asyncio.sleep(0.5)
        await boss.reload()
    await expect(row).to_contain_text("1 (100 %)")
    await expect(boss.locator("main")).to_contain_text("Отказано в третьем переводе: 1")
    await boss.screenshot(path=str(SCREENS / "supervisor-dashboard.png"), full_page=True)
    await boss.goto(f"{panel}/panel/audit?object=citizen_card")
    audit = boss.locator("#audit")
    await expect(audit).to_contain_text("Петров С. И.")
    await expect(audit).to_contain_text("Сидорова Е. В.")
