"""Typed AGI commands on one call's connection."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .protocol import (
    AGIEnv,
    AGIHangup,
    AGIProtocolError,
    AGITimeout,
    Reply,
    quote,
    read_header,
    read_reply,
)

ALL_KEYS = "0123456789*#"


@dataclass(frozen=True)
class Watchdog:
    """Before every media command the flow renews Asterisk's ``TIMEOUT(absolute)`` to what
    the command should take plus ``margin`` seconds. A server that dies or goes mute stops
    renewing, the lease runs out and the dialplan's ``T`` extension frees the caller."""

    margin: float
    duration_of: Callable[[str], float]  # seconds of audio in a prompt file


class AGIChannel:
    """One call's FastAGI connection. Every command has a deadline, and one command at a
    time is sent (a flow is sequential; a second one while a reply is awaited is refused).

    Media commands (stream file, get data, wait for digit) return ``result=-1`` when the
    caller hangs up; that becomes :class:`AGIHangup`, so flows never mistake it for input.
    After a timeout the connection is done: a late reply would pair with the next command.
    """

    def __init__(
        self,
        env: AGIEnv,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout: float,
        watchdog: Watchdog | None = None,
        latency: Callable[[float], None] | None = None,
    ) -> None:
        self.env = env
        self.watchdog = watchdog
        self.hung_up = False
        self._reader = reader
        self._writer = writer
        self._timeout = command_timeout
        self._busy = False  # a command awaits its reply
        self._timed_out = False
        # Our own time before each command (since the header or the last reply): /metrics.
        self.latency = latency
        self._since = time.monotonic()

    @classmethod
    async def accept(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        header_timeout: float,
        command_timeout: float,
        watchdog: Watchdog | None = None,
    ) -> AGIChannel:
        """A new connection's channel, once its ``agi_*`` header came within
        ``header_timeout``."""
        try:
            async with asyncio.timeout(header_timeout):
                env = await read_header(reader)
        except TimeoutError:
            raise AGITimeout(f"environment not complete within {header_timeout:g}s") from None
        return cls(env, reader, writer, command_timeout=command_timeout, watchdog=watchdog)

    async def command(self, line: str, *, extra_timeout: float = 0.0) -> Reply:
        """Send one command line and read its reply within the command's deadline."""
        if any(c in line for c in "\r\n\0"):
            # An argument would end the command early and smuggle in one of its own.
            raise AGIProtocolError("a command is one line, without CR, LF or NUL")
        if self._timed_out:
            raise AGITimeout("an earlier command got no reply in time")
        if self._busy:
            # Two commands at once would pair each with the other's reply.
            raise AGIProtocolError("a command was sent while another awaits its reply")
        self._busy = True
        seconds = self._timeout + extra_timeout
        if self.latency is not None:
            self.latency(time.monotonic() - self._since)
        try:
            async with asyncio.timeout(seconds):
                self._writer.write(line.encode("utf-8") + b"\n")
                await self._writer.drain()
                reply = await read_reply(self._reader)
                self._since = time.monotonic()
                return reply
        except TimeoutError:
            self._timed_out = True
            raise AGITimeout(f"no reply within {seconds:g}s") from None
        except AGIHangup:
            self.hung_up = True
            raise
        except OSError as exc:  # the connection broke while the command was written
            self.hung_up = True
            raise AGIHangup(f"connection lost: {exc}") from exc
        finally:
            self._busy = False

    async def renew_lease(self, seconds: float) -> None:
        await self.command(f'SET VARIABLE "TIMEOUT(absolute)" "{math.ceil(seconds)}"')

    async def _media(self, line: str, *, extra_timeout: float = 0.0, playing: str = "") -> Reply:
        if self.watchdog is not None:
            audio = self.watchdog.duration_of(playing) if playing else 0.0
            await self.renew_lease(self.watchdog.margin + audio + extra_timeout)
        reply = await self.command(line, extra_timeout=extra_timeout)
        if reply.raw.startswith("-"):
            self.hung_up = True
            raise AGIHangup(f"{line.split(' ', 2)[:2]} returned -1")
        return reply

    # --- commands -----------------------------------------------------------------------

    async def answer(self) -> None:
        await self._media("ANSWER")

    async def stream_file(self, filename: str, escape_digits: str = ALL_KEYS) -> str:
        """Play a sound file; return the key that interrupted it, or ""."""
        reply = await self._media(f"STREAM FILE {quote(filename)} {quote(escape_digits)}",
                                  playing=filename)
        return reply.digit

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Play a prompt and collect up to ``max_digits`` keys ending with ``#``.

        Returns (digits, timed_out). Keys pressed during the prompt count as input.
        """
        reply = await self._media(
            f"GET DATA {quote(filename)} {int(timeout_ms)} {int(max_digits)}",
            extra_timeout=timeout_ms * max(1, max_digits) / 1000,
            playing=filename,
        )
        # res_agi reports the collected keys as the result's text ("0123", "12*"), not a number.
        return reply.raw, reply.data == "timeout"

    async def wait_for_digit(self, timeout_ms: int) -> str:
        reply = await self._media(
            f"WAIT FOR DIGIT {int(timeout_ms)}", extra_timeout=timeout_ms / 1000
        )
        return reply.digit

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f"SET VARIABLE {quote(name)} {quote(value)}")

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command(f"GET VARIABLE {quote(name)}")
        return reply.data if reply.result == 1 else None

    async def exec(self, application: str, *args: str) -> int:
        reply = await self.command(f"EXEC {application} {quote(','.join(args))}")
        if reply.result == -2:
            raise AGIProtocolError(f"application {application} not found")
        return reply.result

    async def goto(self, context: str, extension: str = "s", priority: int = 1) -> None:
        """Send the channel elsewhere in the dialplan once the AGI returns."""
        await self.exec("Goto", context, extension, str(priority))

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command(f"VERBOSE {quote(message)} {int(level)}")

    async def hangup(self) -> None:
        await self.command("HANGUP")

