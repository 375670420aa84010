"""The live wallboard (issue 30): pushed over Server-Sent Events from the AMI stream.

On the real Asterisk a caller waits in a queue nobody serves: the board's waiting count
rises with them and falls when they hang up, with no reload. The board's own bookkeeping
(a caller between two spells still waits, operators' states and since when) is checked on
Asterisk's events as they come; the full-screen view is drawn in Chromium.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from panoramisk.message import Message
from playwright.async_api import Browser, expect

from ivr.ami import AMIClient
from ivr.asterisk_dev import DevAsterisk
from ivr.board import LiveBoard
from ivr.db.models import AgentState
from ivr.demo import DEMO_PASSWORD
from ivr.runner import make_ami
from ivr.services.container import Services
from ivr.settings import PROJECT_ROOT
from ivr.simulate import EventRecorder, caller_channel, place_call, wait_until
from web.app import init_app
from web.wallboard import BOARD

from .conftest import Stack
from .support.browser import console_errors
from .support.panel_client import log_in
from .support.smtp import free_port

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
QUEUE = "hotline-services"      # menu key 2
SCREENS = PROJECT_ROOT / "var" / "test" / "screens"
Board = dict[str, Any]


async def _boards(resp: ClientResponse) -> AsyncIterator[Board]:
    """The boards of an open ``/panel/wallboard/live`` stream, as they come."""
    event = ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "board":
            yield json.loads(line[6:])


async def _until(boards: AsyncIterator[Board], wanted: Callable[[Board], bool],
                 what: str, timeout: float = 20) -> list[Board]:
    """Boards read until one is ``wanted`` (that one last)."""
    seen: list[Board] = []
    async with asyncio.timeout(timeout):
        async for board in boards:
            seen.append(board)
            if wanted(board):
                return seen
    raise AssertionError(f"the stream ended before {what}")


def _waiting(board: Board) -> int:
    return next(q["waiting"] for q in board["queues"] if q["queue"] == QUEUE)


@SQLITE
async def test_the_waiting_count_rises_and_falls_with_a_call(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    panel_ami = make_ami(seeded.settings)
    await panel_ami.start()
    try:
        async with TestClient(TestServer(init_app(seeded.services, panel_ami))) as client:
            await panel_ami.wait_connected(10)
            board = client.app[BOARD]   # type: ignore[index]
            await wait_until(lambda: _at_least(board.reloads, 1), 10, "board read")
            await log_in(client, "smirnova")
            resp = await client.get("/panel/wallboard/live")
            assert resp.headers["Content-Type"] == "text/event-stream"
            boards = _boards(resp)
            first = await _until(boards, lambda b: True, "the first board")
            assert _waiting(first[-1]) == 0 and first[-1]["connected"]
            call = await place_call(ami, caller="79001234567", number="88001234567",
                                    dtmf="2", hold=60)
            rising = await _until(boards, lambda b: _waiting(b) == 1, "the caller waits")
            assert any(b["ivr"] == 1 for b in rising), "the caller was in the IVR first"
            longest = next(q for q in rising[-1]["queues"] if q["queue"] == QUEUE)
            assert 0 <= rising[-1]["now"] - longest["longest_since"] < 10
            assert longest["title"] and longest["abandoned"] == 0
            await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)})
            falling = await _until(boards, lambda b: _waiting(b) == 0, "the caller left")
            assert falling[-1]["ivr"] == 0
            resp.close()
    finally:
        await panel_ami.close()


async def _at_least(value: int, least: int) -> bool:
    return value >= least


def _event(name: str, **fields: str) -> Message:
    return Message({"Event": name, "Timestamp": fields.pop("at", str(time.time())),
                    **fields})


def test_a_caller_between_two_spells_still_waits_from_the_first_join() -> None:
    board = LiveBoard(None, lambda: [QUEUE])
    board._on_new_channel(_event("Newchannel", Context="hotline-in", Uniqueid="c-2",
                                 Linkedid="c-1", at="100"))
    assert board.snapshot()["ivr"] == 1
    board._on_join(_event("QueueCallerJoin", Queue=QUEUE, Linkedid="c-1", Uniqueid="c-2",
                          at="110"))
    board._on_leave(_event("QueueCallerLeave", Queue=QUEUE, Linkedid="c-1", Uniqueid="c-2"))
    [queue] = board.snapshot()["queues"]
    assert (queue["waiting"], queue["longest_since"]) == (1, 110.0), "the spell's end"
    assert board.snapshot()["ivr"] == 0, "waiting, not in the IVR"
    board._on_join(_event("QueueCallerJoin", Queue=QUEUE, Linkedid="c-1", Uniqueid="c-2",
                          at="130"))
    assert board.snapshot()["queues"][0]["longest_since"] == 110.0, "the next spell"
    board._on_hangup(_event("Hangup", Uniqueid="c-2", Linkedid="c-1"))
    assert board.snapshot()["queues"][0]["waiting"] == 0
    assert board.snapshot()["ivr"] == 0


def test_operators_by_state_and_since_when() -> None:
    board = LiveBoard(None, lambda: [QUEUE])
    member = "Local/1002@operator-sim/n"
    board._on_member(_event("QueueMemberAdded", Queue=QUEUE, Interface=member,
                            MemberName="1002", Paused="0", Status="1", at="100"))
    board._on_join(_event("QueueCallerJoin", Queue=QUEUE, Linkedid="c-1", Uniqueid="c-2"))
    board._on_connect(_event("AgentConnect", Queue=QUEUE, Interface=member, Linkedid="c-1",
                             at="120"))
    snap = board.snapshot()
    assert snap["queues"][0]["waiting"] == 0, "answered"
    assert snap["operators"] == [{"extension": "1002", "state": AgentState.ON_CALL,
                                  "reason": "", "since": 120.0}]
    # The device's own report during the call changes nothing, nor its time.
    board._on_member(_event("QueueMemberStatus", Queue=QUEUE, Interface=member, InCall="1",
                            Status="2", Paused="0", at="125"))
    assert board.snapshot()["operators"][0]["since"] == 120.0
    board._on_complete(_event("AgentComplete", Interface=member, Linkedid="c-1"))
    board._on_member(_event("QueueMemberPause", Queue=QUEUE, Interface=member, Paused="1",
                            PausedReason="после звонка: журнал", InCall="0", Status="1",
                            at="140"))
    assert board.snapshot()["operators"][0]["state"] == AgentState.WRAPUP
    board._on_member(_event("QueueMemberPause", Queue=QUEUE, Interface=member, Paused="1",
                            PausedReason="перерыв", InCall="0", Status="1", at="150"))
    assert board.snapshot()["operators"][0] == {"extension": "1002", "reason": "перерыв",
                                                "state": AgentState.PAUSED, "since": 150.0}
    board._on_member_removed(_event("QueueMemberRemoved", Queue=QUEUE, Interface=member))
    assert board.snapshot()["operators"] == []


@SQLITE
async def test_the_tv_view_is_full_screen_and_live(
    svc: Services, asterisk: DevAsterisk, browser: Browser
) -> None:
    """Drawn as a wall screen shows it: no navigation, large type, changes without reload.
    The board is linked to the idle test Asterisk and fed a busy morning's events."""
    panel_ami = make_ami(svc.settings)
    app = init_app(svc, panel_ami)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await panel_ami.start()
    try:
        await wait_until(lambda: _at_least(app[BOARD].reloads, 1), 10, "board read")
        _busy_morning(app[BOARD])
        page = await (await browser.new_context(viewport={"width": 1600, "height": 900})
                      ).new_page()
        problems = console_errors(page)
        await page.goto(f"http://127.0.0.1:{port}/panel/wallboard?tv=1")
        await page.fill("input[name=login]", "smirnova")
        await page.fill("input[name=password]", DEMO_PASSWORD)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(re.compile(r"/panel/wallboard\?tv=1$"))
        await expect(page.locator("nav")).to_have_count(0)
        row = page.locator(f"#board-queues tr[data-queue={QUEUE}] .waiting")
        await expect(row).to_have_text("2")
        app[BOARD]._on_join(_event("QueueCallerJoin", Queue=QUEUE, Linkedid="c-9",
                                   Uniqueid="c-9"))
        await expect(row).to_have_text("3")          # pushed, no reload
        await expect(page.locator("#board-operators")).to_contain_text("Пауза: перерыв")
        SCREENS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENS / "wallboard.png"))
        assert problems == []
    finally:
        await runner.cleanup()
        await panel_ami.close()


@SQLITE
async def test_the_board_is_for_supervisors_and_says_when_it_is_not_live(
    client: TestClient
) -> None:
    await log_in(client, "petrov")
    assert (await client.get("/panel/wallboard")).status == 403
    assert (await client.get("/panel/wallboard/live")).status == 403
    await log_in(client, "kuznetsov")                      # a department head watches
    page = await client.get("/panel/wallboard")
    text = await page.text()
    assert page.status == 200 and "Нет связи с Asterisk" in text, "no AMI link here"
    assert "<th>Контроль</th>" not in text and "<nav" in text, "listening is not theirs"
    await log_in(client, "smirnova")
    assert "<th>Контроль</th>" in await (await client.get("/panel/wallboard")).text()


def _busy_morning(board: LiveBoard) -> None:
    now = time.time()
    for ext, state in (("1001", {"Paused": "0"}), ("1002", {"Paused": "0"}),
                       ("1003", {"Paused": "1", "PausedReason": "перерыв"})):
        board._on_member(_event("QueueMemberAdded", Queue=QUEUE, MemberName=ext,
                                Interface=f"PJSIP/{ext}", Status="1",
                                at=str(now - 300), **state))
    board._on_connect(_event("AgentConnect", Queue=QUEUE, Interface="PJSIP/1002",
                             Linkedid="c-0", at=str(now - 75)))
    for n, ago in ((1, 95), (2, 40)):
        board._on_join(_event("QueueCallerJoin", Queue=QUEUE, Linkedid=f"c-{n}",
                              Uniqueid=f"c-{n}", at=str(now - ago)))
    board._on_new_channel(_event("Newchannel", Context="hotline-in", Uniqueid="c-5",
                                 Linkedid="c-5", at=str(now - 12)))


class _Subscriptions:
    """Stands in for the AMI link: which events the board subscribes to."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def subscribe(self, name: str, handler: object) -> None:
        self.names.append(name)

    def on_connect(self, handler: object) -> None:
        pass


def test_the_services_ami_user_is_sent_every_event_the_board_reads() -> None:
    # Tests log in as an unfiltered user; production's filters events (manager.conf).
    link = _Subscriptions()
    LiveBoard(link, lambda: [QUEUE])  # type: ignore[arg-type]
    conf = (PROJECT_ROOT / "config" / "asterisk" / "manager.conf").read_text()
    found = re.search(r"^eventfilter = Event: \((.+)\)$", conf, re.M)
    assert found is not None
    assert set(link.names) <= set(found.group(1).split("|"))
