"""FastAGI server round-trip: the real ``ivr-entry`` flow on SQLite, driven by scripted
Asterisk-side clients at 1, 20 and 50 concurrent calls.

Prints p50/p99 of the time from our reply arriving at the server ("the caller pressed a key")
to the server's next command, CPU seconds per call, and traced memory per open call. The
whole-system comparison against a minimal handler and a process-per-call AGI (issue 3) will
extend this file.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from agi.routes import ROUTES
from agi.server import FastAGIServer
from ivr.db.migrate import upgrade
from ivr.services.container import Services
from ivr.settings import Database, load_settings
from ivr.tts import PromptLibrary

REPLIES = [b"200 result=0 endpos=100\n",     # greeting played, no key
           b"200 result=2\n",                 # GET DATA menu: key 2
           b"200 result=1\n", b"200 result=1\n",  # SET VARIABLE queue, topic
           b"200 result=1\n"]                 # SET VARIABLE flow ok


async def one_call(port: int, n: int, lags: list[float], pace: float = 0.0) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    env = (f"agi_network: yes\nagi_network_script: ivr-entry\nagi_channel: Local/b-{n}\n"
           f"agi_uniqueid: b.{n}\nagi_callerid: 7900{n:07d}\nagi_arg_1: bench-{n}-{time.time_ns()}"
           f"\nagi_arg_2: 88001234567\n\n")
    writer.write(env.encode())
    await writer.drain()
    await reader.readline()  # first command
    for reply in REPLIES:
        # The prompt playing / the caller deciding, jittered so calls don't move in lockstep.
        await asyncio.sleep(pace * random.uniform(0.5, 1.5))
        sent = time.perf_counter()
        writer.write(reply)
        await writer.drain()
        line = await reader.readline()
        if not line:
            break
        lags.append(time.perf_counter() - sent)
    writer.close()


async def run_level(port: int, concurrency: int, calls: int, pace: float) -> dict[str, float]:
    lags: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sem = asyncio.Semaphore(concurrency)

    async def guarded(n: int) -> None:
        async with sem:
            await one_call(port, n, lags, pace)

    await asyncio.gather(*(guarded(concurrency * 100_000 + i) for i in range(calls)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    # Memory in a separate pass: tracing would distort the timings above.
    tracemalloc.start()
    await asyncio.gather(*(one_call(port, concurrency * 200_000 + i, [])
                           for i in range(concurrency)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lags.sort()
    return {"p50_ms": statistics.median(lags) * 1000,
            "p99_ms": lags[int(len(lags) * 0.99) - 1] * 1000,
            "cpu_ms_per_call": cpu / calls * 1000,
            "calls_per_s": calls / wall,
            "kib_per_open_call": peak / concurrency / 1024}


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
    upgrade(url)
    settings = load_settings(environ={"HOTLINE_TTS__ENGINE": "espeak",
                                      "HOTLINE_TTS__RECORDINGS_DIR": str(tmp / "rec")})
    settings = settings.model_copy(update={"database": Database(url=url)})
    PromptLibrary(settings.tts, settings.prompts).render_all()
    services = Services.create(settings)
    server = FastAGIServer(ROUTES, services, host="127.0.0.1", port=0)
    await server.start()
    print("FastAGI round trip, ivr-entry flow on SQLite (scripted Asterisk side)")
    print(f"{'concurrent':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/call':>12} "
          f"{'calls/s':>8} {'KiB/open call':>14}")
    for pace, title in ((0.3, "paced: 300 ms of prompt between commands (realistic)"),
                        (0.0, "saturated: replies at once (throughput ceiling)")):
        print(f"-- {title}")
        for level in (1, 20, 50):
            r = await run_level(server.port, level, calls=max(100, level * 4), pace=pace)
            print(f"{level:>10} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                  f"{r['cpu_ms_per_call']:>12.2f} {r['calls_per_s']:>8.0f} "
                  f"{r['kib_per_open_call']:>14.1f}")
    await server.close()
    await services.close()
