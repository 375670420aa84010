"""``hotline serve`` when a part cannot start: the error ends the service, and what the
other parts had started is stopped (it once hung at shutdown, retrying AMI for ever)."""

from __future__ import annotations

import asyncio
import gc
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


async def test_once_started_the_start_ups_objects_are_out_of_the_collectors_way(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A full pass of the cyclic collector walked every object start-up made (~70 ms on a
    small VM, a stall for every call): once serving, they are frozen out of its way."""
    settings = load_settings(environ=hotline_environ(
        HOTLINE_DATABASE__URL=sqlite_url, HOTLINE_AGI__PORT=str(free_port()),
        HOTLINE_DATABASE__SPOOL_DIR=str(tmp_path / "spool")))
    gc.unfreeze()
    service = asyncio.create_task(run_service(settings, ["agi"]))

    async def started() -> bool:
        return bool(gc.get_freeze_count()) or service.done()

    try:
        await wait_until(started, 60, "the service started")
        assert not service.done(), service.exception()
        assert gc.get_freeze_count() > 10_000
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # what stops `hotline serve`
        await asyncio.wait_for(service, 30)
        gc.unfreeze()  # the rest of the test session collects as usual
