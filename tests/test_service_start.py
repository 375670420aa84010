"""``hotline serve`` when a part cannot start: the error ends the service, and what the
other parts had started is stopped (it once hung at shutdown, retrying AMI for ever)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path

import pytest

from ivr.runner import run_service
from ivr.settings import load_settings
from ivr.simulate import wait_until

from .conftest import hotline_environ
from .support.smtp import free_port


async def test_a_panel_port_already_taken_ends_the_service_with_the_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    settings = load_settings(environ=hotline_environ(
        HOTLINE_DATABASE__URL=sqlite_url, HOTLINE_PANEL__HOST="127.0.0.1",
        HOTLINE_PANEL__PORT=str(port), HOTLINE_PANEL__REUSE_PORT="false",
        HOTLINE_DATABASE__SPOOL_DIR=str(tmp_path / "spool"),
        HOTLINE_AMI__PORT="1"))   # nothing there: the AMI link keeps retrying until stopped
    before = asyncio.all_tasks()   # (a session's fixtures may have their own)
    try:
        with pytest.raises(OSError):
            await asyncio.wait_for(run_service(settings, ["web"]), 20)
    finally:
        taken.close()
    left = asyncio.all_tasks() - before
    await asyncio.sleep(0.1)
    assert not [t for t in left if not t.done()], "nothing the panel started runs on"


async def test_the_served_agi_part_answers_only_the_settings_peers(
    sqlite_url: str, tmp_path: Path
) -> None:
    """``hotline serve --only agi`` takes ``agi.allowed_peers`` from the settings: here
    only 127.0.0.2 is served, and Asterisk's usual 127.0.0.1 is closed unread."""
    port = free_port()
    settings = load_settings(environ=hotline_environ(
        HOTLINE_DATABASE__URL=sqlite_url, HOTLINE_AGI__PORT=str(port),
        HOTLINE_AGI__HEADER_TIMEOUT="30", HOTLINE_AGI__ALLOWED_PEERS='["127.0.0.2/32"]',
        HOTLINE_DATABASE__SPOOL_DIR=str(tmp_path / "spool")))
    service = asyncio.create_task(run_service(settings, ["agi"]))

    async def connect(local: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))

    async def listening() -> bool:
        with contextlib.suppress(OSError):
            (await connect("127.0.0.2"))[1].close()
            return True
        return service.done()

    try:
        await wait_until(listening, 60, "the service listening")
        assert not service.done(), service.exception()
        reader, writer = await connect("127.0.0.1")
        assert await asyncio.wait_for(reader.read(), 5) == b"", "closed, not kept 30 s"
        writer.close()
        reader, writer = await connect("127.0.0.2")
        writer.write(b"agi_network: yes\nagi_network_script: no-such-flow\n\n")
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line == b'EXEC Goto "agi-fail,s,1"\n', "served: an unknown script fails over"
        writer.close()
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # what stops `hotline serve`
        await asyncio.wait_for(service, 30)
