"""The FastAGI wire protocol: the environment Asterisk sends, and the replies to commands.

Everything read from the socket is bounded: the line length by the stream's limit and the
number of environment lines here, the time by the caller (:class:`agi.channel.AGIChannel`).
Bytes that are not UTF-8 are replaced, never trusted.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

MAX_LINE = 8192           # longest line we accept (StreamReader limit)
MAX_ENV_LINES = 128       # Asterisk sends ~30 agi_* lines plus one per argument
_RESULT = re.compile(r"200 result=(\S*)(?: \((.*)\))?(?: endpos=(\d+))?")


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


@dataclass(frozen=True)
class Reply:
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
    """The ``agi_*`` header: every line's key and value, the script and its arguments."""

    values: dict[str, str] = field(default_factory=dict)
    script: str = ""
    args: list[str] = field(default_factory=list)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def query(self) -> dict[str, str]:
        """The ``?a=b`` parameters of ``agi_request``."""
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


async def read_line(reader: asyncio.StreamReader) -> str:
    """One line without its line end; the caller bounds the time it may take."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise AGIHangup("connection closed") from exc
    except asyncio.LimitOverrunError as exc:
        raise AGIProtocolError(f"line longer than {MAX_LINE} bytes") from exc
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


async def read_header(reader: asyncio.StreamReader) -> AGIEnv:
    """Read the ``agi_*`` header up to the blank line that ends it.

    The first line that is not ``agi_<key>: <value>`` refuses the connection at once, so a
    stray peer's garbage (an HTTP request, a port scanner's probe) costs one line."""
    values: dict[str, str] = {}
    for _ in range(MAX_ENV_LINES):
        line = await read_line(reader)
        if not line:
            return _env(values)
        key, sep, value = line.partition(": ")
        if not sep or not key.startswith("agi_"):
            raise AGIProtocolError(f"not an AGI environment line: {line[:80]!r}")
        values[key] = value
    raise AGIProtocolError(f"more than {MAX_ENV_LINES} environment lines")


def _env(values: dict[str, str]) -> AGIEnv:
    script = values.get("agi_network_script")
    if not script:
        request = values.get("agi_request")
        if script is None and request is None:
            raise AGIProtocolError("environment has neither agi_network_script nor agi_request")
        script = urlsplit(request or "").path
    args: list[str] = []
    # Asterisk numbers the arguments from 1, without gaps.
    while (arg := values.get(f"agi_arg_{len(args) + 1}")) is not None:
        args.append(arg)
    return AGIEnv(values, script.partition("?")[0].strip("/"), args)


def quote(arg: str) -> str:
    """Quote one command argument the way res_agi's parser expects. CR, LF and NUL are left
    in: :meth:`AGIChannel.command` refuses a line holding them."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    """The reply to the command just sent; an error reply raises."""
    line = await read_line(reader)
    if line.startswith("HANGUP"):
        # Asterisk announces a hang-up once; the real reply to our command follows.
        raise AGIHangup("channel hung up")
    if line.startswith("520-"):  # a usage text, its last line "520 End of proper usage."
        while not line.startswith("520 "):
            line = await read_line(reader)
        raise AGICommandError("invalid command syntax (520)")
    if m := _RESULT.match(line):
        endpos = m.group(3)
        return Reply(200, m.group(1), m.group(2) or "", int(endpos) if endpos else None)
    code = line[:3]
    if code == "511":
        raise AGIHangup("command not permitted on a dead channel")
    if code.isdigit():
        raise AGICommandError(f"Asterisk refused the command: {line[:200]}")
    raise AGIProtocolError(f"unexpected reply: {line[:200]!r}")
