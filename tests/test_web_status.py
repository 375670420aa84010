"""The panel's health and status pages against a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from ivr.services.container import Services
from ivr.settings import Database, Settings
from web.app import init_app


@pytest_asyncio.fixture
async def client(settings: Settings, sqlite_url: str) -> AsyncIterator[TestClient]:
    services = Services.create(
        settings.model_copy(update={"database": Database(url=sqlite_url)}))
    async with TestClient(TestServer(init_app(services))) as c:
        yield c
    await services.close()


async def test_healthz_and_status_page(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"database": "ok"}
    page = await client.get("/")
    html = await page.text()
    assert page.status == 200
    assert "Министерство труда и социальной защиты" in html
    assert "Звонков сегодня</dt><dd>0</dd>" in html


async def test_healthz_reports_a_dead_database(settings: Settings, tmp_path) -> None:
    broken = Services.create(settings.model_copy(update={"database": Database(
        url="postgresql+asyncpg://nobody@127.0.0.1:1/none")}))
    async with TestClient(TestServer(init_app(broken))) as c:
        resp = await c.get("/healthz")
        assert resp.status == 503
        page = await c.get("/")
        assert page.status == 200
        assert "база данных недоступна" in await page.text()
    await broken.close()
