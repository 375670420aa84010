"""FastAGI against foreign peers and idle floods (issue 25).

Only Asterisk's address may speak AGI to us: a foreign peer is closed before a byte of it
is read. Connections that never send their header have their own small cap, apart from
the calls' places, and the header timeout closes them: a flood of idle sockets, foreign or
from Asterisk's own address, never sends a real call to ``agi-fail`` (R-H1: the caller's
menu choice is still taken and recorded). On Linux any 127.x address is loopback, so a
client bound to 127.0.0.2 is a foreign peer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from agi.server import CallContext, FastAGIServer
from ivr.ami import AMIClient
from ivr.db.models import Call
from ivr.simulate import EventRecorder, SimulatedCall, is_event, place_call, wait_until

from ..conftest import Stack

FOREIGN = "127.0.0.2"
HEADER = b"agi_network: yes\nagi_network_script: probe\nagi_channel: Local/x-1\n\n"

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(port: int, local: str = "127.0.0.1") -> Streams:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float = 5) -> bool:
    """True when the server closed the connection (EOF or reset) within ``timeout``."""
    try:
        data = await asyncio.wait_for(reader.read(), timeout)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return data == b""


async def _idle_flood(port: int, count: int, local: str) -> list[Streams]:
    """``count`` connections that send nothing, opened in batches the listen backlog takes
    (a full backlog drops SYNs, and a dropped SYN is retried only after a second)."""
    opened: list[Streams] = []
    for start in range(0, count, 50):
        opened += await asyncio.gather(
            *[_connect(port, local) for _ in range(min(50, count - start))])
    return opened


def _close_all(streams: list[Streams]) -> None:
    for _, writer in streams:
        writer.close()


class Probe:
    """The ``probe`` flow: counts the calls it served."""

    def __init__(self) -> None:
        self.served = 0

    async def __call__(self, call: CallContext) -> None:
        self.served += 1


MakeServer = Callable[..., Awaitable[tuple[FastAGIServer, Probe]]]


@pytest_asyncio.fixture
async def server_with() -> AsyncIterator[MakeServer]:
    """A FastAGI server on a free port with the ``probe`` flow, and that flow."""
    servers: list[FastAGIServer] = []

    async def make(**options: Any) -> tuple[FastAGIServer, Probe]:
        probe = Probe()
        server = FastAGIServer({"probe": probe}, None, host="127.0.0.1", port=0,
                               command_timeout=2, **options)
        servers.append(server)
        await server.start()
        return server, probe

    yield make
    for server in servers:
        await server.close()


async def _serve_a_call(server: FastAGIServer, streams: Streams | None = None) -> None:
    """A well-formed AGI call: its header, then the OK the server sets once the flow ran."""
    reader, writer = streams or await _connect(server.port)
    writer.write(HEADER)
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line == b'SET VARIABLE "HOTLINE_FLOW_OK" "1"\n'
    writer.write(b"200 result=1\n")
    writer.close()


async def test_a_foreign_peer_is_closed_before_a_byte_is_read(
    server_with: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, probe = await server_with(header_timeout=30)
    fed: list[bytes] = []
    feed_data = asyncio.StreamReader.feed_data

    def recording(self: asyncio.StreamReader, data: bytes) -> None:
        fed.append(data)
        feed_data(self, data)

    monkeypatch.setattr(asyncio.StreamReader, "feed_data", recording)
    reader, writer = await _connect(server.port, FOREIGN)
    writer.write(HEADER)  # a well-formed call: refused all the same
    # Closed at once, not after the 30 s a silent allowed peer would get.
    assert await _closed_by_server(reader, timeout=5)
    writer.close()
    monkeypatch.undo()
    assert fed == [], "the server read from a foreign peer"
    assert server.stats["foreign_peers"] == 1
    assert (server.stats["connections"], server.stats["protocol_errors"]) == (0, 0)
    assert probe.served == 0
    await _serve_a_call(server)  # Asterisk's own address is served as ever
    assert probe.served == 1


async def test_a_flood_of_foreign_peers_is_counted_and_warned_about_once(
    server_with: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = await server_with()
    caplog.set_level(logging.DEBUG, logger="agi.server")
    flood = await _idle_flood(server.port, 20, FOREIGN)
    try:
        closed = await asyncio.gather(*[_closed_by_server(reader) for reader, _ in flood])
    finally:
        _close_all(flood)
    assert all(closed)
    assert server.stats["foreign_peers"] == 20
    foreign = [r for r in caplog.records if "not in agi.allowed_peers" in r.getMessage()]
    assert [r.levelno for r in foreign] == [logging.WARNING] + [logging.DEBUG] * 19


def test_allowed_peers_are_addresses_and_networks() -> None:
    server = FastAGIServer({}, None, host="127.0.0.1", port=0,
                           allowed_peers=["127.0.0.1", "10.20.0.0/16", "::1"])
    assert server.allows(("127.0.0.1", 4000))
    assert server.allows(("10.20.3.4", 4000))
    assert server.allows(("::1", 4000, 0, 0))
    assert server.allows(("::ffff:127.0.0.1", 4000, 0, 0))  # IPv4 on a dual-stack socket
    assert not server.allows(("10.21.0.1", 4000))
    assert not server.allows(("127.0.0.2", 4000))
    assert not server.allows(("::2", 4000, 0, 0))
    assert not server.allows(None)  # a socket without a peer address
    assert not server.allows(("not an address", 1))


async def test_idle_connections_over_the_pending_cap_close_the_oldest(
    server_with: MakeServer
) -> None:
    server, probe = await server_with(header_timeout=30, max_pending=4, pending_grace=0,
                               max_connections=2)
    idle: list[Streams] = []
    for n in range(1, 11):  # one by one: the order the server takes them in is known
        idle.append(await _connect(server.port))

        async def accepted(n: int = n) -> bool:
            return server.stats["connections"] == n

        await wait_until(accepted, 5, f"connection {n} accepted")
    try:
        closed = await asyncio.gather(*[_closed_by_server(r) for r, _ in idle[:6]])
        assert all(closed), "the six oldest idle connections were closed"
        assert not any(reader.at_eof() for reader, _ in idle[6:])
        assert (server.pending_connections(), server.stats["displaced"]) == (4, 6)
        # A call gets in though idle sockets outnumber the calls' places (2).
        await _serve_a_call(server)
        assert (probe.served, server.stats["displaced"]) == (1, 7)
    finally:
        _close_all(idle)


async def test_a_burst_of_calls_is_not_cut_by_the_pending_cap(
    server_with: MakeServer
) -> None:
    """Connections accepted at once whose headers are still on the way are let in over
    the cap: only a connection silent for longer than the grace gives way."""
    server, probe = await server_with(header_timeout=30, max_pending=2, pending_grace=30)
    burst = [await _connect(server.port) for _ in range(6)]

    async def accepted() -> bool:
        return server.pending_connections() == 6

    await wait_until(accepted, 5, "the burst accepted")
    await asyncio.gather(*[_serve_a_call(server, streams) for streams in burst])
    assert (probe.served, server.stats["displaced"]) == (6, 0)


# --- through the real Asterisk ---------------------------------------------------------


async def _call_row(stack: Stack, linkedid: str) -> Call | None:
    async with stack.services.sessions() as session:
        return await session.scalar(
            select(Call).where(Call.linkedid == linkedid, Call.topic.is_not(None)))


async def _assert_reaches_its_flow(stack: Stack, ami: AMIClient, events: EventRecorder,
                                   caller: str) -> SimulatedCall:
    """A real call through Asterisk chooses topic 3 in the menu and is recorded (R-H1),
    and never passes through ``agi-fail``."""
    call = await place_call(ami, caller=caller, number="88001234567", dtmf="3",
                            delay=1, hold=3)
    row = await wait_until(lambda: _call_row(stack, call.linkedid), 30, "call stored")
    assert (row.topic, row.ivr_path) == ("support_measures", "3")
    await events.wait_for(lambda e: call.ours(e) and is_event("Hangup")(e), 20, "hung up")
    assert not events.matching(
        lambda e: call.ours(e) and is_event("UserEvent", UserEvent="HotlineAgiFail")(e))
    assert stack.agi.stats["flow_errors"] == 0
    return call


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_600_idle_foreign_sockets_leave_a_real_call_its_ivr(
    stack: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    flood = await _idle_flood(stack.agi.port, 600, FOREIGN)
    try:
        closed = await asyncio.gather(*[_closed_by_server(reader) for reader, _ in flood])
        assert all(closed), "every foreign connection is closed by the server"
        # The flood's sockets stay open on the attacker's side while the call comes.
        await _assert_reaches_its_flow(stack, ami, events, "79005550201")
    finally:
        _close_all(flood)
    assert stack.agi.stats["foreign_peers"] == 600
    assert stack.agi.stats["protocol_errors"] == 0, "nothing was read from the flood"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_idle_sockets_from_asterisks_address_do_not_keep_a_call_out(
    stack: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """More idle sockets from 127.0.0.1 than the pending cap, and than the calls' places:
    the call still gets its place, and the header timeout closes the idle ones."""
    stack.agi.max_pending, stack.agi.max_connections = 8, 8
    idle = await _idle_flood(stack.agi.port, 24, "127.0.0.1")
    try:
        await _assert_reaches_its_flow(stack, ami, events, "79005550202")
        closed = await asyncio.gather(*[
            _closed_by_server(reader, stack.settings.agi.header_timeout + 3)
            for reader, _ in idle])
        assert all(closed), "idle connections are closed by the header timeout"
    finally:
        _close_all(idle)
    assert stack.agi.stats["protocol_errors"] + stack.agi.stats["displaced"] >= 24
