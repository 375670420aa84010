"""Staff in the panel over HTTP: log in, the form token, a call on an operator's phone."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from panoramisk.message import Message
from sqlalchemy import select

from ivr.db.models import AuditEntry
from ivr.demo import DEMO_PASSWORD
from ivr.services.container import Services
from web.workspace import HUB


async def log_in(client: TestClient, login: str, password: str = DEMO_PASSWORD) -> str:
    """A fresh session for ``login`` (the previous one logged out); its CSRF token."""
    client.session.cookie_jar.clear()
    resp = await client.post("/login", data={"login": login, "password": password,
                                             "next": "/panel"}, allow_redirects=False)
    assert resp.status == 303, f"{login} logs in"
    page = await (await client.get("/panel")).text()
    found = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert found, "every panel page carries the form token"
    return found.group(1)


def put_on_call(client: TestClient, extension: str, linkedid: str, caller: str) -> None:
    """The AgentConnect Asterisk sends when ``extension`` answers a queue call: the panel's
    hub then knows the operator's current call, as in production."""
    assert client.app is not None
    client.app[HUB]._on_connect(Message({
        "Event": "AgentConnect", "Interface": f"PJSIP/{extension}", "Linkedid": linkedid,
        "CallerIDNum": caller, "Queue": "hotline-services",
        "DestChannel": f"PJSIP/{extension}-00000001"}))


async def audit_rows(svc: Services) -> list[tuple[str, str, str]]:
    """(action, object type, details) of every audit entry so far."""
    await svc.recorder.sync()
    async with svc.sessions() as s:
        rows = (await s.execute(select(AuditEntry.action, AuditEntry.object_type,
                                       AuditEntry.details).order_by(AuditEntry.id))).all()
    return [(a, o, d) for a, o, d in rows]
