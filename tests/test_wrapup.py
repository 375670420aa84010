"""Automatic wrap-up (issue 5, R-H6), through the real Asterisk: after a queue call the
operator is paused until the call's journal is saved, or until ``panel.wrapup_seconds``
pass; then ready again. A state the operator chose meanwhile is never undone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from ivr.ami import AMIClient
from ivr.simulate import EventRecorder, is_event, place_call, wait_until
from web.workspace import AUTO_WRAPUP_REASON

from .conftest import Stack
from .support.panel_client import PETROV_MEMBER, member_state, ready_operator

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MEMBER = PETROV_MEMBER


@pytest_asyncio.fixture
async def petrov(seeded: Stack) -> AsyncIterator[tuple[TestClient, str]]:
    """Петров (extension 1002) logged in to a panel with its own AMI link, ready."""
    async with ready_operator(seeded.services) as ready:
        yield ready


async def _wrapped_up(ami: AMIClient) -> bool:
    return await member_state(ami) == ("1", AUTO_WRAPUP_REASON)


async def test_paused_after_the_call_until_the_journal_is_saved(
    seeded: Stack, ami: AMIClient, events: EventRecorder, petrov: tuple[TestClient, str]
) -> None:
    client, csrf = petrov
    assert await member_state(ami) == ("0", "")
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
    assert await member_state(ami) == ("0", "")


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
        return await member_state(ami) == ("0", "")
    await wait_until(ready_again, 10, "ready again after 3 s")

    # The second time he takes a break during the wrap-up: the timer leaves it alone.
    call = await place_call(ami, caller="79001234567", number="88001234567", dtmf="2", hold=6)
    await events.wait_for(lambda e: call.ours(e) and is_event("AgentComplete")(e), 60,
                          "the second conversation ended")
    await wait_until(lambda: _wrapped_up(ami), 10, "Петров in wrap-up again")
    await client.post("/panel/workspace/status", data={"_csrf": csrf, "state": "pause",
                                                       "reason": "перерыв"})
    assert await member_state(ami) == ("1", "перерыв")
    # The page after «Пауза» says what Asterisk has (issue 29), not «Ожидание звонка».
    page = await (await client.get("/panel/workspace")).text()
    assert '<span id="state-label">Пауза: перерыв</span>' in page
    await asyncio.sleep(5)   # past the wrap-up's 3 s
    assert await member_state(ami) == ("1", "перерыв")
