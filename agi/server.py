"""Our FastAGI server on ``asyncio.start_server``.

One catch point: a flow that cannot continue raises; the server logs it and sends the
channel to the fallback context, so no caller is dropped because our code failed. Garbage on
the socket (port probes, truncated or oversized headers, non-UTF-8 bytes) closes only that
connection; every read is bounded in size and time.

Who may take a place: only the addresses of ``allowed_peers`` (Asterisk's) are served; any
other peer is closed as its connection is made, before a byte of it is read. A connection
that has not sent its header yet is *pending*: pending connections have their own small cap,
apart from the calls' ``max_connections``, so idle sockets never take a call's place. At the
cap a new connection displaces the oldest pending one that had time to send its header
(Asterisk sends it as it connects); the header timeout closes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from ivr import dialplan

from .channel import AGIChannel, Watchdog
from .protocol import MAX_LINE, AGIEnv, AGIError, AGIHangup

log = logging.getLogger(__name__)

# A flood of unwelcome connections gets one warning per kind a minute, the rest at debug.
WARN_EVERY = 60.0


@dataclass
class CallContext:
    """What a flow gets: the call's AGI channel and environment, and the shared services."""

    agi: AGIChannel
    env: AGIEnv
    services: Any


Flow = Callable[[CallContext], Awaitable[None]]


class UnknownScript(Exception):
    pass


class FastAGIServer:
    def __init__(
        self,
        routes: Mapping[str, Flow],
        services: Any,
        *,
        host: str,
        port: int,
        header_timeout: float = 5.0,
        command_timeout: float = 60.0,
        max_connections: int = 1200,
        max_pending: int = 128,
        pending_grace: float = 2.0,
        allowed_peers: Iterable[str | IPv4Network | IPv6Network] = ("127.0.0.1",),
        watchdog: Watchdog | None = None,
        latency: Callable[[str, float], None] | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.services = services
        self.host = host
        self.port = port
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_connections = max_connections
        self.max_pending = max_pending
        # A pending connection younger than this is never displaced: a burst of calls
        # accepted at once is let in over the cap while their headers are on the way.
        self.pending_grace = pending_grace
        self.allowed_peers = [ip_network(peer) for peer in allowed_peers]
        self.watchdog = watchdog
        # Told, per script, our own time before each command (ivr.metrics).
        self.latency = latency
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        # Connections still owing their header, oldest first: when each was accepted.
        self._pending: dict[asyncio.StreamWriter, tuple[float, asyncio.Task[None]]] = {}
        self._quiet_until: dict[str, float] = {}  # per kind of unwelcome connection
        self.stats = {"connections": 0, "rejected": 0, "protocol_errors": 0, "flow_errors": 0,
                      "foreign_peers": 0, "displaced": 0}

    def calls_in_progress(self) -> int:
        """Connections past their header: calls in the middle of one of their AGI steps."""
        return len(self._handlers) - len(self._pending)

    def pending_connections(self) -> int:
        """Connections still owing their header."""
        return len(self._pending)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, limit=MAX_LINE,
            # A burst of calls arrives while the loop is busy: the kernel must hold them
            # rather than refuse them (asyncio's default backlog is 100).
            backlog=max(128, self.max_connections))
        # Port 0 in tests: learn the one the OS gave.
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%d (%d scripts)", self.host, self.port, len(self.routes))

    async def close(self, grace: float = 5.0) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for _, task in self._pending.values():  # not calls yet: nothing to finish
            task.cancel()
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Called as the connection is made, before its transport reads anything (a plain
        function, not a coroutine, for that): a foreign peer is closed with nothing read."""
        peer = writer.get_extra_info("peername")
        if not self.allows(peer):
            writer.transport.abort()
            self._note("foreign_peers", "FastAGI: closed a connection from %s, "
                       "not in agi.allowed_peers", peer)
            return
        self.stats["connections"] += 1
        if self.calls_in_progress() >= self.max_connections:
            writer.transport.abort()
            self._note("rejected", "FastAGI: %d calls in progress, refusing one from %s",
                       self.max_connections, peer, level=logging.ERROR)
            return
        self._make_room()
        task = asyncio.create_task(self._serve(reader, writer))
        self._handlers.add(task)
        self._pending[writer] = (asyncio.get_running_loop().time(), task)
        task.add_done_callback(functools.partial(self._finished, writer))

    def allows(self, peer: Any) -> bool:
        """Whether a peer (a socket's peername) is one of ``allowed_peers``."""
        try:
            address = ip_address(peer[0])
        except (TypeError, ValueError, IndexError):
            return False
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's IPv4 peer
        return any(address in network for network in self.allowed_peers)

    def _make_room(self) -> None:
        """At the pending cap, close the oldest pending connections that had their time."""
        now = asyncio.get_running_loop().time()
        while len(self._pending) >= self.max_pending:
            writer, (since, task) = next(iter(self._pending.items()))
            if now - since < self.pending_grace:
                return
            del self._pending[writer]
            writer.transport.abort()
            task.cancel()
            self._note("displaced", "FastAGI: no header from %s yet, closed for a new "
                       "connection", writer.get_extra_info("peername"))

    def _finished(self, writer: asyncio.StreamWriter, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._pending.pop(writer, None)
        writer.close()  # what is still buffered is sent first; nothing to wait for
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("FastAGI: connection handler failed", exc_info=exc)

    def _note(self, kind: str, message: str, *args: object,
              level: int = logging.WARNING) -> None:
        """Count an unwelcome connection; log its kind at ``level`` at most every
        WARN_EVERY seconds, and at debug level in between."""
        self.stats[kind] += 1
        now = asyncio.get_running_loop().time()
        if now < self._quiet_until.get(kind, 0.0):
            log.debug(message, *args)
            return
        self._quiet_until[kind] = now + WARN_EVERY
        log.log(level, message + " (%d of this kind so far)", *args, self.stats[kind])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            agi = await AGIChannel.accept(
                reader, writer, header_timeout=self.header_timeout,
                command_timeout=self.command_timeout, watchdog=self.watchdog)
        except AGIError as exc:
            self._note("protocol_errors", "FastAGI: dropped connection from %s: %s",
                       writer.get_extra_info("peername"), exc)
            return
        finally:
            self._pending.pop(writer, None)
        if self.latency is not None:
            # Known scripts only: a peer's made-up names never become new series.
            script = agi.env.script if agi.env.script in self.routes else "unknown"
            agi.latency = functools.partial(self.latency, script)
        await self._run_flow(CallContext(agi=agi, env=agi.env, services=self.services))

    async def _run_flow(self, call: CallContext) -> None:
        script = call.env.script
        try:
            flow = self.routes.get(script)
            if flow is None:
                raise UnknownScript(f"no flow for script {script!r}")
            await flow(call)
            await call.agi.set_variable(dialplan.FLOW_OK, "1")
        except AGIHangup:
            log.info("FastAGI %s: caller hung up on %s", script, call.env.channel)
        except Exception:
            self.stats["flow_errors"] += 1
            log.exception("FastAGI %s failed on %s; sending to %s",
                          script, call.env.channel, dialplan.FALLBACK_CONTEXT)
            with contextlib.suppress(AGIError, OSError):
                await call.agi.goto(dialplan.FALLBACK_CONTEXT)
