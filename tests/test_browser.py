"""The panel in a real browser: Debian's Chromium driven by Playwright against the running
panel (issue 5's access rules, issue 6's intake and reception pages)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, expect
from sqlalchemy import select

from ivr.db.models import Appeal, AuditEntry, Booking
from ivr.demo import DEMO_PASSWORD, seed_demo
from ivr.services.container import Services
from ivr.settings import Settings
from web.app import init_app

from .support.browser import csp_violations
from .support.records import services_on
from .support.smtp import free_port

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest_asyncio.fixture
async def panel(settings: Settings, db_url: str) -> AsyncIterator[tuple[Services, str]]:
    svc = services_on(settings, db_url, NOW)
    await seed_demo(svc.settings, today=NOW.date())
    runner = web.AppRunner(init_app(svc))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield svc, f"http://127.0.0.1:{port}"
    await runner.cleanup()
    await svc.close()


async def test_head_registers_an_appeal_marks_it_urgent_and_books_a_reception(
    panel: tuple[Services, str], browser: Browser
) -> None:
    svc, base = panel
    page = await browser.new_page()
    problems = csp_violations(page)
    await page.goto(f"{base}/panel/appeals")
    await expect(page).to_have_url(re.compile(r"/login\?next=/panel/appeals$"))
    await page.fill("input[name=login]", "kuznetsov")
    await page.fill("input[name=password]", "wrong")
    await page.click("button[type=submit]")
    await expect(page.locator(".error")).to_contain_text("Неверное имя пользователя")
    await page.fill("input[name=login]", "kuznetsov")
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Обращения граждан")

    await page.click("text=Зарегистрировать обращение")
    await page.fill("input[name=reg_number]", "5555")
    await page.fill("input[name=registered_on]", "2026-11-24")
    await page.select_option("select[name=channel]", "state_portal")
    await page.fill("input[name=surname]", "Лебедева")
    await page.fill("input[name=phone]", "74951112233")
    await page.select_option("select[name=topic]", label="01.01 Пособия")
    await page.fill("textarea[name=text]", "Прошу разъяснить порядок")
    await page.click("button:has-text('Зарегистрировать')")
    await expect(page.locator("h1")).to_contain_text("Обращение № 5555")
    await expect(page.locator("#status")).to_have_text("зарегистрировано")

    await page.fill("input[name=reason]", "обращается повторно")
    await page.click("button:has-text('Признать срочным')")
    await expect(page.locator("h1")).to_contain_text("срочное")
    await expect(page.locator("dl").first).to_contain_text("01.12.2026")

    await page.click("nav >> text=Личный приём")
    await page.fill("input[name=phone]", "74951112233")
    await page.fill("input[name=topic]", "Пособие на ребёнка")
    await page.fill("input[name=accessibility_needs]", "индукционная петля")
    await page.click("button:has-text('Записать')")
    await expect(page.locator("table").first).to_contain_text("индукционная петля")
    await page.screenshot(path=str(svc.settings.tts.recordings_dir.parent / "receptions.png"))

    await svc.recorder.sync()
    async with svc.sessions() as s:
        appeal = await s.scalar(select(Appeal).where(Appeal.reg_number == "5555"))
        booking = await s.scalar(select(Booking).where(Booking.topic == "Пособие на ребёнка"))
        views = list(await s.scalars(select(AuditEntry.object_type).where(
            AuditEntry.action == "view")))
    assert appeal is not None and appeal.urgent
    assert booking is not None and booking.accessibility_needs == "индукционная петля"
    assert {"appeal", "appeal_list", "booking_list"} <= set(views)

    await page.click("button:has-text('Выйти')")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.goto(f"{base}/panel/appeals")
    await expect(page).to_have_url(re.compile(r"/login"))
    assert problems == []
