"""FastAGI round trip of the ``ivr-entry`` menu (greeting, key 2, to the topic's queue), side
by side in one run:

  (a) our server with the real flow on SQLite;
  (b) a minimal asyncio handler sending the same AGI commands, no logic: the ceiling;
  (c) the same flow as a process-per-call AGI script importing our service layer.

A scripted Asterisk side answers every command; "paced" waits ~300 ms (jittered) before each
reply, as a prompt playing would, "saturated" answers at once. Figures: p50/p99 from a reply
sent ("the caller pressed a key") to the next command received, CPU per call of the server
side (its own process, so the load generator is not counted), and memory per open call.
Targets (issue 3): (a) within 1.5x of (b) in CPU per call and p99; (c) at least 100x (a)'s CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ivr.db.migrate import upgrade
from ivr.settings import load_settings
from ivr.tts import PromptLibrary

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _reply(command: bytes) -> bytes:
    if command.startswith(b"STREAM FILE"):
        return b"200 result=0 endpos=1000\n"
    if command.startswith(b"GET DATA"):
        return b"200 result=2\n"
    return b"200 result=1\n"


# The header Asterisk 22 sends to ``agi://…/ivr-entry`` from our dialplan's [agi-step]
# (captured from the development Asterisk): 27 lines, the step's five arguments included.
# The first argument is the call's linkedid, which Asterisk makes as it makes every
# uniqueid: the epoch second, a dot and a counter it increases for each channel
# (see _asterisk_ids).
HEADER = (
    "agi_network: yes\n"
    "agi_network_script: ivr-entry\n"
    "agi_request: agi://127.0.0.1:4573/ivr-entry\n"
    "agi_channel: Local/88001234567@hotline-in-{n:08x};2\n"
    "agi_language: ru\n"
    "agi_type: Local\n"
    "agi_uniqueid: {uniqueid}\n"
    "agi_version: 22.10.1+dfsg+~cs6.17.60671434-1\n"
    "agi_callerid: 7900{n:07d}\n"
    "agi_calleridname: Гражданин\n"
    "agi_callingpres: 0\n"
    "agi_callingani2: 0\n"
    "agi_callington: 0\n"
    "agi_callingtns: 0\n"
    "agi_dnid: unknown\n"
    "agi_rdnis: unknown\n"
    "agi_context: agi-step\n"
    "agi_extension: s\n"
    "agi_priority: 5\n"
    "agi_enhanced: 0.0\n"
    "agi_accountcode: \n"
    "agi_threadid: 140050646603456\n"
    "agi_arg_1: {linkedid}\n"
    "agi_arg_2: 88001234567\n"
    "agi_arg_3: \n"
    "agi_arg_4: \n"
    "agi_arg_5: \n"
    "\n"
)


_CHANNELS = itertools.count(1)


def _asterisk_ids() -> tuple[str, str]:
    """A new call's (linkedid, uniqueid of the AGI's channel), as Asterisk forms them
    ("1764553200.41", "1764553200.42"): what the recorder files the call under. Until
    2026-12-01 the linkedid was "bench-N-NANOSECONDS", with N starting over in every round:
    each call's row went to another page of the linkedid index (7.1 writes to the WAL a
    call against 4.5, counted by strace on a fresh database), which Asterisk's ids, growing
    with time, do not do."""
    second, first = int(time.time()), next(_CHANNELS)
    next(_CHANNELS)  # the Local channel's other half
    return f"{second}.{first}", f"{second}.{first + 1}"


async def scripted_call(conn: Conn, n: int, lags: list[float], pace: float) -> None:
    reader, writer = conn
    linkedid, uniqueid = _asterisk_ids()
    writer.write(HEADER.format(n=n, linkedid=linkedid, uniqueid=uniqueid).encode())
    await writer.drain()
    command = await reader.readline()
    while command:
        if pace:
            await asyncio.sleep(pace * random.uniform(0.5, 1.5))
        sent = time.perf_counter()
        writer.write(_reply(command))
        await writer.drain()
        command = await reader.readline()
        if command:
            lags.append(time.perf_counter() - sent)
    writer.close()


def _cpu_of(pid: int) -> float:
    """CPU seconds of every thread of ``pid`` (the database driver's too), in nanoseconds'
    resolution from schedstat; clock ticks (10 ms) would blur a few ms per call."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total / 1e9


def _rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Figures:
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: float
    kib_per_call: float


class Target:
    """One implementation under test: how to open a call, and whose CPU and memory count."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.children: set[int] = set()

    async def start(self, args: list[str], port: int) -> None:
        self.port = port
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.servers", *args, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        await asyncio.wait_for(self.proc.stdout.readline(), 60)

    async def open(self) -> Conn:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def cpu(self) -> float:
        assert self.proc is not None
        return _cpu_of(self.proc.pid)

    def rss(self) -> int:
        assert self.proc is not None
        return _rss_of(self.proc.pid)

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await self.proc.wait()


class ProcessPerCall(Target):
    def __init__(self, db_url: str, recordings: str) -> None:
        super().__init__("(c) process per call")
        self.args = ["process", db_url, recordings]
        self._live: dict[int, asyncio.subprocess.Process] = {}

    async def open(self) -> Conn:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.servers", *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self._live[proc.pid] = proc
        asyncio.get_running_loop().create_task(self._reap(proc))
        assert proc.stdout is not None and proc.stdin is not None
        return proc.stdout, proc.stdin  # type: ignore[return-value]

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self._live.pop(proc.pid, None)

    def cpu(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def rss(self) -> int:
        total = 0
        for pid in list(self._live):
            try:
                total += _rss_of(pid)
            except OSError:
                pass
        return total

    async def start(self, args: list[str], port: int) -> None:
        return None

    async def stop(self) -> None:
        await asyncio.gather(*(proc.wait() for proc in list(self._live.values())))


async def measure(target: Target, concurrency: int, calls: int, pace: float) -> Figures:
    lags: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    peak_rss = 0
    idle_rss = target.rss()
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, target.rss())
            await asyncio.sleep(0.05)

    async def one(n: int) -> None:
        async with sem:
            await scripted_call(await target.open(), n, lags, pace)

    sampler = asyncio.create_task(sample())
    cpu0 = target.cpu()
    await asyncio.gather(*(one(concurrency * 100_000 + i) for i in range(calls)))
    if isinstance(target, ProcessPerCall):
        await target.stop()
    else:
        # What the calls left to do is theirs: (a) commits their last facts up to a batch
        # interval (0.25 s) after them. A saturated round is shorter than that, so without
        # this wait its batch fell between rounds and was never counted.
        await asyncio.sleep(SETTLE)
    cpu = target.cpu() - cpu0
    done.set()
    await sampler
    lags.sort()
    return Figures(
        p50_ms=statistics.median(lags) * 1000,
        p99_ms=lags[max(0, int(len(lags) * 0.99) - 1)] * 1000,
        cpu_ms_per_call=cpu / calls * 1000,
        kib_per_call=max(0, peak_rss - idle_rss) / concurrency / 1024,
    )


SETTLE = 1.0  # seconds after a round before its CPU is read


MODES = {"paced": (0.3, "paced: ~300 ms of prompt before each reply"),
         "saturated": (0.0, "saturated: replies at once")}


def _median(figures: list[Figures]) -> Figures:
    return Figures(*(statistics.median(getattr(f, name) for f in figures)
                     for name in ("p50_ms", "p99_ms", "cpu_ms_per_call", "kib_per_call")))


# Rounds per level: a saturated round is a fraction of a second, a paced one ~10 s, except
# at one call at a time (40 calls one after the other, ~1.5 min). With seven saturated
# rounds, two runs of the same code differed by up to 0.15x in a median ratio: 21 rounds
# take a minute more per mode. With three paced rounds at 50 calls, by 0.32x (1.34x and
# 1.66x in CPU): nine take a minute more.
ROUNDS = {"paced": 9, "saturated": 21}
ROUNDS_ONE_PACED = 3


def _rounds(mode: str, level: int) -> int:
    return ROUNDS_ONE_PACED if mode == "paced" and level == 1 else ROUNDS[mode]


def _ratios(a: list[Figures], b: list[Figures], name: str) -> list[float]:
    return [getattr(x, name) / getattr(y, name) for x, y in zip(a, b, strict=True)]


def _paired(a: list[Figures], b: list[Figures], name: str) -> float:
    """The median of the rounds' (a)/(b) ratios: (a) and (b) take turns, so each ratio
    compares rounds a few seconds apart, and the VM's speed, which drifts by a third over
    minutes, mostly cancels out of it."""
    return statistics.median(_ratios(a, b, name))


def _middle_half(a: list[Figures], b: list[Figures], name: str) -> str:
    """The rounds' (a)/(b) ratios from the first to the third quartile: how far one round
    is from another, which the median alone hides."""
    low, _, high = statistics.quantiles(_ratios(a, b, name), n=4)
    return f"{low:.2f}-{high:.2f}"


async def main(levels: list[int], targets: str = "abc", modes: list[str] | None = None,
               rounds: int | None = None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    db_url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
    recordings = str(tmp / "rec")
    upgrade(db_url)
    settings = load_settings(environ={"HOTLINE_TTS__ENGINE": "espeak",
                                      "HOTLINE_TTS__RECORDINGS_DIR": recordings})
    PromptLibrary(settings.tts, settings.prompts).render_all()

    ours, minimal = Target("(a) our server"), Target("(b) minimal handler")
    await ours.start(["ours", "24573", db_url, recordings], 24573)
    await minimal.start(["minimal", "24574"], 24574)
    per_call = ProcessPerCall(db_url, recordings)
    run: Callable[[Target, int, int, float], Awaitable[Figures]] = measure
    chosen = [t for key, t in zip("abc", (ours, minimal, per_call), strict=True)
              if key in targets]
    # Unmeasured warm-up: first calls compile SQL statements and fill caches. A few paced
    # calls one at a time too: a quiet time's lone facts take statements of their own
    # (compiled at their first use, which was the first paced round's until 2026-12-01).
    for target in (ours, minimal):
        await measure(target, 5, 20, 0.0)
        await measure(target, 1, 3, MODES["paced"][0])
    try:
        for mode in modes or list(MODES):
            pace, title = MODES[mode]
            print(f"\n-- {title}")
            print(f"{'':24}{'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/call':>12} "
                  f"{'KiB/call':>9}")
            for level in levels:
                # This machine is a small VM whose figures wander by ±30 % between runs:
                # (a) and (b) take turns for ``rounds`` rounds and the medians are printed.
                results: dict[str, list[Figures]] = {t.name: [] for t in chosen}
                counts: dict[str, int] = {}
                for _ in range(rounds or _rounds(mode, level)):
                    for target in chosen:
                        if target is per_call and results[target.name]:
                            continue  # ~1 s of CPU per call: one round of calls is enough
                        calls = (max(10, level) if target is per_call
                                 else max(40, level * 4) if pace
                                 # A saturated round of 40-200 calls was 50-200 ms:
                                 # its figures wandered by a third from round to round.
                                 else max(400, level * 20))
                        counts[target.name] = calls
                        results[target.name].append(await run(target, level, calls, pace))
                for target in chosen:
                    f = _median(results[target.name])
                    print(f"{target.name:<20}{level:>4}{counts[target.name]:>6} "
                          f"{f.p50_ms:>8.2f} {f.p99_ms:>8.2f} {f.cpu_ms_per_call:>12.2f} "
                          f"{f.kib_per_call:>9.0f}", flush=True)
                if ours in chosen and minimal in chosen:
                    a_, b_ = results[ours.name], results[minimal.name]
                    print(f"{'  (a)/(b), paired':<24}{'':6} {'':>8} "
                          f"{_paired(a_, b_, 'p99_ms'):>7.2f}x "
                          f"{_paired(a_, b_, 'cpu_ms_per_call'):>11.2f}x", flush=True)
                    if len(a_) >= 4:
                        print(f"{'    middle half of rounds':<24}{'':6} {'':>8} "
                              f"{_middle_half(a_, b_, 'p99_ms'):>8} "
                              f"{_middle_half(a_, b_, 'cpu_ms_per_call'):>12}", flush=True)
                if ours in chosen and per_call in chosen:
                    a, c = _median(results[ours.name]), _median(results[per_call.name])
                    print(f"{'  (c)/(a) CPU':<24}{'':6} {'':>8} {'':>8} "
                          f"{c.cpu_ms_per_call / a.cpu_ms_per_call:>11.0f}x", flush=True)
    finally:
        await ours.stop()
        await minimal.stop()
