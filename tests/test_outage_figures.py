"""An outage shows in the supervisor's figures (issue 31): calls whose caller passed
agi-fail (the fallback to the general queue, R-H3) and calls recovered from Asterisk's
records are counted as such on the dashboard, beside the calls they also are."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient, TestServer

from ivr.db.models import Call, CallOutcome
from ivr.services.container import Services
from ivr.services.kpi import call_kpis
from web.app import init_app
from web.supervisor import FIGURES

from .support.panel_client import log_in

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


async def _calls(svc: Services) -> None:
    """Four calls this morning: one as usual, one that fell back while the service ran,
    two the service missed (down), recovered from the CDR, one of them after agi-fail."""
    flags = [(False, False), (True, False), (False, True), (True, True)]
    async with svc.sessions() as s, s.begin():
        for n, (fallback, recovered) in enumerate(flags):
            at = NOW - timedelta(minutes=10 + n)
            s.add(Call(linkedid=f"outage-{n}", caller_number=f"7900777000{n}",
                       started_at=at, queue_joined_at=at, ended_at=at + timedelta(minutes=1),
                       outcome=CallOutcome.ABANDONED, fallback=fallback, recovered=recovered))


async def test_fallbacks_and_recovered_calls_are_counted_and_shown(
        svc: Services, db_url: str) -> None:
    await _calls(svc)
    async with svc.sessions() as s:
        k = await call_kpis(s, NOW - timedelta(hours=1), NOW, service_level_seconds=20)
    assert (k.calls, k.abandoned, k.fallbacks, k.recovered) == (4, 4, 2, 2)

    async with TestClient(TestServer(init_app(svc))) as client:
        await log_in(client, "smirnova")
        assert client.app is not None
        client.app[FIGURES].cache.clear()   # warmed at start-up, before these calls
        page = await (await client.get("/panel/supervisor?period=today")).text()
    for figure in ("fallbacks", "recovered"):
        shown = re.search(rf'<dd id="kpi-{figure}" class="error">(\d+)</dd>', page)
        assert shown is not None and shown.group(1) == "2", figure
    assert "Сбой голосового меню" in page and "Восстановлены по записям АТС" in page
