"""Listen / whisper / barge (issue 30) on the real Asterisk.

The supervisor (Смирнова, phone 1090) is simulated as every employee's phone is in tests
(``Local/<ext>@operator-sim``); the parties "speak" a tone (Playtones) or silence, and
what a leg hears is Asterisk's TALK_DETECT on it: ``ChannelTalkingStart`` names the channel
that received speech. Whisper is heard by the operator's leg and not by the caller's: the
caller's detector is armed the whole time and stays quiet, then the same detector fires at
once when the supervisor barges in (so its silence meant something).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from ivr.ami import AMIClient
from ivr.db.models import Staff
from ivr.runner import make_ami
from ivr.services.container import Services
from ivr.simulate import EventRecorder, caller_channel, is_event, place_call, wait_until
from ivr.spy import SpyRefused, SpyRequest, check
from web.app import init_app
from web.workspace import HUB

from .conftest import Stack, quiesce
from .support.panel_client import audit_rows, log_in
from .test_transfers import _talking

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
QUEUE, MEMBER = "hotline-services", "Local/1002@operator-sim/n"
PHONE = "1090"          # the supervisor's phone in these tests
TONE = "1000"
GLOBALS = ("OP_TALK", f"OP_SAY_{PHONE}", "OP_TONE_1002")


async def _speech(ami: AMIClient) -> str:
    """A long prompt (the menu, some 18 s of speech), as Asterisk finds it."""
    prompts = await ami.action({"Action": "Getvar", "Variable": "PROMPTS"})
    return f"{prompts['Value']}/menu"


async def _set(ami: AMIClient, **values: str) -> None:
    for name, value in values.items():
        await ami.action({"Action": "Setvar", "Variable": name, "Value": value})


@dataclass
class Panel:
    client: TestClient
    csrf: str
    services: Services


@pytest_asyncio.fixture
async def board(seeded: Stack, ami: AMIClient) -> AsyncIterator[Panel]:
    """The panel with its own AMI link, Смирнова (phone 1090) logged in; operator 1002 in
    the queue. Every call and global the test made is gone afterwards."""
    async with seeded.services.sessions() as s, s.begin():
        await s.execute(update(Staff).where(Staff.login == "smirnova").values(extension=PHONE))
    panel_ami = make_ami(seeded.settings)
    await panel_ami.start()
    await panel_ami.wait_connected(10)
    await _set(ami, OP_TALK="60")
    await ami.queue_add(QUEUE, MEMBER, "1002")
    try:
        async with TestClient(TestServer(init_app(seeded.services, panel_ami))) as client:
            yield Panel(client, await log_in(client, "smirnova"), seeded.services)
    finally:
        await ami.queue_remove(QUEUE, MEMBER)
        await _set(ami, **{name: "" for name in GLOBALS})
        await ami.action({"Action": "Hangup", "Channel": "/.*/"}, check=False)
        await quiesce(ami, 10)
        await panel_ami.close()


async def _on_call(panel: Panel, ami: AMIClient, events: EventRecorder) -> tuple[str, str]:
    """A caller (key 2) talking with operator 1002: the caller's own channel and the
    operator's (the simulated halves, which hear what their party hears)."""
    call = await place_call(ami, caller="79001234567", number="88001234567", dtmf="2", hold=60)
    operator = await _talking(events, call, "1002", set())
    assert panel.client.app is not None
    hub = panel.client.app[HUB]
    await wait_until(lambda: _true("1002" in hub.current), 10, "the panel sees the call")
    return caller_channel(events, call), operator


async def _true(value: bool) -> bool:
    return value


async def _spy(panel: Panel, mode: str) -> str:
    # A channel in the form is not looked at: the panel's own AMI state names the target.
    resp = await panel.client.post("/panel/wallboard/spy", data={
        "operator": "1002", "mode": mode, "channel": "PJSIP/9999-00000001"},
        headers={"X-CSRF-Token": panel.csrf})
    body = await resp.json()
    assert resp.status == 200, body
    return str(body["channel"])


async def _hears(ami: AMIClient, events: EventRecorder, uniqueid: str) -> str:
    """The channel with ``uniqueid``, its talk detector armed."""
    new = await events.wait_for(is_event("Newchannel", Uniqueid=uniqueid), 10, uniqueid)
    channel = str(new["Channel"])
    await _detect(ami, channel)
    return channel


async def _detect(ami: AMIClient, channel: str) -> None:
    await ami.action({"Action": "Setvar", "Channel": channel,
                      "Variable": "TALK_DETECT(set)", "Value": ""})


def _talked(channel: str):  # type: ignore[no-untyped-def]
    return is_event("ChannelTalkingStart", Channel=channel)


@SQLITE
async def test_the_supervisor_hears_the_call(
    board: Panel, ami: AMIClient, events: EventRecorder
) -> None:
    idle = await board.client.post("/panel/wallboard/spy", data={
        "operator": "1002", "mode": "listen"}, headers={"X-CSRF-Token": board.csrf})
    assert idle.status == 422 and (await idle.json())["id"] == "spy_no_call"
    await _set(ami, OP_TONE_1002=TONE)            # the operator speaks
    await _on_call(board, ami, events)
    spy_id = await _spy(board, "listen")
    phone = await _hears(ami, events, f"{spy_id}-phone")
    await events.wait_for(_talked(phone), 10, "the supervisor's phone hears the call")
    started = await events.wait_for(is_event("Newexten", Uniqueid=spy_id,
                                             Application="ChanSpy"), 5, "ChanSpy")
    assert str(started["AppData"]).endswith(",qES"), "listen quietly: no beep, no name"
    audited = await audit_rows(board.services)
    assert any(a == "spy" and o == "call" and "прослушивание: оператор 1002" in d
               and "PJSIP/9999" not in d for a, o, d in audited), "who, whom, how"


@SQLITE
async def test_whisper_reaches_the_operator_only_and_barge_both(
    board: Panel, ami: AMIClient, events: EventRecorder
) -> None:
    await _set(ami, **{f"OP_SAY_{PHONE}": await _speech(ami)})   # the supervisor speaks
    caller, operator = await _on_call(board, ami, events)
    await _detect(ami, caller)
    await _detect(ami, operator)
    whisper = await _spy(board, "whisper")
    await events.wait_for(_talked(operator), 10, "the operator hears the whisper")
    # The caller's leg has had as long, and more, to hear it.
    with contextlib.suppress(TimeoutError):
        await events.wait_for(_talked(caller), 1.0, "the caller hears nothing")
    assert not events.matching(_talked(caller)), "the caller heard the whisper"
    await ami.action({"Action": "Hangup", "Channel": f"/^Local/{PHONE}@operator-sim-/"})
    await events.wait_for(is_event("Hangup", Uniqueid=whisper), 5, "whisper ended")
    await _spy(board, "barge")
    await events.wait_for(_talked(caller), 10, "the caller hears the barge")


@SQLITE
async def test_listening_in_is_refused_to_operators_and_heads(
    client: TestClient, svc: Services
) -> None:
    for login in ("petrov", "kuznetsov"):
        csrf = await log_in(client, login)
        refused = await client.post("/panel/wallboard/spy", headers={"X-CSRF-Token": csrf},
                                    data={"operator": "1001", "mode": "listen"})
        assert refused.status == 403 and (await refused.json())["id"] == "role"
    audited = [(o, d) for a, o, d in await audit_rows(svc) if a == "spy_refused"]
    assert len(audited) == 2 and all(o == "call" and "/panel/wallboard/spy" in d
                                     for o, d in audited)


def test_only_a_channel_asterisk_names_reaches_chanspy() -> None:
    check(SpyRequest("listen", "1090", "PJSIP/1002-0000002a", "1002"))
    check(SpyRequest("barge", "1090", "Local/1002@operator-sim-00000003;1", "1002"))
    for target in ("", "PJSIP/1002", "PJSIP/1002-0000002a,qB", "PJSIP/1002-0000002a\r\nX: y",
                   "PJSIP/1002-0000002a|x", "SIP/../1002-0000002a", "PJSIP/1002-0000002A;3"):
        with pytest.raises(SpyRefused) as refused:
            check(SpyRequest("listen", "1090", target, "1002"))
        assert refused.value.error_id == "spy_no_call", target
    with pytest.raises(SpyRefused, match="режим"):
        check(SpyRequest("record", "1090", "PJSIP/1002-0000002a", "1002"))
    with pytest.raises(SpyRefused, match="внутреннего номера"):
        check(SpyRequest("listen", "", "PJSIP/1002-0000002a", "1002"))
