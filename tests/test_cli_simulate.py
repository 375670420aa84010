"""``hotline call simulate`` places a call through the real Asterisk and reports it."""

from __future__ import annotations

import asyncio
import sys

import pytest

from .conftest import Stack, hotline_environ


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_simulate_prints_the_route_and_the_stored_call(stack: Stack) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.cli", "call", "simulate", "--caller", "79001112233",
        "--dtmf", "6", "--delay", "1", "--hold", "1",
        env=hotline_environ(HOTLINE_DATABASE__URL=stack.settings.database.url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert "joined queue hotline-inspections" in text
    assert "set HOTLINE_TOPIC=inspections" in text
    assert "caller 79001112233 dialled 88001234567 path '6' topic inspections" in text
