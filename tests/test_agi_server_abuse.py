"""Our FastAGI server under hostile or broken peers, while a real call goes through Asterisk.

panoramisk's FastAGI server spins at 100 % CPU when a client closes mid-header; ours must
drop such connections, keep memory bounded, and leave a concurrent call undisturbed.
"""

from __future__ import annotations

import asyncio
import sys
import tracemalloc

import pytest
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import Call
from ivr.simulate import place_call, wait_until

from .conftest import Stack


async def _connect(stack: Stack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(stack.settings.agi.host, stack.agi.port)


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float = 5) -> bool:
    """True when the server closed the connection (EOF or reset) within ``timeout``."""
    try:
        data = await asyncio.wait_for(reader.read(), timeout)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return data == b""


async def mid_header_close(stack: Stack) -> None:
    _, writer = await _connect(stack)
    writer.write(b"agi_network: yes\nagi_network_script: ivr-entry\nagi_req")
    await writer.drain()
    writer.close()


async def port_probe(stack: Stack) -> None:
    _, writer = await _connect(stack)
    writer.close()


async def huge_header(stack: Stack) -> bool:
    reader, writer = await _connect(stack)
    try:
        writer.write(b"agi_network_script: " + b"x" * (1024 * 1024))
        await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        return True
    closed = await _closed_by_server(reader)
    writer.close()
    return closed


async def non_utf8(stack: Stack) -> bool:
    reader, writer = await _connect(stack)
    writer.write(b"agi_network: yes\n\xff\xfe\xfa garbage \xc3\x28\n\n")
    await writer.drain()
    closed = await _closed_by_server(reader)
    writer.close()
    return closed


async def silent_client(stack: Stack) -> bool:
    reader, writer = await _connect(stack)
    closed = await _closed_by_server(reader, timeout=stack.settings.agi.header_timeout + 3)
    writer.close()
    return closed


async def test_hostile_peers_do_not_disturb_a_real_call(stack: Stack, ami: AMIClient) -> None:
    # The caller presses 3 about four seconds into the greeting, while the garbage arrives.
    call = await place_call(ami, caller="79005550101", number="88001234567", dtmf="3",
                            delay=4, hold=4)
    results = await asyncio.gather(
        *[mid_header_close(stack) for _ in range(20)],
        *[port_probe(stack) for _ in range(20)],
        huge_header(stack), huge_header(stack), non_utf8(stack), silent_client(stack),
    )
    assert all(r for r in results if r is not None), "server kept a bad connection open"

    async def stored() -> Call | None:
        async with stack.services.sessions() as session:
            return await session.scalar(select(Call).where(
                Call.linkedid == call.linkedid, Call.topic.is_not(None)))

    row = await wait_until(stored, 30, "concurrent call stored")
    assert (row.topic, row.ivr_path) == ("support_measures", "3")
    assert stack.agi.stats["protocol_errors"] >= 42
    assert stack.agi.stats["flow_errors"] == 0
    # Every bad connection is gone; only nothing (or the real call, finishing) is left.
    await wait_until(lambda: _handlers_at_most(stack, 0), 15, "bad connections released")


async def _handlers_at_most(stack: Stack, n: int) -> bool:
    return len(stack.agi._handlers) <= n


FLOOD_CLIENT = r"""
import asyncio, sys
async def one(host, port):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"agi_network_script: " + b"x" * (1024 * 1024))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        ok = data == b""
    except (ConnectionResetError, BrokenPipeError):
        ok = True
    writer.close()
    return ok
async def main():
    results = await asyncio.gather(*[one(sys.argv[1], int(sys.argv[2])) for _ in range(20)])
    print(sum(results))
asyncio.run(main())
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_memory_stays_bounded_under_oversized_headers(stack: Stack) -> None:
    """Twenty 1 MB headers at once must not be buffered: the line limit cuts each off.

    The flooding clients run in another process, so only the server's memory is traced.
    """
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOOD_CLIENT, stack.settings.agi.host, str(stack.agi.port),
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        await wait_until(lambda: _handlers_at_most(stack, 0), 10, "connections released")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.decode().strip() == "20", "every flooding connection is closed by the server"
    # Unbounded buffering would hold ~20 MB; the stream limit keeps each near 16 KB.
    assert peak - before < 4 * 1024 * 1024, f"peak grew by {(peak - before) / 1e6:.1f} MB"
