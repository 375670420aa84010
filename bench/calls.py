"""IVR capacity through the real Asterisk (issue 26): ``python -m bench calls``.

Starts its own Asterisk 22 (system name ``hotline-bench-calls``, its own ports) and, in a
process of their own, the service's call-handling parts as ``hotline serve`` runs them —
the FastAGI server with the real flows, the call recorder, the AMI call tracker — on a
freshly migrated database, on a working Wednesday morning. Then N callers ring the hotline
(:mod:`bench.callers`): the greeting, key 1 (the working hours: self-service, no operator
needed), the hours, hang up; through Local channels and through SIP with sipp. Every
caller is placed before the first one hangs up, so all N are in the IVR at once.

Per run: calls placed; the most up at once (Asterisk's count); calls completed (their
record shows the key and the call's end); AGI fallbacks (callers sent to ``agi-fail``);
records written and lost (calls placed without an ended row); the service's CPU per call
(all its threads, from /proc) and Asterisk's; p50/p99 from a key received to the next
AGI command. Target on this 2-core machine: 1,000 concurrent calls, zero fallbacks, zero
lost records, p99 ≤ 150 ms.

``python -m bench.calls serve`` is the service process itself (settings from HOTLINE_*).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ivr.ami import AMIClient
from ivr.asterisk_dev import DevAsterisk
from ivr.db.engine import make_engine
from ivr.db.migrate import upgrade
from ivr.db.models import Call
from ivr.phrases import render_prompts
from ivr.runner import PARTS
from ivr.services.container import Services
from ivr.settings import PROJECT_ROOT, Settings, load_settings
from ivr.simulate import wait_until

from .callers import BenchAMI, Observer, check_keys, local_callers, sip_callers
from .servers import OPEN

VAR = PROJECT_ROOT / "var" / "bench-calls"
RUNS = VAR / "runs"  # each run's database and sipp files, kept until the next bench
CHANNELS_PER_CALL = {"local": 2, "sip": 1}  # a Local caller is a pair of channels
# Longest time to place every caller (s): the hours, their menu asked twice and the
# farewell last nearly a minute after the key, and each caller must still be there when
# the last one arrives, to hang up itself.
MAX_RAMP = 40
SIPP_PORT, SIPP_MEDIA_PORT = 35060, 36000  # sipp's own; above Asterisk's RTP range
PG_PORT = 25532
FILES_PER_CALL = 8  # Asterisk's, with room
OVERRIDES = {
    "HOTLINE_ENVIRONMENT": "development",
    "HOTLINE_TTS__ENGINE": "espeak",
    "HOTLINE_TTS__RECORDINGS_DIR": str(VAR / "recordings"),
    "HOTLINE_AMI__PORT": "25138",
    "HOTLINE_AGI__PORT": "24673",
    "HOTLINE_ASTERISK__SYSTEM_NAME": "hotline-bench-calls",
    "HOTLINE_ASTERISK__RUNTIME_DIR": str(VAR / "asterisk"),
    "HOTLINE_ASTERISK__SIP_BIND": "127.0.0.1:25160",
    "HOTLINE_ASTERISK__LOAD_TEST_CONTEXTS": "true",
    "HOTLINE_DATABASE__URL": f"sqlite+aiosqlite:///{VAR}/asterisk.sqlite3",
    "HOTLINE_DATABASE__SPOOL_DIR": str(VAR / "spool"),
}
OBSERVER_USER = "hotline-test"  # manager_test.conf: reads every class, originates


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    return {**env, **OVERRIDES, **extra}


@dataclass
class Row:
    transport: str
    backend: str
    placed: int
    peak: int
    completed: int
    fallbacks: int
    records: int
    cpu_ms: float
    asterisk_cpu_ms: float
    p50_ms: float
    p99_ms: float

    @property
    def lost(self) -> int:
        return self.placed - self.records


HEADER = (f"{'transport':<10}{'backend':<9}{'calls':>6}{'peak':>6}{'completed':>10}"
          f"{'fallbacks':>10}{'records':>8}{'lost':>5}{'CPU ms/call':>12}"
          f"{'Asterisk ms/call':>17}{'p50 ms':>8}{'p99 ms':>8}")


def format_row(r: Row) -> str:
    return (f"{r.transport:<10}{r.backend:<9}{r.placed:>6}{r.peak:>6}{r.completed:>10}"
            f"{r.fallbacks:>10}{r.records:>8}{r.lost:>5}{r.cpu_ms:>12.2f}"
            f"{r.asterisk_cpu_ms:>17.1f}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, its ended threads' included: Asterisk runs a
    thread per channel, and the per-thread counters of /proc/PID/task lose a call's CPU
    when its thread ends."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(after_name[11]), int(after_name[12])  # fields 14 and 15
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)] if ordered else float("nan")


# --- the service process ------------------------------------------------------------------


async def serve() -> None:
    """The AGI and AMI parts as :func:`ivr.runner.run_service` starts them, on a services
    container whose clock stands on a working morning, until SIGTERM."""
    services = Services.create(load_settings())
    services.clock = lambda: OPEN
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await services.recorder.start()
        async with PARTS["agi"](services), PARTS["ami"](services):
            print("ready", flush=True)
            await stop.wait()
    finally:
        await services.close()  # the recorder's last batch is committed


class Service:
    """``python -m bench.calls serve`` in its own process: its CPU is the server's alone."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.calls", "serve", env=self.env, cwd=PROJECT_ROOT,
            stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if line.strip() != b"ready":
            raise RuntimeError("the service did not start; see its output above")

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 60)


# --- one run --------------------------------------------------------------------------------


class Channels:
    """Asterisk's own count of channels up, sampled through a run: the most at once."""

    def __init__(self, asterisk: DevAsterisk) -> None:
        self.asterisk = asterisk
        self.peak = 0

    def count(self) -> int | None:
        """Channels up now; None when a busy Asterisk did not answer the console."""
        try:
            out = self.asterisk.rx("core show channels count")
        except subprocess.TimeoutExpired:
            return None
        found = re.search(r"(\d+) active channel", out)
        if found is None:
            return None
        self.peak = max(self.peak, int(found.group(1)))
        return int(found.group(1))

    async def watch(self) -> None:
        while True:
            await asyncio.to_thread(self.count)
            await asyncio.sleep(0.5)

    async def until_idle(self, timeout: float) -> None:
        async def idle() -> bool:
            return await asyncio.to_thread(self.count) == 0

        await wait_until(idle, timeout, "every call ended", interval=0.5)


class Bench:
    def __init__(self, settings: Settings, asterisk: DevAsterisk, keys: str) -> None:
        self.settings = settings
        self.asterisk = asterisk
        self.keys = check_keys(keys)
        self.number = settings.organisation.hotline_numbers[0]
        self.cluster: Any = None

    def database(self, backend: str, run_dir: Path) -> str:
        """A fresh, migrated database for one run."""
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{run_dir}/calls.sqlite3"
        else:
            if self.cluster is None:
                from tests.support.postgres import TestCluster  # as the other benches

                self.cluster = TestCluster(port=PG_PORT)
                self.cluster.start()
            url = self.cluster.create_database(f"calls_{uuid.uuid4().hex[:12]}")
        upgrade(url)
        return url

    def service(self, url: str, calls: int, run_dir: Path) -> Service:
        return Service(environ(
            HOTLINE_DATABASE__URL=url, HOTLINE_DATABASE__SPOOL_DIR=str(run_dir / "spool"),
            # Each caller in the IVR holds one FastAGI connection.
            HOTLINE_AGI__MAX_CONNECTIONS=str(max(500, calls + 100))))

    async def run(self, transport: str, backend: str, calls: int, rate: float) -> Row:
        run_dir = Path(tempfile.mkdtemp(prefix=f"{transport}-{backend}-", dir=RUNS))
        url = self.database(backend, run_dir)
        a = self.settings.ami
        ami = BenchAMI(a.host, a.port, OBSERVER_USER, a.secret)
        observer = Observer()
        observer.attach(ami)
        channels = Channels(self.asterisk)
        service = self.service(url, calls, run_dir)
        await ami.start()
        watching = asyncio.create_task(channels.watch())
        try:
            await service.start()
            await ami.wait_connected(30)
            warm = await self._warm_up(ami, observer)
            observer.reset()
            cpu, asterisk_cpu = service.cpu(), self._asterisk_cpu()
            placed = await self._place(transport, ami, calls, rate, run_dir)
            await channels.until_idle(hold(calls, rate) + 120)
            records, completed = await self._records(url, warm, placed)
            cpu, asterisk_cpu = service.cpu() - cpu, self._asterisk_cpu() - asterisk_cpu
        finally:
            watching.cancel()
            await service.stop()
            await ami.close()
        per_call = 1000 / max(1, placed)
        lags = [lag * 1000 for lag in observer.lags]
        return Row(transport, backend, placed, channels.peak // CHANNELS_PER_CALL[transport],
                   completed, len(observer.fallbacks), records, cpu * per_call,
                   asterisk_cpu * per_call, percentile(lags, 0.5), percentile(lags, 0.99))

    def _asterisk_cpu(self) -> float:
        pid = self.asterisk.pid()
        return cpu_seconds(pid) if pid else 0.0

    async def _warm_up(self, ami: AMIClient, observer: Observer) -> str:
        """One call before the measured ones: the hours' speech is made, the database
        connection opened and the service's AMI link is up. Its linkedid, to leave out."""
        [call] = await local_callers(ami, self.number, 1, 1.0, self.keys, hold=1.0)

        async def done() -> bool:
            return call.linkedid in observer.done

        await wait_until(done, 60, "the warm-up call")
        return call.linkedid

    async def _place(self, transport: str, ami: AMIClient, calls: int, rate: float,
                     run_dir: Path) -> int:
        if transport == "local":
            placed = await local_callers(ami, self.number, calls, rate, self.keys,
                                         hold(calls, rate))
            return len(placed)
        sip = await sip_callers(self.settings.asterisk.sip_bind, self.number, calls, rate,
                                self.keys, hold(calls, rate), run_dir, SIPP_PORT,
                                SIPP_MEDIA_PORT)
        if sip.failed:
            print(f"sipp: {sip.failed} of {sip.placed} calls failed on its side; see "
                  f"{run_dir}/sipp-errors.log", file=sys.stderr)
        return sip.placed

    async def _records(self, url: str, warm: str, placed: int) -> tuple[int, int]:
        """Calls with an ended row, and those of them whose row shows the first key, once
        the recorder has caught up (or after 30 s: what is missing is lost)."""
        engine = make_engine(url)
        ended = Call.ended_at.is_not(None)
        query = select(func.count().filter(ended),
                       func.count().filter(ended, Call.ivr_path.startswith(self.keys[0]))
                       ).where(Call.linkedid != warm)
        counts = (0, 0)

        async def caught_up() -> bool:
            nonlocal counts
            async with engine.connect() as conn:
                row = (await conn.execute(query)).one()
            counts = (row[0], row[1])
            return counts[0] >= placed

        try:
            await wait_until(caught_up, 30, "records written", interval=0.5)
        except TimeoutError:
            pass
        finally:
            await engine.dispose()
        return counts


def hold(calls: int, rate: float) -> float:
    """Seconds a caller stays after its last key: every caller is placed before the first
    one hangs up, so all of them are in the IVR at once."""
    return calls / rate + 5


def allow_open_files(calls: int) -> None:
    """Asterisk and the service inherit this process's limit on open files: Asterisk holds
    about six per caller (a Local pair's wake-up pipes or RTP and RTCP sockets, a timer,
    the AGI socket, the prompt), above the usual soft limit of 1,024 at 200 callers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < FILES_PER_CALL * calls:
        print(f"warning: at most {hard} open files (ulimit -Hn); {calls} callers need about "
              f"{FILES_PER_CALL * calls}", file=sys.stderr)


async def main(calls: int, rate: float, transports: list[str], backends: list[str],
               keys: str) -> None:
    try:
        check_keys(keys, sip="sip" in transports)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if calls / rate > MAX_RAMP:
        raise SystemExit(f"{calls} calls at {rate:g} a second take longer to place than "
                         f"a caller stays in the IVR: --rate {math.ceil(calls / MAX_RAMP)} "
                         "or more")
    if "sip" in transports and shutil.which("sipp") is None:
        raise SystemExit("sipp is missing: apt-get install -y sip-tester")
    allow_open_files(calls)
    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    settings = load_settings(environ=environ())
    upgrade(settings.database.url)  # the operator phones' passwords pjsip.conf is made with
    render_prompts(settings)
    asterisk = DevAsterisk(settings)
    asterisk.down()  # a leftover of an interrupted run
    asterisk.up()
    bench = Bench(settings, asterisk, keys)
    print(f"{calls} callers, {rate:g} a second, keys {keys!r}; {os.cpu_count()} cores\n\n"
          f"{HEADER}", flush=True)
    try:
        for transport in transports:
            for backend in backends:
                print(format_row(await bench.run(transport, backend, calls, rate)), flush=True)
    finally:
        asterisk.down()
        if bench.cluster is not None:
            bench.cluster.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        raise SystemExit("usage: python -m bench.calls serve (the bench's service process); "
                         "the bench itself: python -m bench calls")
    asyncio.run(serve())
