"""Record a stream of real AMI events for the replay benchmark (issue 4).

``python -m bench.record_ami [--calls 30] [--out bench/data/ami-stream.jsonl]`` starts its
own Asterisk 22 (system name ``hotline-bench``, its own ports) and our FastAGI server on a
throwaway SQLite, puts simulated operators in the topic queues, places simulated calls (menu
keys, queue waits, conversations, a few callers giving up) and writes every AMI event the
service's own AMI user receives — the production ``eventfilter`` applies — as JSON lines:
``{"t": seconds since the first event, "raw": the event's bytes}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

from ivr.asterisk_dev import DevAsterisk
from ivr.db.migrate import upgrade
from ivr.phrases import render_prompts
from ivr.runner import make_agi_server, make_ami
from ivr.services.container import Services
from ivr.settings import Database, load_settings
from ivr.simulate import place_call

from .servers import OPEN

OVERRIDES = {
    "HOTLINE_TTS__ENGINE": "espeak",
    "HOTLINE_AMI__PORT": "25038",
    "HOTLINE_AGI__PORT": "24575",
    "HOTLINE_ASTERISK__SYSTEM_NAME": "hotline-bench",
    "HOTLINE_ASTERISK__SIP_BIND": "127.0.0.1:25060",
    "HOTLINE_ASTERISK__LOAD_TEST_CONTEXTS": "true",
    "HOTLINE_ASTERISK__OPERATOR_DIAL": "Local/{extension}@operator-sim/n",
}
MEMBERS = {"hotline-services": "1001", "hotline-support": "1002", "hotline-general": "1003"}


async def _capture(host: str, port: int, username: str, secret: str, out: list[tuple[float, bytes]],
                   stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    await reader.readline()  # banner
    writer.write(f"Action: Login\r\nUsername: {username}\r\nSecret: {secret}\r\n"
                 "Events: on\r\n\r\n".encode())
    await writer.drain()
    t0: float | None = None
    while not stop.is_set():
        try:
            block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1)
        except TimeoutError:
            continue
        if not block.startswith(b"Event: "):
            continue
        now = time.monotonic()
        t0 = now if t0 is None else t0
        out.append((now - t0, block))
    writer.close()


async def record(calls: int, out_path: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hotline-record-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}, **OVERRIDES,
           "HOTLINE_TTS__RECORDINGS_DIR": str(tmp / "recordings"),
           "HOTLINE_ASTERISK__RUNTIME_DIR": str(tmp / "asterisk")}
    settings = load_settings(environ=env)
    url = f"sqlite+aiosqlite:///{tmp}/record.sqlite3"
    upgrade(url)
    settings = settings.model_copy(update={"database": Database(url=url)})
    render_prompts(settings)
    asterisk = DevAsterisk(settings)
    asterisk.up()
    services = Services.create(settings)
    services.clock = lambda: OPEN  # the menu path, whatever the hour of the recording
    server = make_agi_server(services)
    await server.start()
    ami = make_ami(settings.model_copy(update={"ami": settings.ami.model_copy(
        update={"username": "hotline-test"})}))  # places calls and members (test user)
    await ami.start()
    events: list[tuple[float, bytes]] = []
    stop = asyncio.Event()
    a = settings.ami
    capture = asyncio.create_task(_capture(a.host, a.port, a.username, a.secret, events, stop))
    try:
        await ami.wait_connected(20)
        for queue, ext in MEMBERS.items():
            await ami.queue_add(queue, f"Local/{ext}@operator-sim/n", ext)
        rng = random.Random(7)
        for n in range(calls):
            key = rng.choice("2236")  # 6: a queue nobody serves, callers give up
            await place_call(ami, caller=f"7900{n:07d}", number="88001234567", dtmf=key,
                             delay=1, hold=rng.uniform(4, 12))
            await asyncio.sleep(rng.uniform(0.2, 1.5))
        await asyncio.sleep(20)  # the last callers finish
    finally:
        stop.set()
        await capture
        for queue, ext in MEMBERS.items():
            await ami.queue_remove(queue, f"Local/{ext}@operator-sim/n")
        await ami.close()
        await server.close()
        await services.close()
        asterisk.down()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8") as out:
        for t, raw in events:
            out.write(json.dumps({"t": round(t, 6), "raw": raw.decode("utf-8", "replace")},
                                 ensure_ascii=False) + "\n")
    print(f"{len(events)} events of {calls} calls in {events[-1][0]:.1f} s → {out_path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.record_ami", description=__doc__)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--out", default=str(Path(__file__).parent / "data" / "ami-stream.jsonl"))
    args = parser.parse_args()
    asyncio.run(record(args.calls, Path(args.out)))
