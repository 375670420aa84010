"""AMI replay benchmark (issue 4): a recorded stream of real AMI events
(``bench/data/ami-stream.jsonl``, made by ``python -m bench.record_ami``) is played by a
scripted AMI peer into our listener — the AMI wrapper, the call tracker, the call recorder —
writing to SQLite and to PostgreSQL, at 1×, 10× and 100× the recorded pace and flat out.
The peer runs in its own process, as Asterisk does: its sending costs the listener nothing.

Printed side by side: the rate offered and the rate processed (events/s), the largest
backlog of facts waiting for the database, p99 lag from an event's sending to its fact's
commit, and loss (calls the stream ended that the database does not show ended; it must be
0) — against the ceiling: panoramisk's bare parse-and-dispatch rate of the same bytes.
Target: flat out, ≥ 50 % of the ceiling on SQLite, ≥ 30 % on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from sqlalchemy import func, select

from ivr.ami import AMIClient
from ivr.db.migrate import upgrade
from ivr.db.models import Call
from ivr.services.container import Services
from ivr.settings import Database, load_settings
from ivr.tracking import CallTracker

STREAM = Path(__file__).parent / "data" / "ami-stream.jsonl"
SENT = "X-Bench-Sent"
END = "BenchStreamEnd"  # the peer's last event: everything before it was received


def load_stream(path: Path = STREAM) -> list[tuple[float, bytes]]:
    with path.open(encoding="utf-8") as lines:
        return [(float(d["t"]), d["raw"].encode()) for d in map(json.loads, lines)]


def copies(stream: list[tuple[float, bytes]], n: int) -> list[tuple[float, bytes]]:
    """The stream ``n`` times over, each copy's calls renamed: ``n`` times the calls."""
    ids = sorted({line.split(": ", 1)[1] for _, raw in stream
                  for line in raw.decode().split("\r\n") if line.startswith("Linkedid: ")},
                 key=len, reverse=True)
    out = []
    span = stream[-1][0] if stream else 0.0
    for k in range(n):
        for t, raw in stream:
            text = raw.decode()
            for linkedid in ids:
                text = text.replace(linkedid, f"{linkedid}-r{k}")
            out.append((t + k * span, text.encode()))
    return out


def ended_calls(stream: list[tuple[float, bytes]]) -> set[str]:
    """Linkedids whose first channel's hang-up is in the stream: calls that must end."""
    out = set()
    for _, raw in stream:
        if raw.startswith(b"Event: Hangup\r\n"):
            fields = dict(line.split(": ", 1) for line in raw.decode().split("\r\n")
                          if ": " in line)
            if fields.get("Uniqueid") and fields.get("Uniqueid") == fields.get("Linkedid"):
                out.add(fields["Linkedid"])
    return out


def ceiling(stream: list[tuple[float, bytes]], rounds: int = 5) -> float:
    """panoramisk alone: parse every event of the stream and dispatch it to no-one."""
    manager = Manager(loop=asyncio.new_event_loop())
    protocol = AMIProtocol()
    protocol.connection_made(None)
    protocol.factory = manager
    protocol.version = "7.0.0"
    data = b"".join(raw for _, raw in stream)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        protocol.data_received(data)
        rates.append(len(stream) / (time.perf_counter() - started))
    manager.loop.close()
    return statistics.median(rates)


class ReplayPeer:
    """A scripted AMI peer: accepts the login, answers pings and CoreShowChannels (no live
    channels), then plays the stream at ``speed`` (0: flat out), stamping each event."""

    def __init__(self, stream: list[tuple[float, bytes]], speed: float,
                 live: set[str]) -> None:
        self.stream = stream
        self.speed = speed
        self.live = live  # linkedids CoreShowChannels reports: the IVR already has them
        self.done = asyncio.Event()
        self.started = 0.0
        self.finished = 0.0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/7.0.0\r\n")
        answering = asyncio.create_task(self._answer(reader, writer))
        ready = asyncio.Event()
        self._ready = ready
        await ready.wait()  # logged in and reconciled: the stream begins
        self.started = time.monotonic()
        # Events due now go out together, as a busy Asterisk's do (its socket buffer fills
        # faster than a reader empties it); each is stamped with its own sending time.
        chunk: list[bytes] = []
        size = 0
        for t, raw in self.stream:
            if self.speed:
                delay = self.started + t / self.speed - time.monotonic()
                if delay > 0:
                    if chunk:
                        writer.write(b"".join(chunk))
                        chunk, size = [], 0
                    await asyncio.sleep(delay)
            event = raw[:-2] + f"{SENT}: {time.monotonic()!r}\r\n\r\n".encode()
            chunk.append(event)
            size += len(event)
            if size >= 32 * 1024:
                writer.write(b"".join(chunk))
                chunk, size = [], 0
                if writer.transport.get_write_buffer_size() > 256 * 1024:
                    await writer.drain()
        chunk.append(f"Event: {END}\r\n\r\n".encode())
        writer.write(b"".join(chunk))
        await writer.drain()
        self.finished = time.monotonic()
        self.done.set()
        await answering

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n")
                              if ": " in line)
                action, action_id = fields.get("Action", ""), fields.get("ActionID", "")
                if action == "CoreShowChannels":
                    items = "".join(f"Event: CoreShowChannel\r\nActionID: {action_id}\r\n"
                                    f"Linkedid: {linkedid}\r\n\r\n" for linkedid in self.live)
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\nEventList: "
                                 f"start\r\nMessage: Channels will follow\r\n\r\n{items}"
                                 f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}"
                                 f"\r\nEventList: Complete\r\nListItems: {len(self.live)}"
                                 "\r\n\r\n".encode())
                    self._ready.set()
                    continue
                extra = "Ping: Pong\r\n" if action == "Ping" else ""
                writer.write(f"Response: Success\r\nActionID: {action_id}\r\n{extra}"
                             "Message: ok\r\n\r\n".encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            return


@dataclass
class Result:
    offered: float      # events/s the peer sent
    processed: float    # events/s from the first event sent to the last fact committed
    backlog: int        # most facts waiting for the database at once
    p99_lag_ms: float
    lost: int


def stream_of(n_copies: int) -> list[tuple[float, bytes]]:
    """The recorded stream (``n_copies`` 0), or that many renamed copies of it."""
    recorded = load_stream()
    return copies(recorded, n_copies) if n_copies else recorded


async def serve_peer(speed: float, n_copies: int) -> None:
    """The peer process: prints its port, plays the stream to the one client, then prints
    when it started and finished sending (monotonic clock, shared by the processes)."""
    stream = stream_of(n_copies)
    peer = ReplayPeer(stream, speed, live=ended_calls(stream))
    await peer.start()
    print(peer.port, flush=True)
    await peer.done.wait()
    print(peer.started, peer.finished, flush=True)
    await asyncio.sleep(3600)  # until the bench stops it


async def run(n_copies: int, db_url: str, speed: float) -> Result:
    settings = load_settings(environ={"HOTLINE_TTS__ENGINE": "espeak"})
    settings = settings.model_copy(update={"database": Database(url=db_url)})
    services = Services.create(settings)
    recorder = services.recorder
    stream = stream_of(n_copies)
    expected = ended_calls(stream)
    peer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ami_replay", str(speed), str(n_copies),
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    assert peer.stdout is not None
    port = int(await peer.stdout.readline())
    client = AMIClient("127.0.0.1", port, "bench", "bench-secret", ping_interval=30)
    tracker = CallTracker(services, client, log_dir=Path(tempfile.mkdtemp()))

    # Stamp each fact with its event's sending time; note when its batch commits.
    sent_of: dict[int, float] = {}
    lags: list[float] = []
    backlog = 0
    current = 0.0
    original_put, original_commit = recorder.put, recorder._commit

    def put(fact: Any) -> bool:
        nonlocal backlog
        sent_of[id(fact)] = current
        accepted = original_put(fact)
        backlog = max(backlog, len(recorder._pending))
        return accepted

    async def commit(facts: Any) -> None:
        await original_commit(facts)
        now = time.monotonic()
        lags.extend(now - sent_of.pop(id(f), now) for f in facts)

    # The IVR recorded each call's arrival before any of this (it is not replayed).
    for linkedid in expected:
        recorder.arrival(linkedid, "", "", datetime.now(UTC))
    await recorder.sync()

    recorder.put = put  # type: ignore[method-assign]
    recorder._commit = commit  # type: ignore[method-assign]
    for name, handler in tracker.handlers.items():
        def stamped(event: Any, handler: Any = handler) -> Any:
            nonlocal current
            current = float(event.get(SENT, time.monotonic()))
            return handler(event)  # an async handler's coroutine: the client runs it
        client._handlers[name.lower()] = [stamped]

    all_received = asyncio.Event()
    client.subscribe(END, lambda _: all_received.set())
    await client.start()
    await all_received.wait()
    await asyncio.sleep(0)  # the handlers the last event spawned
    await recorder.sync(timeout=300)
    last_commit = time.monotonic()
    started, finished = map(float, (await peer.stdout.readline()).split())
    async with services.sessions() as session:
        ended = await session.scalar(select(func.count()).select_from(Call).where(
            Call.linkedid.in_(expected), Call.ended_at.is_not(None)))
    await client.close()
    peer.kill()
    await peer.wait()
    await services.close()
    lags.sort()
    return Result(
        offered=len(stream) / max(1e-9, finished - started),
        processed=len(stream) / max(1e-9, last_commit - started),
        backlog=backlog,
        p99_lag_ms=lags[max(0, int(len(lags) * 0.99) - 1)] * 1000 if lags else 0.0,
        lost=len(expected) - (ended or 0),
    )


async def main(speeds: list[float], backends: list[str], flat_out_copies: int = 100,
               rounds: int = 3) -> None:
    recorded = load_stream()
    big = copies(recorded, flat_out_copies)
    top = ceiling(big)
    stream = recorded
    print(f"stream: {len(stream)} events, {len(ended_calls(stream))} calls, "
          f"{stream[-1][0]:.1f} s recorded; flat out: {flat_out_copies} renamed copies, "
          f"{len(big)} events, the median of {rounds} runs")
    print(f"ceiling (panoramisk parse + dispatch only): {top:,.0f} events/s\n")
    print(f"{'backend':<10}{'speed':>7} {'offered/s':>10} {'processed/s':>12} "
          f"{'backlog':>8} {'p99 lag ms':>11} {'lost':>5} {'of ceiling':>11}")
    cluster = None

    async def once(backend: str, speed: float) -> Result:
        nonlocal cluster
        tmp = Path(tempfile.mkdtemp(prefix="hotline-replay-"))
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp}/replay.sqlite3"
        else:
            if cluster is None:
                from tests.support.postgres import TestCluster

                cluster = TestCluster(port=25432)
                cluster.start()
            url = cluster.create_database(f"replay_{len(tmp.name)}_{int(speed)}_"
                                          f"{time.monotonic_ns() % 10**9}")
        upgrade(url)
        return await run(0 if speed else flat_out_copies, url, speed)

    try:
        for backend in backends:
            for speed in speeds:
                # Flat out, a run lasts about a second on a shared VM: the median of a few.
                runs = [await once(backend, speed) for _ in range(1 if speed else rounds)]
                r = sorted(runs, key=lambda x: x.processed)[len(runs) // 2]
                lost = max(x.lost for x in runs)
                label = f"{speed:g}x" if speed else "max"
                share = f"{r.processed / top:.0%}" if not speed else ""
                print(f"{backend:<10}{label:>7} {r.offered:>10,.0f} {r.processed:>12,.0f} "
                      f"{r.backlog:>8} {r.p99_lag_ms:>11.1f} {lost:>5} {share:>11}",
                      flush=True)
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":  # the peer process: SPEED COPIES
    asyncio.run(serve_peer(float(sys.argv[1]), int(sys.argv[2])))
