"""Scheduled jobs: isolated failures; the knowledge-base scripts rendered ahead of calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from ivr.db.models import Appeal, AppealStatus, KbArticle
from ivr.demo import seed_demo
from ivr.phrases import appeal_status_text
from ivr.scheduler import Periodic, Scheduler
from ivr.services.appeals import render_statuses
from ivr.services.container import Services
from ivr.services.kb import refresh_scripts
from ivr.settings import Database, Settings
from ivr.simulate import wait_until


async def test_a_failing_job_is_retried_and_does_not_stop_others(settings: Settings) -> None:
    runs = {"bad": 0, "good": 0}

    async def bad(_: Services) -> None:
        runs["bad"] += 1
        raise RuntimeError("deliberate")

    async def good(_: Services) -> None:
        runs["good"] += 1

    services = Services.create(settings)
    scheduler = Scheduler(services, [Periodic("bad", 0.01, bad), Periodic("good", 0.01, good)])
    await scheduler.start()
    try:
        await wait_until(lambda: _all_ran(runs, 3), 5, "both jobs ran repeatedly")
    finally:
        await scheduler.close()
        await services.close()
    assert scheduler._tasks == []
    # /metrics counts the failed runs (issue 28).
    assert services.metrics.jobs["bad"].failures >= 3
    assert services.metrics.jobs["good"].failures == 0


async def _all_ran(runs: dict[str, int], n: int) -> bool:
    await asyncio.sleep(0)
    return all(v >= n for v in runs.values())


async def _seeded_services(settings: Settings, sqlite_url: str, recordings: Path) -> Services:
    """Demo data in a fresh SQLite database, prompts rendered into a fresh folder."""
    settings = settings.model_copy(update={
        "database": Database(url=sqlite_url),
        "tts": settings.tts.model_copy(update={"recordings_dir": recordings}),
    })
    await seed_demo(settings)
    return Services.create(settings)


async def test_kb_scripts_are_rendered_ahead_of_calls(settings: Settings, sqlite_url: str,
                                                      tmp_path: Path) -> None:
    services = await _seeded_services(settings, sqlite_url, tmp_path)
    try:
        async with services.sessions() as s, s.begin():
            greeting = await s.scalar(select(KbArticle).where(KbArticle.key == "script.greeting"))
            assert greeting is not None
            greeting.body = "Здравствуйте! Горячая линия министерства, новая редакция."
        await refresh_scripts(services)
        assert services.scripts["script.greeting"] == greeting.body
        cached = services.prompts.cached(greeting.body)
        assert cached is not None and cached.stat().st_size > 8000
        mtime = cached.stat().st_mtime_ns
        await refresh_scripts(services)
        assert cached.stat().st_mtime_ns == mtime, "unchanged scripts are not rendered again"
    finally:
        await services.close()


async def test_appeal_statuses_are_rendered_ahead_of_calls(settings: Settings, sqlite_url: str,
                                                           tmp_path: Path) -> None:
    """Issue 3: a caller asking for an appeal's status never waits on speech synthesis."""
    services = await _seeded_services(settings, sqlite_url, tmp_path)
    try:
        assert await render_statuses(services) >= 1
        assert await render_statuses(services) == 0, "nothing changed: nothing rendered"
        async with services.sessions() as s, s.begin():
            appeal = await s.scalar(select(Appeal).where(Appeal.reg_number == "1024"))
            assert appeal is not None
            appeal.status = AppealStatus.NOT_CONSIDERED
        assert await render_statuses(services) == 1
        async with services.sessions() as s:
            appeal = await s.scalar(select(Appeal).where(Appeal.reg_number == "1024"))
            assert appeal is not None
            text = appeal_status_text(services.prompts, appeal, executor=None, agency=None,
                                      tz=services.calendar.tz)
        assert services.prompts.cached(text) is not None
    finally:
        await services.close()
