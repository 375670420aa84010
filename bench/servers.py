"""The FastAGI servers compared by bench/agi_roundtrip.py, each run as its own process:

* ``ours PORT DBURL RECDIR`` — our FastAGI server with the real ``ivr-entry`` flow;
* ``minimal PORT`` — a bare asyncio handler that sends the same AGI commands with no
  application logic: the ceiling;
* ``process`` — one process per call speaking AGI on stdin/stdout, importing our service
  layer and running the same flow: how most Python IVRs are written.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

from agi.channel import AGIChannel
from agi.protocol import MAX_LINE
from agi.routes import ROUTES
from agi.server import CallContext
from ivr.runner import make_agi_server
from ivr.services.container import Services
from ivr.settings import Database, load_settings

# The commands ivr-entry sends for "greeting, key 2 in the menu, to the topic queue",
# watchdog lease renewals included.
MINIMAL_SCRIPT = [
    'SET VARIABLE "TIMEOUT(absolute)" "14"',
    'STREAM FILE "greeting" "0123456789*#"',
    'SET VARIABLE "TIMEOUT(absolute)" "30"',
    'GET DATA "menu" 5000 1',
    'SET VARIABLE "HOTLINE_QUEUE" "hotline-services"',
    'SET VARIABLE "HOTLINE_TOPIC" "state_services"',
    'SET VARIABLE "HOTLINE_NEXT" "queue"',
    'SET VARIABLE "HOTLINE_FLOW_OK" "1"',
]
# A working Wednesday, 11:00 in Moscow: the menu path, not the after-hours one.
OPEN = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def _services(db_url: str, recordings: str) -> Services:
    # HOTLINE_* variables of the shell still apply (e.g. HOTLINE_DATABASE__BATCH_INTERVAL).
    settings = load_settings(environ={**os.environ, "HOTLINE_TTS__ENGINE": "espeak",
                                      "HOTLINE_TTS__RECORDINGS_DIR": recordings})
    settings = settings.model_copy(update={"database": Database(url=db_url)})
    services = Services.create(settings)
    services.clock = lambda: OPEN
    return services


async def ours(port: int, db_url: str, recordings: str) -> None:
    services = _services(db_url, recordings)
    services.settings.agi.port = port
    server = make_agi_server(services)
    await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def minimal(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        for command in MINIMAL_SCRIPT:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            if not await reader.readline():
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=MAX_LINE)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def process_per_call(db_url: str, recordings: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    agi = await AGIChannel.accept(reader, writer, header_timeout=5, command_timeout=10)
    services = _services(db_url, recordings)
    await ROUTES["ivr-entry"](CallContext(agi=agi, env=agi.env, services=services))
    await agi.set_variable("HOTLINE_FLOW_OK", "1")
    await services.close()


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "ours":
        asyncio.run(ours(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
    elif kind == "minimal":
        asyncio.run(minimal(int(sys.argv[2])))
    else:
        asyncio.run(process_per_call(sys.argv[2], sys.argv[3]))
