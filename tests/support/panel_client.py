"""Staff in the panel over HTTP: log in, the form token, a call on an operator's phone."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

from aiohttp.test_utils import TestClient, TestServer
from panoramisk.message import Message
from sqlalchemy import select

from ivr.agent_states import AgentStates, recording
from ivr.ami import AMIClient
from ivr.db.models import AuditEntry
from ivr.demo import DEMO_PASSWORD
from ivr.runner import make_ami
from ivr.services.container import Services
from ivr.tracking import CallTracker
from web.app import init_app
from web.workspace import HUB

# Петров's phone (extension 1002) in the queues of the test Asterisk.
PETROV_MEMBER = "Local/1002@operator-sim/n"


@contextlib.asynccontextmanager
async def ready_operator(services: Services,
                         login: str = "petrov") -> AsyncIterator[tuple[TestClient, str]]:
    """The operator logged in to a panel with its own AMI link and the call tracker,
    ready in the queues; offline again afterwards. Yields the client and the form token."""
    listener, panel_ami = make_ami(services.settings), make_ami(services.settings)
    CallTracker(services, listener)
    AgentStates(listener, recording(services.recorder))
    await listener.start()
    await panel_ami.start()
    await listener.wait_connected(10)
    await panel_ami.wait_connected(10)
    try:
        async with TestClient(TestServer(init_app(services, panel_ami))) as client:
            await client.post("/login", data={"login": login, "password": DEMO_PASSWORD,
                                              "next": "/panel/workspace"})
            page = await (await client.get("/panel/workspace")).text()
            found = re.search(r'name="_csrf" value="([^"]+)"', page)
            assert found is not None, "no form token on the workspace"
            csrf = found.group(1)
            ready = await client.post("/panel/workspace/status", allow_redirects=False,
                                      data={"_csrf": csrf, "state": "ready"})
            assert ready.status == 303 and "error" not in ready.headers["Location"]
            try:
                yield client, csrf
            finally:
                await client.post("/panel/workspace/status", data={"_csrf": csrf,
                                                                   "state": "offline"})
    finally:
        await panel_ami.close()
        await listener.close()


async def member_state(ami: AMIClient, member: str = PETROV_MEMBER,
                       queue: str = "hotline-services") -> tuple[str, str]:
    """(Paused, PausedReason) of a queue member, as Asterisk has it."""
    status = await ami.action({"Action": "QueueStatus", "Queue": queue, "Member": member},
                              as_list=True)
    [found] = [m for m in status if m.get("Event") == "QueueMember"]
    return str(found.get("Paused")), str(found.get("PausedReason") or "")


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
