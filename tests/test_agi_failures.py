"""Every failure of our FastAGI side still gets the caller to a person (issue 3, item 10).

Refused connection → AGISTATUS=FAILURE; server killed mid-call → Asterisk says SUCCESS but
the finished-flag is missing; server that accepts and goes mute → the watchdog lease runs out.
In each case the caller lands in the general queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest_asyncio

from ivr.ami import AMIClient
from ivr.asterisk_dev import DevAsterisk
from ivr.settings import Settings
from ivr.simulate import EventRecorder, is_event, place_call, wait_until

from .conftest import hotline_environ
from .support.calls import hang_up


def _reached_general_queue(call_id: str):  # type: ignore[no-untyped-def]
    return lambda e: str(e.get("Linkedid")) == call_id and is_event(
        "QueueCallerJoin", Queue="hotline-general")(e)


def _agi_fail(call_id: str):  # type: ignore[no-untyped-def]
    return lambda e: str(e.get("Linkedid")) == call_id and is_event(
        "UserEvent", UserEvent="HotlineAgiFail")(e)


async def _port_open(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True


async def test_refused_connection_reaches_queue(
    settings: Settings, asterisk: DevAsterisk, ami: AMIClient, events: EventRecorder
) -> None:
    assert not await _port_open(settings.agi.host, settings.agi.port), "no server may run"
    call = await place_call(ami, caller="79002220001", number="88001234567", hold=6)
    try:
        failed = await events.wait_for(_agi_fail(call.linkedid), 15, "fallback context")
        assert failed["AgiStatus"] == "FAILURE"
        await events.wait_for(_reached_general_queue(call.linkedid), 10, "general queue")
    finally:
        await hang_up(ami, events, call)


@pytest_asyncio.fixture
async def agi_process(
    settings: Settings, sqlite_url: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Our real service, ``hotline serve --only agi``, as its own process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.cli", "serve", "--only", "agi",
        env=hotline_environ(HOTLINE_DATABASE__URL=sqlite_url),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await wait_until(lambda: _port_open(settings.agi.host, settings.agi.port), 30,
                     "FastAGI process listening")
    yield proc
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def test_server_killed_mid_call_reaches_queue(
    agi_process: asyncio.subprocess.Process, ami: AMIClient, events: EventRecorder
) -> None:
    # The caller listens to the greeting without pressing anything.
    call = await place_call(ami, caller="79002220002", number="88001234567", hold=15)
    try:
        await events.wait_for(
            lambda e: call.ours(e) and is_event("AGIExecStart")(e)
            and "STREAM FILE" in str(e.get("Command", "")), 15, "greeting playing")
        os.kill(agi_process.pid, signal.SIGKILL)
        failed = await events.wait_for(_agi_fail(call.linkedid), 10, "fallback context")
        # Asterisk reports SUCCESS for a server that died mid-call: only our flag catches it.
        assert failed["AgiStatus"] == "SUCCESS"
        await events.wait_for(_reached_general_queue(call.linkedid), 10, "general queue")
    finally:
        await hang_up(ami, events, call)


class MuteServer:
    """Accepts FastAGI connections, reads the environment, and never answers."""

    def __init__(self) -> None:
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        while await reader.read(4096):
            pass


async def test_mute_server_is_cut_off_by_the_watchdog(
    settings: Settings, asterisk: DevAsterisk, ami: AMIClient, events: EventRecorder
) -> None:
    mute = MuteServer()
    server = await asyncio.start_server(mute.handle, settings.agi.host, settings.agi.port + 1)
    calls = []
    try:
        call = await place_call(ami, caller="79002220003", number="s", context="agi-mute",
                                hold=settings.agi.watchdog_seconds + 10)
        calls.append(call)
        # The lease is watchdog_seconds; AGIEXITONHANGUP makes Asterisk act on it at once.
        failed = await events.wait_for(_agi_fail(call.linkedid),
                                       settings.agi.watchdog_seconds + 4,
                                       "watchdog sends the caller to the fallback")
        assert failed["AgiStatus"] == "HANGUP"
        await events.wait_for(_reached_general_queue(call.linkedid), 10, "general queue")
        assert mute.accepted == 1
    finally:
        await hang_up(ami, events, *calls)
        server.close()
        for w in mute._writers:
            w.close()
        await server.wait_closed()
