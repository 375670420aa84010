"""Automatic wrap-up (issue 5, R-H6), through the real Asterisk: after a queue call the
operator is paused until the call's journal is saved, or until ``panel.wrapup_seconds``
pass; then ready again. A state the operator chose meanwhile is never undone."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from ivr.ami import AMIClient
from ivr.demo import DEMO_PASSWORD
from ivr.runner import make_ami
from ivr.simulate import EventRecorder, is_event, place_call, wait_until
from ivr.tracking import CallTracker
from web.app import init_app
from web.workspace import AUTO_WRAPUP_REASON

from .conftest import Stack

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MEMBER = "Local/1002@operator-sim/n"   # Петров's phone in the queues


@pytest_asyncio.fixture
async def petrov(seeded: Stack) -> AsyncIterator[tuple[TestClient, str]]:
    """Петров logged in to a panel with its own AMI link and the call tracker, ready."""
    listener, panel_ami = make_ami(seeded.settings), make_ami(seeded.settings)
    CallTracker(seeded.services, listener)
    await listener.start()
    await panel_ami.start()
    await listener.wait_connected(10)
    await panel_ami.wait_connected(10)
    async with TestClient(TestServer(init_app(seeded.services, panel_ami))) as client:
        await client.post("/login", data={"login": "petrov", "password": DEMO_PASSWORD,
                                          "next": "/panel/workspace"})
        page = await (await client.get("/panel/workspace")).text()
        csrf = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        ready = await client.post("/panel/workspace/status", allow_redirects=False,
                                  data={"_csrf": csrf, "state": "ready"})
        assert ready.status == 303 and "error" not in ready.headers["Location"]
        try:
            yield client, csrf
        finally:
            await client.post("/panel/workspace/status", data={"_csrf": csrf,
                                                               "state": "offline"})
    await panel_ami.close()
    await listener.close()


async def _member(ami: AMIClient) -> tuple[str, str]:
    """(Paused, PausedReason) of Петров's phone in the services queue."""
    status = await ami.action({"Action": "QueueStatus", "Queue": "hotline-services",
                               "Member": MEMBER}, as_list=True)
    [member] = [m for m in status if m.get("Event") == "QueueMember"]
    return str(member.get("Paused")), str(member.get("PausedReason") or "")


async def _wrapped_up(ami: AMIClient) -> bool:
    return await _member(ami) == ("1", AUTO_WRAPUP_REASON)


async def test_paused_after_the_call_until_the_journal_is_saved(
    seeded: Stack, ami: AMIClient, events: EventRecorder, petrov: tuple[TestClient, str]
) -> None:
    client, csrf = petrov
    assert await _member(ami) == ("0", "")
    # 2 → the services queue → Петров answers, talks 3 s and hangs up.
    call = await place_call(ami, caller="79001234567", number="88001234567", dtmf="2", hold=6)
    await events.wait_for(lambda e: call.ours(e) and is_event("AgentComplete")(e), 60,
                          "the conversation ended")
    await wait_until(lambda: _wrapped_up(ami), 10, "Петров in wrap-up")

    saved = await client.post("/panel/workspace/journal", headers={"X-CSRF-Token": csrf},
                              data={"linkedid": call.linkedid, "topic": "state_services",
                                    "question": "Как записаться", "answer": "Рассказал",
                                    "outcome": "answered"})
    assert (await saved.json())["ok"] == ("Запись в журнале сохранена. "
                                         "Вы снова принимаете звонки.")
    assert await _member(ami) == ("0", "")


async def test_wrap_up_ends_by_itself_but_never_undoes_a_chosen_pause(
    seeded: Stack, ami: AMIClient, events: EventRecorder, petrov: tuple[TestClient, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, csrf = petrov
    monkeypatch.setattr(seeded.services.settings.panel, "wrapup_seconds", 3)
    call = await place_call(ami, caller="79001234567", number="88001234567", dtmf="2", hold=6)
    await events.wait_for(lambda e: call.ours(e) and is_event("AgentComplete")(e), 60,
                          "the first conversation ended")
    await wait_until(lambda: _wrapped_up(ami), 10, "Петров in wrap-up")

    async def ready_again() -> bool:
        return await _member(ami) == ("0", "")
    await wait_until(ready_again, 10, "ready again after 3 s")

    # The second time he takes a break during the wrap-up: the timer leaves it alone.
    call = await place_call(ami, caller="79001234567", number="88001234567", dtmf="2", hold=6)
    await events.wait_for(lambda e: call.ours(e) and is_event("AgentComplete")(e), 60,
                          "the second conversation ended")
    await wait_until(lambda: _wrapped_up(ami), 10, "Петров in wrap-up again")
    await client.post("/panel/workspace/status", data={"_csrf": csrf, "state": "pause",
                                                       "reason": "перерыв"})
    assert await _member(ami) == ("1", "перерыв")
    await asyncio.sleep(5)   # past the wrap-up's 3 s
    assert await _member(ami) == ("1", "перерыв")
