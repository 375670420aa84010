"""The FastAGI protocol layer against a scripted Asterisk side on a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from agi.channel import AGIChannel
from agi.protocol import (
    MAX_ENV_LINES,
    MAX_LINE,
    AGICommandError,
    AGIEnv,
    AGIHangup,
    AGIProtocolError,
    AGITimeout,
    Reply,
    read_reply,
)
from agi.server import CallContext, FastAGIServer, Flow
from ivr import dialplan
from ivr.simulate import wait_until

ENV = (b"agi_network: yes\nagi_network_script: probe\nagi_request: agi://127.0.0.1/probe\n"
       b"agi_channel: PJSIP/trunk-0001\nagi_uniqueid: 1.1\nagi_callerid: 79001234567\n"
       b"agi_arg_1: first\nagi_arg_2: second\n\n")


class ScriptedAsterisk:
    """Plays Asterisk's side: sends the environment, answers each command from a script."""

    def __init__(self, port: int, replies: list[bytes]) -> None:
        self.port = port
        self.replies = replies
        self.commands: list[str] = []

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(ENV)
        await writer.drain()
        try:
            for reply in self.replies:
                line = await asyncio.wait_for(reader.readline(), 5)
                if not line:
                    break
                self.commands.append(line.decode().strip())
                writer.write(reply)
                await writer.drain()
            # Keep answering the server's closing commands (SET VARIABLE / EXEC Goto).
            while line := await asyncio.wait_for(reader.readline(), 5):
                self.commands.append(line.decode().strip())
                writer.write(b"200 result=0\n")
                await writer.drain()
        finally:
            writer.close()


Seen = dict[str, object]


@pytest_asyncio.fixture
async def server_with() -> AsyncIterator[Callable[..., FastAGIServer]]:
    servers: list[FastAGIServer] = []

    def make(flow: Flow) -> FastAGIServer:
        server = FastAGIServer({"probe": flow}, services=None, host="127.0.0.1", port=0,
                               header_timeout=1, command_timeout=1)
        servers.append(server)
        return server

    yield make
    for s in servers:
        await s.close()


async def _run(server: FastAGIServer, replies: list[bytes]) -> ScriptedAsterisk:
    await server.start()
    peer = ScriptedAsterisk(server.port, replies)
    await peer.run()
    await wait_until(lambda: _drained(server), 5, "server finished the call")
    return peer


async def _drained(server: FastAGIServer) -> bool:
    return not server._handlers


async def test_typed_commands_and_results(server_with: Callable[..., FastAGIServer]) -> None:
    seen: Seen = {}

    async def flow(call: CallContext) -> None:
        seen["args"] = call.env.args
        seen["digit"] = await call.agi.stream_file("/p/greeting")
        seen["data"] = await call.agi.get_data("/p/menu", 3000, 6)
        seen["var"] = await call.agi.get_variable("CALLERID(num)")
        await call.agi.set_variable("HOTLINE_TOPIC", 'a "quoted" value')

    server = server_with(flow)
    peer = await _run(server, [b"200 result=50 endpos=1234\n", b"200 result=0123* (timeout)\n",
                               b"200 result=1 (79001234567)\n", b"200 result=1\n"])
    assert seen == {"args": ["first", "second"], "digit": "2", "data": ("0123*", True),
                    "var": "79001234567"}
    assert peer.commands[0] == 'STREAM FILE "/p/greeting" "0123456789*#"'
    assert peer.commands[1] == 'GET DATA "/p/menu" 3000 6'
    assert peer.commands[3] == 'SET VARIABLE "HOTLINE_TOPIC" "a \\"quoted\\" value"'
    assert peer.commands[-1] == f'SET VARIABLE "{dialplan.FLOW_OK}" "1"'


async def test_hangup_line_and_minus_one_end_the_flow_quietly(
    server_with: Callable[..., FastAGIServer]
) -> None:
    reached: list[str] = []

    async def flow(call: CallContext) -> None:
        try:
            await call.agi.stream_file("/p/x")
        except AGIHangup:
            reached.append("hangup")
            raise

    server = server_with(flow)
    peer = await _run(server, [b"HANGUP\n"])
    assert reached == ["hangup"]
    assert server.stats["flow_errors"] == 0
    assert not any(dialplan.FLOW_OK in c or "Goto" in c for c in peer.commands)

    server2 = server_with(flow)
    await _run(server2, [b"200 result=-1 endpos=0\n"])
    assert reached == ["hangup", "hangup"]


async def test_usage_error_raises_and_caller_goes_to_fallback(
    server_with: Callable[..., FastAGIServer]
) -> None:
    async def flow(call: CallContext) -> None:
        await call.agi.command("STREAM FILE")

    server = server_with(flow)
    peer = await _run(server, [b"520-Invalid command syntax.  Proper usage follows:\n"
                               b"Usage: STREAM FILE <filename> <escape digits>\n"
                               b"520 End of proper usage.\n"])
    assert server.stats["flow_errors"] == 1
    assert peer.commands[-1] == f'EXEC Goto "{dialplan.FALLBACK_CONTEXT},s,1"'


class _NullWriter:
    """A stream writer whose socket takes everything at once."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


async def _header(reader: asyncio.StreamReader, timeout: float = 1) -> AGIEnv:
    """The environment as the server reads it: through a new connection's channel."""
    chan = await AGIChannel.accept(reader, _NullWriter(),  # type: ignore[arg-type]
                                   header_timeout=timeout, command_timeout=timeout)
    return chan.env


async def test_silent_asterisk_times_out_the_command() -> None:
    reader = asyncio.StreamReader()
    chan = AGIChannel(AGIEnv(), reader, _NullWriter(),  # type: ignore[arg-type]
                      command_timeout=0.2)
    with pytest.raises(AGITimeout):
        await chan.answer()
    # A late reply would pair with the wrong command: after a timeout the connection is
    # done (the dialplan sees no HOTLINE_FLOW_OK and takes the caller to the fallback).
    reader.feed_data(b"200 result=0\n")
    with pytest.raises(AGITimeout):
        await chan.command("NOOP")


async def test_a_short_command_after_a_long_one_keeps_its_own_deadline() -> None:
    """A long command (WAIT FOR DIGIT's extra time) followed by a short one: the short
    one times out after its own time, not the long one's."""
    reader = asyncio.StreamReader()
    replies = iter([b"200 result=1\n"])

    class Writer(_NullWriter):
        def write(self, data: bytes) -> None:
            if (line := next(replies, None)) is not None:
                reader.feed_data(line)

    chan = AGIChannel(AGIEnv(), reader, Writer(), command_timeout=0.2)  # type: ignore[arg-type]
    assert await chan.wait_for_digit(5000) == chr(1)
    started = asyncio.get_running_loop().time()
    with pytest.raises(AGITimeout):
        await chan.command("NOOP")  # no reply comes
    assert asyncio.get_running_loop().time() - started < 2.0, "the 5 s deadline was kept"


async def test_a_second_command_while_one_awaits_its_reply_is_refused() -> None:
    """Flows send one command at a time; one sent while another waits would take the
    other's reply. It is refused at once, and the first command still gets its own."""
    reader = asyncio.StreamReader()
    sent: list[bytes] = []

    class Writer(_NullWriter):
        def write(self, data: bytes) -> None:
            sent.append(data)

    chan = AGIChannel(AGIEnv(), reader, Writer(), command_timeout=5)  # type: ignore[arg-type]
    first = asyncio.create_task(chan.get_variable("HOTLINE_TOPIC"))
    await asyncio.sleep(0)
    with pytest.raises(AGIProtocolError):
        await chan.set_variable("HOTLINE_NEXT", "queue")
    assert sent == [b'GET VARIABLE "HOTLINE_TOPIC"\n']
    reader.feed_data(b"200 result=1 (state_services)\n")
    assert await first == "state_services"
    set_next = asyncio.create_task(chan.set_variable("HOTLINE_NEXT", "queue"))
    await asyncio.sleep(0)  # free again once the reply came
    reader.feed_data(b"200 result=1\n")
    await set_next
    assert sent[-1] == b'SET VARIABLE "HOTLINE_NEXT" "queue"\n'


@pytest.mark.parametrize(("header", "limit"), [
    (ENV, MAX_LINE),                                    # Asterisk's
    (b"agi_network_script: probe\n\n", MAX_LINE),       # a header of one line
    (ENV.replace(b"\n", b"\r\n"), MAX_LINE),            # CRLF line ends
    (ENV, 120),                                         # the whole header over the limit
])
async def test_the_environment_is_read_whole_however_it_is_cut(header: bytes,
                                                               limit: int) -> None:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(header + b"200 result=1\n")
    env = await _header(reader)
    assert env.script == "probe"
    if header.startswith(b"agi_network: yes"):
        assert env.args == ["first", "second"] and env.callerid == "79001234567"
    assert await reader.readline() == b"200 result=1\n", "read past the header"


@pytest.mark.parametrize(("tail", "limit"), [
    (b"\n", MAX_LINE),           # Asterisk's
    (b"\r\n", MAX_LINE),         # a stray CR at the last line's end
    (b"\n", 120),                # the whole header over the stream's limit
])
async def test_header_values_are_read_as_utf8(tail: bytes, limit: int) -> None:
    """Every header line is a key of the header's dict: UTF-8 names, a value with ": " in
    it, empty values, arguments up to the first missing one, a key that is only a prefix
    of another's, bytes that are not UTF-8 replaced."""
    lines = [b"agi_network: yes", b"agi_network_script: ivr-entry?lang=ru",
             "agi_calleridname: Иван Петров".encode(), b"agi_callerid: 79001234567",
             b"agi_dnid: unknown", b"agi_arg_1: 1764553200.12", b"agi_arg_2: a: b",
             b"agi_arg_3: ", "agi_arg_4: Жалоба".encode(), b"agi_arg_6: after a gap",
             b"agi_arg_10: tenth", b"agi_rdnis: \xff\xfe1", b"agi_accountcode: "]
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(b"\n".join(lines[:-1]) + b"\n" + lines[-1] + tail + b"\n")
    env = await _header(reader)
    assert env.script == "ivr-entry"
    assert env.args == ["1764553200.12", "a: b", "", "Жалоба"]
    assert env.get("agi_calleridname") == "Иван Петров"
    assert (env.callerid, env.dnid, env.get("agi_accountcode", "-")) == ("79001234567", "", "")
    assert env.get("agi_arg", "missing") == "missing"  # a prefix of agi_arg_1 is not it
    assert env.get("agi_rdnis") == "\ufffd\ufffd1"
    assert env.values["agi_arg_10"] == "tenth" and len(env.values) == len(lines)


async def test_arguments_out_of_order_are_still_found() -> None:
    """Arguments are taken by their number, not by where in the header they came."""
    reader = asyncio.StreamReader()
    reader.feed_data(b"agi_network_script: probe\nagi_arg_2: b\nagi_x: y\nagi_arg_1: a\n\n")
    assert (await _header(reader)).args == ["a", "b"]


@pytest.mark.parametrize("data", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: hotline\r\n", id="http"),  # refused at line 1
    pytest.param(b"agi_network: yes\nagi_channel: x\n\r\nagi_y: z\n\n", id="no-script"),
    pytest.param(b"agi_network: yes\nagi_network_script probe\n\n", id="no-colon"),
    pytest.param(b"agi_network_script: " + b"x" * MAX_LINE + b"\n\n", id="long-line"),
    pytest.param(b"agi_network: yes\n" + b"agi_x: y\n" * MAX_ENV_LINES + b"\n", id="many"),
])
async def test_a_header_that_is_not_agi_is_refused_without_waiting(data: bytes) -> None:
    reader = asyncio.StreamReader(limit=MAX_LINE)
    reader.feed_data(data)
    with pytest.raises(AGIProtocolError):
        await _header(reader, 30)  # the test would wait 30 s if it were not refused


async def test_a_peer_that_stops_mid_header_is_dropped_after_the_header_timeout() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"agi_network: yes\nagi_network_script: probe\n")  # no blank line
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AGITimeout, match=r"environment not complete within 0\.2s"):
        await AGIChannel.accept(reader, _NullWriter(),  # type: ignore[arg-type]
                                header_timeout=0.2, command_timeout=5)
    assert loop.time() - started < 2.0


async def test_after_the_header_a_command_has_its_own_deadline() -> None:
    """The header's deadline (shorter here) passes during the first command: the command
    still gets its own time, and its timeout says so."""
    reader = asyncio.StreamReader()
    reader.feed_data(ENV)
    chan = await AGIChannel.accept(reader, _NullWriter(),  # type: ignore[arg-type]
                                   header_timeout=0.1, command_timeout=0.6)
    assert chan.env.script == "probe" and chan.env.args == ["first", "second"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AGITimeout, match=r"no reply within 0\.6s"):
        await chan.command("NOOP")  # no reply comes
    assert 0.5 <= loop.time() - started < 2.0


@pytest.mark.parametrize(("header", "script", "args", "query"), [
    # Asterisk 22's network AGI: the script and the request both given.
    (b"agi_network: yes\nagi_network_script: probe\n"
     b"agi_request: agi://127.0.0.1:4573/probe?lang=ru&x=1\nagi_arg_1: a\nagi_arg_2: b\n\n",
     "probe", ["a", "b"], {"lang": "ru", "x": "1"}),
    # An empty script name: the request's path; a stray CR at a line's end is not kept.
    (b"agi_network: yes\nagi_network_script: \nagi_request: agi://h/other/\r\n"
     b"agi_arg_1: a\r\n\n", "other", ["a"], {}),
    # Arguments are numbered from 1 without gaps: a 3 after a 1 is not an argument.
    (b"agi_network: yes\nagi_request: agi://h/third\nagi_arg_1: a\nagi_arg_3: c\n\n",
     "third", ["a"], {}),
])
async def test_the_script_arguments_and_request_parameters(
        header: bytes, script: str, args: list[str], query: dict[str, str]) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(header)
    env = await _header(reader)
    assert (env.script, env.args, env.query) == (script, args, query)


@pytest.mark.parametrize(("data", "expected"), [
    (b"200 result=1\n", Reply(200, "1")),
    (b"200 result=1\r\n", Reply(200, "1")),
    (b"200 result=48 endpos=31520\n", Reply(200, "48", "", 31520)),
    (b"200 result=-1 endpos=0\n", Reply(200, "-1", "", 0)),
    (b"200 result=12# (timeout)\n", Reply(200, "12#", "timeout")),
    (b"200 result=1 (\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd)\n", Reply(200, "1", "Иван")),
    (b"200 result=1 (\xff)\n", Reply(200, "1", "\ufffd")),        # not UTF-8: replaced
    (b"200 result=0 endpos=\n", Reply(200, "0")),
    (b"HANGUP\n200 result=-1\n", AGIHangup),
    (b"511 Command Not Permitted on a dead channel or intercept routine\n", AGIHangup),
    (b"510 Invalid or unknown command\n", AGICommandError),
    (b"520-Invalid command syntax.\nUsage: x\n520 End of proper usage.\n", AGICommandError),
    (b"hello\n", AGIProtocolError),
    pytest.param(b"200 result=" + b"1" * MAX_LINE + b"\n", AGIProtocolError, id="long"),
    (b"200 result=1", AGIHangup),                                      # closed mid-line
])
async def test_one_parser_reads_every_reply(data: bytes,
                                            expected: Reply | type[Exception]) -> None:
    reader = asyncio.StreamReader(limit=MAX_LINE)
    reader.feed_data(data)
    reader.feed_eof()
    if isinstance(expected, Reply):
        assert await read_reply(reader) == expected
        return
    with pytest.raises(expected):
        await read_reply(reader)
    if data.startswith(b"520-"):
        assert reader.at_eof(), "the whole usage text is read"


@pytest.mark.parametrize("value", [
    "1\nEXEC Dial PJSIP/trunk/88095551234", "1\r\nEXEC Dial x", "x\rGET VARIABLE y", "a\0b"])
async def test_a_cr_lf_or_nul_in_an_argument_sends_nothing(value: str) -> None:
    """An argument that would end the command line and start another (a caller's typed
    text, a value from the database) refuses the command: nothing reaches Asterisk."""
    sent: list[bytes] = []

    class Writer(_NullWriter):
        def write(self, data: bytes) -> None:
            sent.append(data)

    reader = asyncio.StreamReader()
    chan = AGIChannel(AGIEnv(), reader, Writer(), command_timeout=1)  # type: ignore[arg-type]
    with pytest.raises(AGIProtocolError):
        await chan.set_variable(dialplan.TOPIC, value)
    with pytest.raises(AGIProtocolError):
        await chan.stream_file(value)
    assert sent == []
    reader.feed_data(b"200 result=1\n")  # the channel still works for a clean command
    await chan.set_variable(dialplan.TOPIC, 'a "quoted" \\ value')
    assert sent == [b'SET VARIABLE "HOTLINE_TOPIC" "a \\"quoted\\" \\\\ value"\n']
