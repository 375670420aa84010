"""Our FastAGI server on ``asyncio.start_server``.

One catch point: a flow that cannot continue raises; the server logs it and sends the
channel to the fallback context, so no caller is dropped because our code failed. Garbage on
the socket (port probes, truncated or oversized headers, non-UTF-8 bytes) closes only that
connection; every read is bounded in size and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import dialplan
from .channel import AGIChannel, Watchdog
from .protocol import MAX_LINE, AGIEnv, AGIError, AGIHangup

log = logging.getLogger(__name__)


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
        max_connections: int = 500,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.services = services
        self.host = host
        self.port = port
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_connections = max_connections
        self.watchdog = watchdog
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.stats = {"connections": 0, "rejected": 0, "protocol_errors": 0, "flow_errors": 0}

    def calls_in_progress(self) -> int:
        """Connections being served: calls in the middle of one of their AGI steps."""
        return len(self._handlers)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, limit=MAX_LINE
        )
        # Port 0 in tests: learn the one the OS gave.
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%d (%d scripts)", self.host, self.port, len(self.routes))

    async def close(self, grace: float = 5.0) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)
            writer.close()  # what is still buffered is sent first; nothing to wait for

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        if len(self._handlers) > self.max_connections:
            self.stats["rejected"] += 1
            log.error("FastAGI: over %d concurrent connections, refusing one", self.max_connections)
            return
        try:
            agi = await AGIChannel.accept(
                reader, writer, header_timeout=self.header_timeout,
                command_timeout=self.command_timeout, watchdog=self.watchdog)
        except AGIError as exc:
            self.stats["protocol_errors"] += 1
            log.warning("FastAGI: dropped connection from %s: %s",
                        writer.get_extra_info("peername"), exc)
            return
        try:
            await self._run_flow(CallContext(agi=agi, env=agi.env, services=self.services))
        finally:
            agi.close()

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
