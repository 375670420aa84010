"""«Завершить разговор — на оценку» (issue 27, R-H8): the operator ends the conversation
from the panel and the caller goes on to the rating instead of hearing the line drop —
through the real Asterisk, the panel on its own AMI link. Only the operator on the call may
do it, and only their own call's channel (from the OperatorHub) ever reaches AMI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import AuditEntry, Call, Quality, Rating, RatingStatus, Staff
from ivr.demo import DEMO_PASSWORD
from ivr.runner import make_ami
from ivr.services.survey import SurveyError, to_survey
from ivr.simulate import (
    EventRecorder,
    SimulatedCall,
    caller_channel,
    is_event,
    place_call,
    press,
    wait_until,
)
from ivr.tracking import CallTracker
from web.app import init_app
from web.workspace import HUB

from .conftest import Stack

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MEMBER = "Local/1002@operator-sim/n"   # Петров's phone in the queues
OWNER = "79001234567"


async def _login(client: TestClient, login: str) -> str:
    await client.post("/login", data={"login": login, "password": DEMO_PASSWORD,
                                      "next": "/panel/workspace"})
    page = await (await client.get("/panel/workspace")).text()
    return re.search(r'name="_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


@pytest_asyncio.fixture
async def panel(seeded: Stack, ami: AMIClient) -> AsyncIterator[Any]:
    """The panel with its own AMI link and the call tracker; Петров's phone in the services
    queue stays on the line until hung up."""
    listener, panel_ami = make_ami(seeded.settings), make_ami(seeded.settings)
    CallTracker(seeded.services, listener)
    await listener.start()
    await panel_ami.start()
    await listener.wait_connected(10)
    await panel_ami.wait_connected(10)
    await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": "90"})
    await ami.queue_add("hotline-services", MEMBER, "1002")
    try:
        yield init_app(seeded.services, panel_ami)
    finally:
        await ami.queue_remove("hotline-services", MEMBER)
        await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": ""})
        await panel_ami.close()
        await listener.close()


async def _on_the_line(app: Any, ami: AMIClient, events: EventRecorder) -> SimulatedCall:
    """A caller (key 2) talking with Петров, whose panel shows the call."""
    call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="2", hold=90)
    await events.wait_for(lambda e: call.ours(e) and is_event("AgentConnect")(e), 40,
                          "Петров answers")

    async def shown() -> bool:
        return app[HUB].current.get("1002", {}).get("linkedid") == call.linkedid

    await wait_until(shown, 10, "the call on Петров's panel")
    return call


def _rating_started(call: SimulatedCall):  # type: ignore[no-untyped-def]
    return lambda e: (call.ours(e) and is_event("Newexten", Application="AGI")(e)
                      and "/rating," in str(e.get("AppData", "")))


def _played(call: SimulatedCall, path: str):  # type: ignore[no-untyped-def]
    return lambda e: (call.ours(e) and is_event("AGIExecStart")(e)
                      and path in str(e.get("Command", "")))


@SQLITE
async def test_to_the_survey_takes_the_caller_to_the_rating(
    seeded: Stack, ami: AMIClient, events: EventRecorder, panel: Any
) -> None:
    """R-H8: the operator presses «на оценку»; the caller hears the two questions, their
    answers are stored for that operator, and the action is in the audit log."""
    async with TestClient(TestServer(panel)) as client:
        csrf = await _login(client, "petrov")
        call = await _on_the_line(panel, ami, events)
        page = await (await client.get("/panel/workspace")).text()
        button = re.search(r'<button type="button" id="to-survey"[^>]*>', page)
        assert button is not None and f'data-linkedid="{call.linkedid}"' in button.group(0)
        assert "hidden" not in button.group(0), "shown while the operator is on the call"
        answer = await client.post("/panel/workspace/survey", headers={"X-CSRF-Token": csrf},
                                   data={"linkedid": call.linkedid})
        assert (await answer.json()) == {"ok": "Гражданин переведён на оценку качества."}
    await events.wait_for(_rating_started(call), 20, "the rating flow starts")
    prompts, caller = seeded.services.prompts, caller_channel(events, call)
    for prompt, key in (("rating_answer", "1"), ("rating_quality", "1")):
        await events.wait_for(_played(call, prompts.path(prompt)), 20, prompt)
        await press(ami, caller, key)

    async def rating() -> Rating | None:
        async with seeded.services.sessions() as s:
            return await s.scalar(select(Rating).join(Call).where(
                Call.linkedid == call.linkedid))

    stored: Rating = await wait_until(rating, 30, "rating stored")
    async with seeded.services.sessions() as s:
        petrov = await s.scalar(select(Staff.id).where(Staff.login == "petrov"))
        audited = await s.scalar(select(AuditEntry).where(AuditEntry.action == "to_survey"))
    assert (stored.answer_received, stored.quality, stored.status, stored.operator_id) == (
        True, Quality.SATISFIED, RatingStatus.COMPLETE, petrov)
    assert audited is not None and (audited.staff_id, audited.object_id) == (
        petrov, call.linkedid)


@SQLITE
async def test_only_the_operator_on_the_call_ends_it(
    seeded: Stack, ami: AMIClient, events: EventRecorder, panel: Any
) -> None:
    """Another operator (with the call's id) and the operator on the call naming another
    call are refused; no channel is hung up, the conversation goes on."""
    async with TestClient(TestServer(panel)) as client:
        csrf = await _login(client, "ivanova")
        call = await _on_the_line(panel, ami, events)
        try:
            stranger = await client.post("/panel/workspace/survey",
                                         headers={"X-CSRF-Token": csrf},
                                         data={"linkedid": call.linkedid})
            assert stranger.status == 403
            await client.post("/logout", headers={"X-CSRF-Token": csrf})
            csrf = await _login(client, "petrov")
            forged = await client.post("/panel/workspace/survey",
                                       headers={"X-CSRF-Token": csrf},
                                       data={"linkedid": "sim-0000000000000000"})
            assert forged.status == 403
            assert panel[HUB].current["1002"]["linkedid"] == call.linkedid, "still talking"
            assert not events.matching(_rating_started(call))
        finally:
            await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)},
                             check=False)


class _RecordingAmi:
    def __init__(self) -> None:
        self.actions: list[dict[str, str]] = []

    async def action(self, action: dict[str, str], **_: object) -> dict[str, str]:
        self.actions.append(action)
        return {"Response": "Success", "Value": "PJSIP/trunk-00000001"}


@pytest.mark.parametrize("channel", ["/.*/", "", "PJSIP/1002-1\r\nAction: Originate",
                                     "Local/1002@x;1 ", "x" * 200])
async def test_a_channel_that_is_no_channel_name_never_reaches_ami(channel: str) -> None:
    """AMI Hangup reads "/…/" as a pattern over every channel: refused before AMI."""
    ami = _RecordingAmi()
    with pytest.raises(SurveyError):
        await to_survey(ami, channel)  # type: ignore[arg-type]
    assert ami.actions == []
