"""Behind nginx every request comes from 127.0.0.1: the client's address is the proxy's
X-Real-IP, believed only from ``[panel] trusted_proxies``. A forged header from anyone else
changes neither the login limit per address nor the audit log's address; ``/metrics``
judges the connection's own peer whatever the header says."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_network

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from ivr.db.models import AuditEntry
from ivr.demo import DEMO_PASSWORD, seed_demo
from ivr.settings import Settings
from web import auth
from web.app import init_app

from ..support.records import services_on

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def _login(client: TestClient, login: str, real_ip: str,
                 password: str = "wrong password") -> int:
    answer = await client.post("/login", data={"login": login, "password": password},
                               headers={"X-Real-IP": real_ip}, allow_redirects=False)
    return answer.status


async def test_x_real_ip_counts_only_from_a_trusted_proxy(
    settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "SLOWDOWN_SECONDS", 0.001)
    svc = services_on(settings, db_url, NOW, panel={
        "login_failures_per_address": 2, "trusted_proxies": [ip_network("127.0.0.1/32")]},
        metrics={"allow": [ip_network("203.0.113.0/24")]})
    await seed_demo(svc.settings, today=NOW.date())
    server = TestServer(init_app(svc), host="127.0.0.1")
    stranger = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    try:
        async with TestClient(server) as proxy, TestClient(server, connector=stranger) as other:
            # The untrusted peer's forged addresses are all one address: its own.
            assert await _login(other, "nobody1", "203.0.113.1") == 401
            assert await _login(other, "nobody2", "203.0.113.2") == 401
            assert await _login(other, "petrov", "203.0.113.3", DEMO_PASSWORD) == 429
            # Through the trusted proxy each client has its own limit.
            assert await _login(proxy, "nobody3", "198.51.100.7") == 401
            assert await _login(proxy, "nobody4", "198.51.100.7") == 401
            assert await _login(proxy, "petrov", "198.51.100.7", DEMO_PASSWORD) == 429
            assert await _login(proxy, "petrov", "198.51.100.8", DEMO_PASSWORD) == 303
            assert await _login(proxy, "sidorova", "not-an-address", DEMO_PASSWORD) == 303
            for client in (proxy, other):
                metrics = await client.get("/metrics", headers={"X-Real-IP": "203.0.113.5"})
                assert metrics.status == 403, "the header never opens /metrics"
        await svc.recorder.sync()
        async with svc.sessions() as s:
            seen = (await s.execute(select(AuditEntry.object_id, AuditEntry.remote_addr).where(
                AuditEntry.action.in_(("login_failed", "login"))).order_by(
                AuditEntry.id))).tuples().all()
    finally:
        await svc.close()
    assert [remote for _, remote in seen] == [
        "127.0.0.2", "127.0.0.2", "198.51.100.7", "198.51.100.7", "198.51.100.8",
        "127.0.0.1"]
