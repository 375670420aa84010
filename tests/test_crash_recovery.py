"""A crash loses no call (issue 31): ``hotline serve`` killed with SIGKILL under a burst of
callers — during the greeting, in the menu, as a caller joins a queue (facts not yet
committed) — three times (on PostgreSQL once, as a caller joins a queue), with callers
coming while it is down. Afterwards every call Asterisk's CDR shows for the window is in
the records exactly once, with the outcome Asterisk's own events say, its fallback
(agi-fail) and recovery visible (R-H3: every caller reaches a person; nothing recorded is
lost)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from panoramisk.message import Message
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.asterisk_dev import DevAsterisk
from ivr.db.models import Call, CallOutcome, ReconcileMark
from ivr.reconcile import CDR_FILE
from ivr.recovery import MARK, mark_start, read_cdr_since, recover_unknown
from ivr.runner import make_ami
from ivr.services.container import Services
from ivr.settings import Settings, load_settings
from ivr.simulate import EventRecorder, SimulatedCall, is_event, place_call, wait_until
from ivr.tracking import CallTracker

from .conftest import TEST_VAR, hotline_environ
from .support.records import services_on

OPERATOR = "Local/1002@operator-sim/n"
QUEUES = ("hotline-services", "hotline-general")
CALLERS_PER_ROUND = 4
CALLERS_IN_GAP = 2
# `hotline serve` as shipped, on the real clock, but open whatever day the test runs on.
SERVE = ("import sys, ivr.calendar, ivr.cli; "
         "ivr.calendar.WorkCalendar.is_open = lambda self, at: True; "
         "sys.exit(ivr.cli.main(sys.argv[1:]))")


class Service:
    """``hotline serve --only agi [--only ami]`` as a real process, so SIGKILL is real."""

    def __init__(self, environ: dict[str, str], settings: Settings, log: Path) -> None:
        self.environ, self.settings, self.log = environ, settings, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, parts: tuple[str, ...] = ("agi", "ami")) -> None:
        only = [arg for part in parts for arg in ("--only", part)]
        with self.log.open("wb" if self.proc is None else "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SERVE, "serve", *only,
                env=self.environ, stdout=out, stderr=out)
        await wait_until(self._listening, 30, "the service listening")

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection(self.settings.agi.host,
                                                      self.settings.agi.port)
        except OSError:
            return False
        writer.close()
        return True

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, sig)
            await self.proc.wait()


@pytest_asyncio.fixture
async def served(db_url: str, asterisk: DevAsterisk, tmp_path: Path
                 ) -> AsyncIterator[tuple[Service, Services]]:
    environ = hotline_environ(HOTLINE_DATABASE__URL=db_url,
                              HOTLINE_DATABASE__SPOOL_DIR=str(tmp_path / "spool"))
    settings = load_settings(environ=environ)
    # The service's log is kept for a post-mortem.
    service = Service(environ, settings, TEST_VAR / f"serve-{db_url.split(':')[0]}.log")
    services = Services.create(settings)  # the test's own look at the records
    try:
        yield service, services
    finally:
        await service.kill(signal.SIGTERM)
        await services.close()


def _of(calls: list[SimulatedCall], name: str, **fields: str) -> Callable[[Message], bool]:
    ids = {c.linkedid for c in calls}
    return lambda e: str(e.get("Linkedid", "")) in ids and is_event(name, **fields)(e)


def _hung_up(call: SimulatedCall) -> Callable[[Message], bool]:
    return lambda e: is_event("Hangup")(e) and e.get("Uniqueid") == call.linkedid


async def _round(ami: AMIClient, n: int) -> list[SimulatedCall]:
    return [await place_call(ami, caller=f"790055{n}{i:04d}", number="88001234567",
                             dtmf="2", delay=1, hold=5 + i % 3)
            for i in range(CALLERS_PER_ROUND)]


async def _idle(ami: AMIClient) -> bool:
    reply = await ami.action({"Action": "CoreShowChannels"}, as_list=True)
    return not any(m.get("Event") == "CoreShowChannel" for m in reply)


# The moments of the kills: the greeting playing, a key pressed in the menu, a caller
# joining a queue (the tracker's fact still in memory, the batch not yet written).
MOMENTS: list[tuple[str, dict[str, str]]] = [
    ("AGIExecStart", {}), ("DTMFEnd", {"Direction": "Received"}), ("QueueCallerJoin", {})]


@pytest.mark.parametrize(("db_url", "kills"), [
    ("sqlite", 3), pytest.param("postgres", 1, marks=pytest.mark.postgres)],
    indirect=["db_url"], ids=["sqlite", "postgres"])
async def test_service_killed_under_a_burst_loses_and_doubles_no_call(
    served: tuple[Service, Services], ami: AMIClient, events: EventRecorder,
    asterisk: DevAsterisk, kills: int,
) -> None:
    service, services = served
    window = datetime.now(UTC) - timedelta(seconds=1)
    moments = MOMENTS[-kills:]
    for queue in QUEUES:
        await ami.queue_add(queue, OPERATOR, "1002")
    calls: list[SimulatedCall] = []
    try:
        # The first process serves the IVR only: it dies before any reconciliation, as a
        # process killed early in its start would. Its calls, and those that come while
        # it is down, are the next one's to recover: the records' beginning was marked as
        # it started, not left for a reconciliation to mark.
        await service.start(("agi",))
        assert await _mark(services) is not None, "the records' beginning marked at start"
        for n, (event, fields) in enumerate(moments):
            batch = await _round(ami, n)
            calls += batch
            await events.wait_for(_of(batch, event, **fields), 30, f"{event} of round {n}")
            await service.kill()
            # Callers while nobody serves: agi-fail, then the general queue.
            gap = [await place_call(ami, caller=f"790066{n}{i:04d}", number="88001234567",
                                    hold=4) for i in range(CALLERS_IN_GAP)]
            calls += gap
            await events.wait_for(_of(gap[-1:], "UserEvent", UserEvent="HotlineAgiFail"),
                                  15, "a caller in the gap falls back")
            if n < len(moments) - 1:
                # Over before the service is back: only Asterisk's CDR knows them. (The
                # last round's are still waiting when it comes back.)
                for call in gap:
                    await events.wait_for(_hung_up(call), 20, "gap over")
            await service.start()
        await wait_until(lambda: _idle(ami), 60, "every caller done")
        with contextlib.suppress(TimeoutError):  # the assertions below say what is amiss
            await wait_until(lambda: _recorded(services, asterisk, window, calls), 30,
                             "every call of Asterisk's CDR in the records")
    finally:
        for queue in QUEUES:
            await ami.queue_remove(queue, OPERATOR)
    cdr = await asyncio.to_thread(_cdr_calls, asterisk, window)
    rows = await _rows(services)
    placed = sorted(c.linkedid for c in calls)
    assert sorted(cdr) == placed, "Asterisk's CDR holds every call of the window"
    # Each once; none of this Asterisk's earlier calls (an earlier test's), which ended
    # before the records began: the first start's mark.
    assert sorted(r.linkedid for r in rows) == placed, "every call of the window, once"
    for row in rows:
        assert (row.outcome, row.fallback) == _expected(events, row.linkedid), row.linkedid
        assert row.ended_at is not None and row.caller_number.startswith("79")
    assert any(r.recovered for r in rows), "the service really missed calls"
    assert any(r.fallback for r in rows), "callers really fell back"
    assert {r.outcome for r in rows} >= {CallOutcome.ANSWERED, CallOutcome.ABANDONED}


def _cdr_calls(asterisk: DevAsterisk, window: datetime) -> set[str]:
    calls = read_cdr_since(asterisk.log_dir / CDR_FILE, window)
    return {linkedid for linkedid, rows in calls.items()
            if min(r.start for r in rows if r.start) >= window}


async def _recorded(services: Services, asterisk: DevAsterisk, window: datetime,
                    calls: list[SimulatedCall]) -> list[Call]:
    """The records once they hold every call of the CDR's window, each ended."""
    cdr = await asyncio.to_thread(_cdr_calls, asterisk, window)
    rows = await _rows(services)
    done = cdr >= {c.linkedid for c in calls} and all(r.ended_at for r in rows) \
        and {r.linkedid for r in rows} >= cdr
    return rows if done else []


async def _rows(services: Services) -> list[Call]:
    async with services.sessions() as session:
        return list(await session.scalars(select(Call)))


async def _mark(services: Services) -> datetime | None:
    async with services.sessions() as session:
        return await session.scalar(select(ReconcileMark.at).where(ReconcileMark.name == MARK))


def _expected(events: EventRecorder, linkedid: str) -> tuple[CallOutcome, bool]:
    """What Asterisk said of the call: an operator answered, or it waited in a queue and
    left; whether it passed agi-fail."""
    def seen(name: str, **fields: str) -> bool:
        return bool(events.matching(lambda e: str(e.get("Linkedid", "")) == linkedid
                                    and is_event(name, **fields)(e)))

    fallback = seen("UserEvent", UserEvent="HotlineAgiFail")
    if seen("AgentConnect"):
        return CallOutcome.ANSWERED, fallback
    assert seen("QueueCallerJoin"), f"call {linkedid} never reached a queue"
    return CallOutcome.ABANDONED, fallback


async def test_a_fallback_seen_by_the_listening_tracker_is_flagged(
    settings: Settings, sqlite_url: str, asterisk: DevAsterisk, ami: AMIClient,
    events: EventRecorder,
) -> None:
    """No FastAGI server at all, the tracker listening: the caller goes through agi-fail to
    the general queue (R-H3) and gives up there. The IVR never saw the call; its row comes
    from the tracker, flagged as a fallback, not as recovered, abandoned."""
    services = services_on(settings, sqlite_url, datetime.now(UTC))
    listener = make_ami(settings)
    CallTracker(services, listener)
    await listener.start()
    try:
        await listener.wait_connected(10)
        call = await place_call(ami, caller="79007770001", number="88001234567", hold=4)
        await events.wait_for(_of([call], "UserEvent", UserEvent="HotlineAgiFail"), 15,
                              "the caller falls back")
        await events.wait_for(_hung_up(call), 20, "call over")

        async def ended() -> Call | None:
            await services.recorder.sync()
            async with services.sessions() as session:
                return await session.scalar(select(Call).where(
                    Call.linkedid == call.linkedid, Call.ended_at.is_not(None)))

        row = await wait_until(ended, 10, "the call recorded")
    finally:
        await listener.close()
        await services.close()
    assert (row.fallback, row.recovered, row.outcome, row.caller_number, row.queue) == (
        True, False, CallOutcome.ABANDONED, "79007770001", "hotline-general")


# --- without Asterisk: Asterisk's records written as it writes them ----------------------


class Link:
    """An AMI link that is up, with no call going on (CoreShowChannels lists nothing)."""

    connections = 1

    def __init__(self) -> None:
        self.connected: list[object] = []

    def on_connect(self, handler: object) -> None:
        self.connected.append(handler)

    def subscribe(self, event: str, handler: object) -> None:
        pass

    async def action(self, action: dict[str, str], **_: object) -> list[Message]:
        return [Message({"Event": "CoreShowChannelsComplete"})]


def _gap_call(log_dir: Path, linkedid: str, start: datetime) -> None:
    """A caller who came while the service was down, as Asterisk records them: agi-fail,
    the general queue, gave up after 3 s (cdr_custom's hotline.csv and queue_log)."""
    t0, t1 = start.timestamp(), start.timestamp() + 3
    sides = [(linkedid, "Local/88001234567@hotline-in-00000001;1", "Hangup", "", ""),
             (f"{linkedid}-h", "Local/88001234567@hotline-in-00000001;2", "Queue",
              "agi-fail", "88001234567")]
    (log_dir / CDR_FILE).parent.mkdir(parents=True, exist_ok=True)
    with (log_dir / CDR_FILE).open("a") as cdr:
        for uniqueid, channel, app, mark, dialed in sides:
            cdr.write(f'"{linkedid}","{uniqueid}","{channel}","","{app}","{t0:.6f}",'
                      f'"{t0:.6f}","{t1:.6f}","3","ANSWERED","79008880001","{mark}",'
                      f'"{dialed}"\n')
    with (log_dir / "queue_log").open("a") as queue_log:
        queue_log.write(f"{int(t0) + 1}|{linkedid}-h|hotline-general|NONE|ENTERQUEUE||"
                        f"79008880001|1\n{int(t1)}|{linkedid}-h|hotline-general|NONE|"
                        "ABANDON|1|1|2\n")


async def _call(services: Services, linkedid: str) -> Call | None:
    async with services.sessions() as session:
        return await session.scalar(select(Call).where(Call.linkedid == linkedid))


async def test_a_start_killed_before_its_first_reconciliation_loses_no_call(
    settings: Settings, sqlite_url: str, tmp_path: Path,
) -> None:
    """The first process marks the records' beginning as it starts, then dies before any
    reconciliation; a caller comes while it is down. The next process's IVR records a call
    before its own reconciliation runs: the caller in the gap is still recovered, read from
    the first start's mark, not from the newest call the records know."""
    services = services_on(settings, sqlite_url, datetime.now(UTC))
    try:
        started = datetime.now(UTC)
        await mark_start(services)  # what `hotline serve` does before serving
        _gap_call(tmp_path, "gap-1", started + timedelta(seconds=1))
        services.recorder.arrival("after-1", "79008880002", "88001234567",
                                  started + timedelta(minutes=2))
        await services.recorder.sync()
        assert await recover_unknown(services, Link(), tmp_path) == 1  # type: ignore[arg-type]
        await mark_start(services)  # a later start: the mark holds
        row = await _call(services, "gap-1")
        mark = await _mark(services)
    finally:
        await services.close()
    assert row is not None and (row.recovered, row.fallback, row.outcome, row.queue) == (
        True, True, CallOutcome.ABANDONED, "hotline-general")
    # The first start's moment: neither the reconciliation nor a later start moved it back.
    assert mark is not None and started <= mark < started + timedelta(seconds=5)


async def test_a_hang_up_the_new_link_did_not_hear_begin_is_completed_from_the_cdr(
    settings: Settings, sqlite_url: str, tmp_path: Path,
) -> None:
    """A caller unknown to the records hangs up just as the link comes up, before any
    snapshot of Asterisk's channels: the link never heard the call begin, so its end is
    completed from its CDR lines, its row and all. A call the link heard begin just ends."""
    services = services_on(settings, sqlite_url, datetime.now(UTC))
    try:
        tracker = CallTracker(services, Link(), tmp_path)  # type: ignore[arg-type]
        start = datetime.now(UTC) - timedelta(seconds=5)
        _gap_call(tmp_path, "unheard-1", start)
        end = f"{start.timestamp() + 3:.6f}"
        await tracker.handle(Message({"Event": "Hangup", "Linkedid": "unheard-1",
                                      "Uniqueid": "unheard-1", "Timestamp": end}))
        heard = {"Linkedid": "heard-1", "Uniqueid": "heard-1", "Timestamp": end}
        services.recorder.arrival("heard-1", "79008880003", "88001234567", start)
        for name in ("Newchannel", "Hangup"):
            await tracker.handle(Message({"Event": name, **heard}))

        async def ended(linkedid: str) -> Call | None:
            await services.recorder.sync()
            row = await _call(services, linkedid)
            return row if row is not None and row.ended_at is not None else None

        unheard = await wait_until(lambda: ended("unheard-1"), 5, "completed from the CDR")
        known = await wait_until(lambda: ended("heard-1"), 5, "the heard call ended")
    finally:
        await services.close()
    assert (unheard.recovered, unheard.fallback, unheard.outcome, unheard.caller_number) == (
        True, True, CallOutcome.ABANDONED, "79008880001")
    assert (known.recovered, known.outcome) == (False, CallOutcome.IVR_ABANDONED)
