"""The FastAGI wire protocol: the environment Asterisk sends, typed commands, their replies.

Everything read from the socket is bounded: the line length by the stream's limit, the
number of environment lines, and the time each read may take. Bytes that are not UTF-8 are
replaced, never trusted.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit

MAX_LINE = 8192           # longest line we accept (StreamReader limit)
MAX_ENV_LINES = 128       # Asterisk sends ~30 agi_* lines plus one per argument
_RESULT = re.compile(r"^200 result=(\S*)(?: \((.*)\))?(?: endpos=(\d+))?")


class AGIError(Exception):
    """Base of everything the protocol raises."""


class AGIProtocolError(AGIError):
    """The peer sent something that is not FastAGI (garbage, oversize, truncated)."""


class AGITimeout(AGIError):
    """Asterisk did not answer a command in time."""


class AGIHangup(AGIError):
    """The channel hung up (HANGUP line, result=-1 on a media command, 511 dead channel)."""


class AGICommandError(AGIError):
    """Asterisk refused the command (5xx other than a dead channel)."""


class Reply(NamedTuple):  # eight a call: a tuple is made in half the time of a dataclass
    code: int
    raw: str          # the text after result=, e.g. "49", "-1", "0123#" for GET DATA
    data: str = ""    # the text in parentheses, e.g. "timeout" or a variable's value
    endpos: int | None = None

    @property
    def result(self) -> int:
        try:
            return int(self.raw)
        except ValueError:
            return 0

    @property
    def digit(self) -> str:
        """The key a media command returned, or "" when none was pressed."""
        return chr(self.result) if self.result > 0 else ""


@dataclass
class AGIEnv:
    values: dict[str, str]
    script: str = ""
    args: list[str] = field(default_factory=list)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def query(self) -> dict[str, str]:
        """The ``?a=b`` parameters of ``agi_request`` (parsed on demand: no flow uses them)."""
        return dict(parse_qsl(urlsplit(self.get("agi_request")).query))

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def callerid(self) -> str:
        value = self.get("agi_callerid")
        return "" if value == "unknown" else value

    @property
    def dnid(self) -> str:
        value = self.get("agi_dnid")
        return "" if value == "unknown" else value

    @property
    def extension(self) -> str:
        return self.get("agi_extension")


def _read_error(exc: Exception) -> AGIError:
    """What a failed read of the stream means: the peer closed, or sent an overlong line."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return AGIHangup("connection closed")
    return AGIProtocolError(f"line longer than {MAX_LINE} bytes")


async def read_line(reader: asyncio.StreamReader) -> str:
    """One line. The caller bounds the time it may take (the header's deadline, a command's:
    one timer for many reads, not one per read)."""
    try:
        line = await reader.readuntil(b"\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise _read_error(exc) from exc
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


async def read_header(reader: asyncio.StreamReader) -> AGIEnv:
    """Read the ``agi_*`` header; the caller bounds the time (as :class:`AGIChannel` does).

    Asterisk writes the header in one go: after its first line (which tells a stray peer's
    garbage at once) the rest is taken in one read, up to the blank line that ends it, and
    parsed as one text. A header over the stream's limit, or with CRLF line ends, is read
    line by line."""
    values: dict[str, str] = {}
    try:
        line = await reader.readuntil(b"\n")
        if not _env_line(values, line):
            return _parse_env(values)
        carry = b""
        if not line.endswith(b"\r\n"):
            carry = await reader.readexactly(1)
            if carry == b"\n":
                return _parse_env(values)
            try:
                rest = carry + await reader.readuntil(b"\n\n")
            except asyncio.LimitOverrunError:
                pass  # the line by line reading below bounds each line
            else:
                # The last line's "\n" and the blank line's end the text.
                _env_lines(values, rest.decode("utf-8", errors="replace").split("\n")[:-2])
                return _parse_env(values)
        for _ in range(MAX_ENV_LINES - 1):
            line, carry = carry + await reader.readuntil(b"\n"), b""
            if not _env_line(values, line):
                return _parse_env(values)
        raise AGIProtocolError(f"more than {MAX_ENV_LINES} environment lines")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise _read_error(exc) from exc


def _env_line(values: dict[str, str], line: bytes) -> bool:
    """Take one header line into ``values``; False for the blank line that ends the header."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    if not text:
        return False
    _env_lines(values, [text])
    return True


def _env_lines(values: dict[str, str], lines: list[str]) -> None:
    """Take header lines (without their line ends) into ``values``."""
    if len(lines) >= MAX_ENV_LINES:
        raise AGIProtocolError(f"more than {MAX_ENV_LINES} environment lines")
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep or not key.startswith("agi_"):
            if not line.strip("\r"):
                raise AGIProtocolError("a blank line inside the environment")
            raise AGIProtocolError(f"not an AGI environment line: {line[:80]!r}")
        values[key] = value.rstrip("\r") if "\r" in value else value


def _parse_env(values: dict[str, str]) -> AGIEnv:
    script = values.get("agi_network_script")
    if not script:
        if script is None and "agi_request" not in values:
            raise AGIProtocolError("environment has neither agi_network_script nor agi_request")
        script = urlsplit(values.get("agi_request", "")).path.lstrip("/")
    script = script.partition("?")[0].strip("/")
    # Asterisk numbers the arguments from 1, without gaps.
    args: list[str] = []
    while (value := values.get(f"agi_arg_{len(args) + 1}")) is not None:
        args.append(value)
    return AGIEnv(values=values, script=script, args=args)


def quote(arg: str) -> str:
    """Quote one command argument the way res_agi's parser expects."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    """Read one command reply, including the multi-line ``520-`` usage form (the caller
    bounds the time, as :class:`AGIChannel` does)."""
    try:  # read_line's work, inline: eight replies a call
        data = await reader.readuntil(b"\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise _read_error(exc) from exc
    line = data.decode("utf-8", errors="replace").rstrip("\r\n")
    if line.startswith("200 result="):
        raw = line[11:]
        if raw.isdigit():  # the usual reply, "200 result=1": no need for the pattern
            return Reply(200, raw)
    elif line.startswith("HANGUP"):
        # Asterisk announces a hang-up once; the real reply to our command follows.
        raise AGIHangup("channel hung up")
    elif line.startswith("520-"):
        while not line.startswith("520 "):
            line = await read_line(reader)
        raise AGICommandError("invalid command syntax (520)")
    m = _RESULT.match(line)
    if m:
        endpos = int(m.group(3)) if m.group(3) else None
        return Reply(200, m.group(1), m.group(2) or "", endpos)
    code = line[:3]
    if code == "511":
        raise AGIHangup("command not permitted on a dead channel")
    if code.isdigit():
        raise AGICommandError(f"Asterisk refused the command: {line[:200]}")
    raise AGIProtocolError(f"unexpected reply: {line[:200]!r}")
