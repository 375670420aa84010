"""The FastAGI wire protocol: the environment Asterisk sends, typed commands, their replies.

Everything read from the socket is bounded: the line length by the stream's limit, the
number of environment lines, and the time each read may take. Bytes that are not UTF-8 are
replaced, never trusted.
"""

from __future__ import annotations

import asyncio
import functools
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
    """The ``agi_*`` header. Its lines are kept as Asterisk sent them, each after a "\n"
    and ending with one, every byte a character (latin-1), and a value is found in them
    when asked for, and read as UTF-8: a flow reads a handful of the ~30, and a dict of
    them all cost a tenth of the server's work on a call (a line split and a key hashed
    per line, ~2,800 instructions each)."""

    text: str = "\n"
    script: str = ""
    args: list[str] = field(default_factory=list)

    def get(self, key: str, default: str = "") -> str:
        value = _value(self.text, f"\n{key}: ")
        return default if value is None else value

    @property
    def values(self) -> dict[str, str]:
        """Every line's key and value (for logs and tests: flows use :meth:`get`)."""
        return {key: _utf8(value) for key, _, value in (
            line.partition(": ") for line in self.text.split("\n") if ": " in line)}

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


def read_error(exc: Exception) -> AGIError:
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
        raise read_error(exc) from exc
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
            return _parse_env(_as_text(values))
        carry = b""
        if not line.endswith(b"\r\n"):
            carry = await reader.readexactly(1)
            if carry == b"\n":
                return _parse_env(_as_text(values))
            try:
                rest = carry + await reader.readuntil(b"\n\n")
            except asyncio.LimitOverrunError:
                pass  # the line by line reading below bounds each line
            else:
                # The blank line's "\n" ends the text. Latin-1 keeps a byte a character
                # (a byte string's speed when searched); values are read as UTF-8 when
                # taken out of it.
                return _parse_env(_checked(b"".join((b"\n", line, rest[:-1])).decode(
                    "latin-1")))
        for _ in range(MAX_ENV_LINES - 1):
            line, carry = carry + await reader.readuntil(b"\n"), b""
            if not _env_line(values, line):
                return _parse_env(_as_text(values))
        raise AGIProtocolError(f"more than {MAX_ENV_LINES} environment lines")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise read_error(exc) from exc


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


def _checked(text: str) -> str:
    """The header's text, once every line is an ``agi_`` line without a stray CR (counted
    in C: no line by line work); else it is taken line by line, which refuses a bad line
    by name and drops a CR at a line's end, as for a header read line by line. (An
    ``agi_`` line without ": " is let through: it has no value to find.)"""
    lines = text.count("\n") - 1
    if lines > MAX_ENV_LINES:
        raise AGIProtocolError(f"more than {MAX_ENV_LINES} environment lines")
    if text.count("\nagi_") == lines and "\r" not in text:
        return text
    values: dict[str, str] = {}
    _env_lines(values, _utf8(text[1:-1]).split("\n"))
    return _as_text(values)


def _as_text(values: dict[str, str]) -> str:
    """Lines read one by one (as UTF-8) as the header's text."""
    return ("\n" + "".join(f"{key}: {value}\n" for key, value in values.items())).encode(
        "utf-8").decode("latin-1")


def _utf8(latin1: str) -> str:
    return latin1 if latin1.isascii() else latin1.encode("latin-1").decode(
        "utf-8", errors="replace")


def _value(text: str, needle: str) -> str | None:
    """The value of the line that ``needle`` ("\\nkey: ") starts in ``text``, or None."""
    at = text.find(needle)
    if at < 0:
        return None
    start = at + len(needle)
    return _utf8(text[start:text.index("\n", start)])


def _args(text: str) -> list[str]:
    """``agi_arg_1``, ``agi_arg_2``, … up to the first missing. Asterisk sends them in
    order, one after the other: each is looked for after the one before (a search of the
    whole header costs ~5,000 instructions), and from the start only when not found there."""
    args: list[str] = []
    at = 0
    for needle in _ARGS:
        found = text.find(needle, at)
        if found < 0 < at:
            found = text.find(needle)
        if found < 0:
            break
        start = found + len(needle)
        at = text.index("\n", start)
        args.append(_utf8(text[start:at]))
    return args


_ARGS = tuple(f"\nagi_arg_{n}: " for n in range(1, MAX_ENV_LINES + 1))


def _parse_env(text: str) -> AGIEnv:
    script = _value(text, "\nagi_network_script: ")
    if not script:
        request = _value(text, "\nagi_request: ")
        if script is None and request is None:
            raise AGIProtocolError("environment has neither agi_network_script nor agi_request")
        script = urlsplit(request or "").path.lstrip("/")
    # Asterisk numbers the arguments from 1, without gaps.
    return AGIEnv(text, script.partition("?")[0].strip("/"), _args(text))


@functools.lru_cache(maxsize=1024)
def quote(arg: str) -> str:
    """Quote one command argument the way res_agi's parser expects. Kept for the arguments
    that come again (prompts' paths, variables' names and values): a call quotes eleven,
    2,100 instructions each, where a hit in the cache is a few hundred."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def usual_reply(data: bytes) -> Reply | None:
    """The usual reply — ``200 result=<digits>``, or a played file's ``200 result=<digits>
    endpos=<digits>`` — without decoding or a pattern; else None. The reply lines a call
    gets are few and come again ("200 result=1" to every SET VARIABLE, the same end of a
    prompt played through): each is kept, so most replies are one dictionary lookup. Built
    anew, a reply's few steps were ~20 µs of a quiet time's wake-up on a small VM, where
    the code runs cold; eight of them a call."""
    reply = _USUAL.get(data)
    if reply is not None or not data.startswith(b"200 result="):
        return reply
    raw, sep, endpos = data[11:-1].partition(b" endpos=")
    if not raw.isdigit() or (sep and not endpos.isdigit()):
        return None
    reply = Reply(200, raw.decode("ascii"), "", int(endpos) if endpos else None)
    if len(_USUAL) < _USUAL_MAX:
        _USUAL[data] = reply
    return reply


_USUAL: dict[bytes, Reply] = {}  # usual reply lines seen, by their bytes (Reply is a tuple)
_USUAL_MAX = 1024  # endpos varies with where a caller interrupted: the first ones are kept


async def reply_from(data: bytes, reader: asyncio.StreamReader) -> Reply:
    """The reply whose first line is ``data`` (more is read only for the ``520-`` form)."""
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
