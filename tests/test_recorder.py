"""The call recorder: facts written in batches, in order, idempotently; while the database is
away they wait on disk and are replayed once it is back (issue 4's batching writer, used by
the IVR since issue 3: a flow never waits for a commit)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, bindparam, func, select, update
from sqlalchemy.dialects import sqlite

from ivr.db.engine import make_engine, make_sessionmaker, make_sync_sqlite_engine
from ivr.db.migrate import upgrade
from ivr.db.models import (
    AuditEntry,
    Call,
    CallOutcome,
    Citizen,
    CitizenPhone,
    Department,
    Rating,
    Role,
    Staff,
    Transfer,
    TransferKind,
    TransferOutcome,
)
from ivr.recorder import (
    Abandoned,
    Arrival,
    Audited,
    CallRecorder,
    Ended,
    Fact,
    LegAnswered,
    LegEnded,
    MenuKey,
    Outcome,
    QueueJoined,
    _Compiled,
    fact_from_json,
)
from ivr.services.container import Services
from ivr.settings import Database, Settings
from ivr.simulate import wait_until

from .conftest import fresh_database
from .support.postgres import TestCluster

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


async def _calls(url: str) -> dict[str, Call]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            return {c.linkedid: c for c in await s.scalars(select(Call))}
    finally:
        await engine.dispose()


async def test_facts_are_batched_in_order_and_idempotent(db_url: str, tmp_path: Path) -> None:
    """On both backends: batches mix calls with one fact of a kind (PostgreSQL writes those
    set-wise) and calls with several (written row by row, in order)."""
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s, s.begin():
        citizen = Citizen(surname="Морозова", first_name="Анна", patronymic="Сергеевна")
        department = Department(name="Отдел обращений", short_name="Обращения")
        s.add_all([citizen, department])
        await s.flush()
        s.add(CitizenPhone(citizen_id=citizen.id, phone="79001234567"))
        s.add(Staff(login="petrov", surname="Петров", first_name="Иван", position="оператор",
                    department_id=department.id, role=Role.OPERATOR, extension="201"))
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", batch=50,
                            sync_engine=make_sync_sqlite_engine(db_url))
    for n in range(120):
        linkedid = f"c-{n}"
        recorder.arrival(linkedid, "+7 900 123-45-67" if n == 0 else f"7900000{n:04d}",
                         "88001234567", T0 + timedelta(seconds=n))
        recorder.arrival(linkedid, "ignored", "ignored", T0)  # a repeat changes nothing
        recorder.menu(linkedid, "5")
        recorder.menu(linkedid, "1", topic="reception", queue="hotline-general")
        recorder.outcome(linkedid, CallOutcome.SELF_SERVICE)
        recorder.ended(linkedid, T0 + timedelta(minutes=1))
        recorder.ended(linkedid, T0 + timedelta(minutes=9))  # the first report wins
    for n in range(60):  # queued calls the IVR never reported: the queue creates them
        linkedid, joined = f"q-{n}", T0 + timedelta(seconds=n)
        recorder.put(QueueJoined(linkedid, "hotline-general", joined, "79001234567"))
        recorder.put(QueueJoined(linkedid, "hotline-general", joined + timedelta(seconds=30)))
        if n % 2:
            recorder.put(Abandoned(linkedid, joined + timedelta(seconds=40)))
        else:
            recorder.put(LegAnswered(linkedid, f"Local/201@op-{n}", "201",
                                     joined + timedelta(seconds=20)))
            recorder.put(LegEnded(linkedid, f"Local/201@op-{n}", 65, "operator",
                                  joined + timedelta(seconds=85)))
        recorder.ended(linkedid, joined + timedelta(seconds=90))
    await recorder.sync()
    assert recorder.stats["batches"] >= (120 * 7 + 60 * 4) // 50, "batches of at most 50"
    await recorder.close()
    await engine.dispose()

    calls = await _calls(db_url)
    assert len(calls) == 180
    first = calls["c-0"]
    assert (first.caller_number, first.citizen_id is not None) == ("79001234567", True)
    for n, call in ((n, calls[f"c-{n}"]) for n in range(120)):
        assert call.ivr_path == "5>1" and call.topic == "reception"
        assert call.outcome == CallOutcome.SELF_SERVICE
        assert call.started_at == T0 + timedelta(seconds=n)
        assert call.ended_at == T0 + timedelta(minutes=1)
    for n, call in ((n, calls[f"q-{n}"]) for n in range(60)):
        joined = T0 + timedelta(seconds=n)
        assert (call.queue, call.queue_joined_at) == ("hotline-general", joined)
        assert call.caller_number == "79001234567" and call.citizen_id == first.citizen_id
        assert call.ended_at == joined + timedelta(seconds=90)
        if n % 2:
            assert (call.outcome, call.wait_seconds) == (CallOutcome.ABANDONED, 40)
            assert call.operator_id is None
        else:
            assert (call.outcome, call.wait_seconds) == (CallOutcome.ANSWERED, 20)
            assert call.operator_id is not None and call.hangup_by == "operator"
    assert not (tmp_path / "spool.jsonl").exists()


async def test_a_batch_meeting_another_writer_waits_in_a_thread(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite: the recorder commits on the event loop and never sleeps there on a lock.
    While another connection writes, the batch goes to a thread that waits; the loop runs
    on, and nothing is lost."""
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", interval=0.01,
                            sync_engine=make_sync_sqlite_engine(sqlite_url))
    other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock
    try:
        recorder.arrival("lock-1", "79001112233", "88001234567", T0)
        syncing = asyncio.create_task(recorder.sync())
        ticks = 0
        while ticks < 20:  # the loop is not blocked while the batch waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not syncing.done(), "the batch waits for the lock"
        assert recorder.stats["waited"] == 1
    finally:
        other.execute("COMMIT")
        other.close()
    await syncing
    await recorder.close()
    await engine.dispose()
    assert (await _calls(sqlite_url))["lock-1"].caller_number == "79001112233"
    assert not (tmp_path / "spool.jsonl").exists()


async def test_wal_checkpoints_follow_volume_not_every_quiet_batch(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: a checkpoint (a thread and an fsync) once enough facts were committed or a
    minute passed, not after each of a quiet line's batches; the data is readable from the
    WAL meanwhile. Checkpoints share one connection, closed with the recorder."""
    import ivr.recorder as rec

    monkeypatch.setattr(rec, "CHECKPOINT_FACTS", 5)
    runs: list[str] = []
    real = rec._WalCheckpoints.run

    def run(self: rec._WalCheckpoints) -> None:
        runs.append(self.path)
        real(self)

    monkeypatch.setattr(rec._WalCheckpoints, "run", run)
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", interval=0.01,
                            sync_engine=make_sync_sqlite_engine(sqlite_url))
    recorder._checkpointed -= 2   # started a while ago: the once-a-second floor is met
    for n in range(3):            # quiet batches: 3 facts
        recorder.arrival(f"q-{n}", "79001112233", "88001234567", T0)
        await recorder.sync()
    assert recorder._checkpoint is None and len(await _calls(sqlite_url)) == 3
    recorder._checkpointed = time.monotonic()   # the floor: not twice in one second
    for n in range(3, 8):
        recorder.arrival(f"q-{n}", "79001112233", "88001234567", T0)
        await recorder.sync()
    assert recorder._checkpoint is None
    recorder._checkpointed -= 2   # the 9th fact since the start, a second later
    recorder.arrival("q-8", "79001112233", "88001234567", T0)
    await recorder.sync()
    await recorder._checkpoint   # type: ignore[misc]   (its thread)
    assert len(runs) == 1
    assert recorder._checkpoints is not None
    kept = recorder._checkpoints._db
    assert kept is not None
    monkeypatch.setattr(rec, "CHECKPOINT_FACTS", 10**6)
    recorder._checkpointed -= rec.CHECKPOINT_SECONDS   # a minute later: one more
    recorder.arrival("q-9", "79001112233", "88001234567", T0)
    await recorder.sync()
    await recorder._checkpoint
    assert recorder._checkpoints._db is kept, "the same connection"
    await recorder.close()
    await engine.dispose()
    assert len(runs) == 2 and len(await _calls(sqlite_url)) == 10
    assert recorder._checkpoints is not None and recorder._checkpoints._db is None
    with sqlite3.connect(sqlite_url.split("///", 1)[1]) as db:
        busy, _frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0


async def test_ratings_in_one_batch_each_go_to_whom_that_caller_last_spoke_with(
    db_url: str, tmp_path: Path
) -> None:
    """After a completed attended transfer the rating is the colleague's (R-H8): with
    several calls' ratings in one batch, each finds its own call's transfer."""
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    async with sessions() as s, s.begin():
        department = Department(name="Отдел обращений", short_name="Обращения")
        s.add(department)
        await s.flush()
        staff = [Staff(login=f"op{n}", surname=f"Оператор{n}", first_name="И",
                       position="оператор", department_id=department.id, role=Role.OPERATOR,
                       extension=f"20{n}") for n in range(3)]
        s.add_all(staff)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", batch=50,
                            sync_engine=make_sync_sqlite_engine(db_url))
    for n in range(6):
        recorder.arrival(f"t-{n}", f"7900111{n:04d}", "88001234567", T0)
    await recorder.sync()
    async with sessions() as s, s.begin():
        for n in range(6):
            call_id = await s.scalar(select(Call.id).where(Call.linkedid == f"t-{n}"))
            s.add(Transfer(call_id=call_id, seq=1, kind=TransferKind.ATTENDED,
                           from_staff_id=staff[0].id, to_staff_id=staff[1 + n % 2].id,
                           outcome=TransferOutcome.COMPLETED, requested_at=T0,
                           completed_at=T0))
    for n in range(6):  # one batch: six calls, one rating each
        recorder.rated(f"t-{n}", extension="200", answer_received=True, quality="satisfied",
                       status="complete", from_queue=True, at=T0 + timedelta(minutes=5))
    await recorder.sync()
    await recorder.close()
    async with sessions() as s:
        rated = {linkedid: operator for linkedid, operator in await s.execute(
            select(Call.linkedid, Rating.operator_id).join(Rating, Rating.call_id == Call.id))}
    await engine.dispose()
    assert rated == {f"t-{n}": staff[1 + n % 2].id for n in range(6)}


def test_spool_lines_round_trip_and_a_torn_line_is_reported() -> None:
    fact = MenuKey("c-1", "4", "appeal_status", None)
    assert fact_from_json(fact.to_json()) == fact
    with pytest.raises(ValueError):
        fact_from_json('{"kind": "menu", "linkedid": "c-')


@pytest.mark.postgres
async def test_database_restart_loses_nothing(
    pg_cluster: TestCluster, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The database goes away mid-traffic: the facts wait on disk, in order, and are all
    in the database exactly once after it is back."""
    url = fresh_database("postgres", request, tmp_path)
    upgrade(url)
    engine = make_engine(url)
    spool = tmp_path / "spool.jsonl"
    recorder = CallRecorder(engine, spool=spool, interval=0.01, retry_max_delay=0.5)
    for n in range(30):
        recorder.arrival(f"r-{n}", f"7900000{n:04d}", "88001234567", T0)
    await recorder.sync()

    pg_cluster.pause()
    try:
        for n in range(30):
            recorder.menu(f"r-{n}", "2", topic="state_services")
            recorder.menu(f"r-{n}", "q1")
        for n in range(30, 40):  # calls that arrive while the database is down
            recorder.arrival(f"r-{n}", f"7900000{n:04d}", "88001234567", T0)
            recorder.menu(f"r-{n}", "0", queue="hotline-general")
        await recorder.sync()  # returns once the facts are safe on disk
        assert recorder.stats["spooled"] >= 80 and spool.exists()
    finally:
        pg_cluster.resume()

    await wait_until(lambda: _gone(spool), 30, "spool replayed")
    recorder.ended("r-0", T0 + timedelta(minutes=3))
    await recorder.close()
    await engine.dispose()

    calls = await _calls(url)
    assert sorted(calls) == sorted(f"r-{n}" for n in range(40))
    assert all(calls[f"r-{n}"].ivr_path == "2>q1" for n in range(30))
    assert all(calls[f"r-{n}"].ivr_path == "0" for n in range(30, 40))
    assert calls["r-0"].ended_at == T0 + timedelta(minutes=3)
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as s:
        assert await s.scalar(select(func.count()).select_from(Call)) == 40
    await engine.dispose()


async def _gone(path: Path) -> bool:
    return not await asyncio.to_thread(path.exists)


async def test_a_fact_the_database_refuses_is_kept_aside_and_holds_back_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    spool = tmp_path / "spool.jsonl"
    recorder = CallRecorder(engine, spool=spool, sync_engine=make_sync_sqlite_engine(sqlite_url))
    recorder.arrival("bad-1", "79001112233", "88001234567", T0)
    recorder.put(Outcome("bad-1", "no-such-outcome"))  # fails the outcome CHECK constraint
    recorder.menu("bad-1", "3", topic="support_measures")
    await recorder.sync()
    await recorder.close()
    await engine.dispose()

    call = (await _calls(sqlite_url))["bad-1"]
    assert (call.ivr_path, call.outcome) == ("3", CallOutcome.IN_PROGRESS)
    rejected = recorder.rejects.read_text(encoding="utf-8").splitlines()
    assert len(rejected) == 1 and "no-such-outcome" in rejected[0]
    assert recorder.stats["rejected"] == 1 and not spool.exists()


async def test_a_broken_sqlite_connection_spools_the_batch_and_a_new_one_writes_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The recorder keeps its SQLite connection checked out and uses it bare: a connection
    that fails (here closed under it) loses nothing — the batch goes to the spool, the
    connection is discarded, and the retry replays the spool on a new one. The WAL
    checkpoints' kept connection is then replaced too, at the next checkpoint."""
    from ivr import recorder as recorder_module

    engine = make_engine(sqlite_url)
    spool = tmp_path / "spool.jsonl"
    recorder = CallRecorder(engine, spool=spool, sync_engine=make_sync_sqlite_engine(sqlite_url),
                            retry_max_delay=0.5)
    checkpoints = recorder._checkpoints = recorder_module._WalCheckpoints(
        sqlite_url.split("///", 1)[1])
    checkpoints.run()
    before = checkpoints._db
    recorder.arrival("conn-1", "79001112233", "88001234567", T0)
    await recorder.sync()
    assert recorder._driver is not None
    assert not checkpoints._reopen, "a good batch leaves the checkpoints' connection alone"
    broken = recorder._driver.dbapi
    broken.close()
    recorder.arrival("conn-2", "79004445566", "88001234567", T0)
    recorder.menu("conn-2", "2", topic="state_services", queue="hotline-services")
    await recorder.sync()
    assert recorder.stats["spooled"] == 2 and spool.exists()
    await wait_until(lambda: _gone(spool), 10, "the spool replayed")
    assert recorder._driver is not None and recorder._driver.dbapi is not broken
    checkpoints.run()
    assert checkpoints._db is not None and checkpoints._db is not before
    with pytest.raises(sqlite3.ProgrammingError):
        before.execute("SELECT 1")  # closed
    await recorder.close()
    await engine.dispose()

    calls = await _calls(sqlite_url)
    assert calls["conn-2"].caller_number == "79004445566"
    assert (calls["conn-2"].ivr_path, calls["conn-2"].topic) == ("2", "state_services")
    assert recorder.stats["replayed"] == 2 and recorder.stats["dropped"] == 0


async def test_a_long_sqlite_batch_lets_the_loop_run_and_is_undone_whole_when_refused(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder writes SQLite on the event loop, in steps the loop runs between (here
    steps of one fact). A fact refused at a late step undoes the steps before
    it: the batch is then written fact by fact, and no menu key lands twice."""
    from ivr import recorder as recorder_module

    monkeypatch.setattr(recorder_module, "STEP_FACTS", 1)
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", batch=500,
                            sync_engine=make_sync_sqlite_engine(sqlite_url))
    turns = 0
    writing = True

    async def other_work() -> None:
        nonlocal turns
        while writing:
            turns += 1
            await asyncio.sleep(0)

    for n in range(30):
        recorder.arrival(f"step-{n}", f"790011{n:05d}", "88001234567", T0)
        recorder.menu(f"step-{n}", "3", topic="support_measures")
    recorder.put(Outcome("step-29", "no-such-outcome"))  # refused: the outcome's CHECK
    ticker = asyncio.create_task(other_work())
    await recorder.sync()
    writing = False
    await ticker
    await recorder.close()
    await engine.dispose()

    # 30 arrivals (two statements), 30 menu keys, one outcome: 91 steps before the refusal.
    assert turns >= 91
    calls = await _calls(sqlite_url)
    assert len(calls) == 30 and {c.ivr_path for c in calls.values()} == {"3"}
    assert recorder.stats["rejected"] == 1 and recorder.stats["committed"] == 60


def _arrivals(prefix: str, count: int) -> list[Arrival]:
    return [Arrival(f"{prefix}-{n}", f"7900123{n:04d}", "88001234567", T0)
            for n in range(count)]


async def _loop_turns_while_committing(
    sqlite_url: str, tmp_path: Path,
    batches: list[tuple[Callable[[], int] | None, list[Arrival]]],
) -> list[bool]:
    """Commit each batch, the recorder told the AGI server's count of calls as given,
    while another task counts its turns of the loop: whether each batch gave it any."""
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl",
                            sync_engine=make_sync_sqlite_engine(sqlite_url))
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    turned = []
    try:
        for calls_in_progress, facts in batches:
            recorder.calls_in_progress = calls_in_progress
            before = turns
            await recorder._commit(facts)
            turned.append(turns > before)
    finally:
        ticker.cancel()
        await recorder.close()
        await engine.dispose()
    return turned


async def test_a_quiet_time_sqlite_batch_is_written_without_giving_the_loop_turns(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of a step's facts or fewer (a fact or two at a quiet time) is written at
    once: a turn per statement would cost it loop iterations for nothing. A larger batch
    gives the loop its turns."""
    from ivr import recorder as recorder_module

    monkeypatch.setattr(recorder_module, "STEP_FACTS", 2)
    turned = await _loop_turns_while_committing(
        sqlite_url, tmp_path, [(None, _arrivals("quiet-2", 2)), (None, _arrivals("quiet-3", 3))])
    assert turned == [False, True]
    assert len(await _calls(sqlite_url)) == 5


async def test_with_one_call_in_progress_a_batch_is_written_in_one_go(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's turns between steps serve the calls waiting on the server. With one call
    in progress (or none) they would serve only that call, whose next reply then came
    during the next step: the batch is written at once. With two, it goes by steps; a
    process with no AGI server (calls_in_progress unset) always gives its loop turns."""
    from ivr import recorder as recorder_module

    monkeypatch.setattr(recorder_module, "STEP_FACTS", 2)
    counts: list[int | None] = [None, 0, 1, 2]
    turned = await _loop_turns_while_committing(sqlite_url, tmp_path, [
        (None if n is None else (lambda n=n: n), _arrivals(f"alone-{n}", 6)) for n in counts])
    assert turned == [True, False, False, True]
    assert len(await _calls(sqlite_url)) == 24


async def test_the_agi_server_tells_the_recorder_how_many_calls_it_has(
    settings: Settings, sqlite_url: str
) -> None:
    from agi.server import CallContext
    from ivr.runner import make_agi_server

    settings = settings.model_copy(update={
        "database": Database(url=sqlite_url),
        "agi": settings.agi.model_copy(update={"port": 0})})
    services = Services.create(settings)
    release = asyncio.Event()

    async def hold(call: CallContext) -> None:
        await release.wait()

    server = make_agi_server(services, {"hold": hold})
    await server.start()
    try:
        counted = services.recorder.calls_in_progress
        assert counted is not None and counted() == 0
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\nagi_network_script: hold\nagi_channel: SIP/x-1\n\n")

        async def count_is(n: int) -> bool:
            return counted() == n

        await wait_until(lambda: count_is(1), 10, "the call in progress")
        release.set()
        await reader.readline()  # the flow's closing SET VARIABLE
        writer.write(b"200 result=1\n")
        await wait_until(lambda: count_is(0), 10, "the call over")
        writer.close()
    finally:
        await server.close()
        await services.close()


async def test_a_reply_that_comes_during_a_step_is_served_before_the_next_step(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load the recorder's steps share the loop with the calls: a caller's key that
    reaches the server during a step is acted on before the next step, not after several
    (the saturated p99 of bench/agi_roundtrip.py followed the steps)."""
    import socket

    from ivr import recorder as recorder_module

    monkeypatch.setattr(recorder_module, "STEP_FACTS", 1)
    ours, asterisk = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    order: list[str] = []
    written = recorder_module._DriverConnection.write

    def write(self: recorder_module._DriverConnection, facts: list[Arrival],
              wait: bool) -> object:
        for _ in written(self, facts, wait):
            order.append("step")
            if order.count("step") == 1:
                asterisk.send(b"200 result=2\n")  # the caller's key, during the first step
            yield

    monkeypatch.setattr(recorder_module._DriverConnection, "write", write)

    async def call() -> None:
        await reader.readline()
        order.append("call")

    waiting = asyncio.create_task(call())
    await asyncio.sleep(0)
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl",
                            sync_engine=make_sync_sqlite_engine(sqlite_url))
    try:
        await recorder._commit([Arrival(f"turn-{n}", f"7900123{n:04d}", "88001234567", T0)
                                for n in range(4)])
        await waiting
    finally:
        writer.close()
        asterisk.close()
        await recorder.close()
        await engine.dispose()
    assert order.index("call") == 1, order
    assert len(await _calls(sqlite_url)) == 4


async def test_a_fact_after_a_quiet_spell_is_written_at_once_and_the_next_ones_gather(
    sqlite_url: str, tmp_path: Path
) -> None:
    """At most a commit per interval: a fact after a quiet spell is committed at once (a
    quiet-time call's fact no longer costs a timer's wake-up of its own); facts within an
    interval of the last commit gather for the next one, so under load calls share
    commits."""
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", interval=30.0,
                            sync_engine=make_sync_sqlite_engine(sqlite_url))

    async def committed(count: int) -> bool:
        return recorder.stats["committed"] == count

    try:
        recorder.arrival("quiet-1", "79001230001", "88001234567", T0)
        await wait_until(lambda: committed(1), 10, "the first fact, long before 30 s")
        recorder.arrival("quiet-2", "79001230002", "88001234567", T0)
        await asyncio.sleep(0.5)
        recorder.menu("quiet-2", "3")
        await asyncio.sleep(0.5)
        assert recorder.stats["committed"] == 1, "within the interval: gathering"
        await recorder.sync()  # sync() does not wait out the interval
        assert recorder.stats["committed"] == 3 and recorder.stats["batches"] == 2
    finally:
        await recorder.close()
        await engine.dispose()
    calls = await _calls(sqlite_url)
    assert calls["quiet-1"].caller_number == "79001230001" and calls["quiet-2"].ivr_path == "3"


def _spy_on_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first word of every statement the recorder's own SQLite connection runs."""
    from ivr import recorder as recorder_module

    statements: list[str] = []
    run = recorder_module._DriverConnection.exec_driver_sql

    def spy(self: recorder_module._DriverConnection, sql: str, params: object = ()) -> object:
        statements.append(sql.split()[0])
        return run(self, sql, params)

    monkeypatch.setattr(recorder_module._DriverConnection, "exec_driver_sql", spy)
    return statements


async def test_menu_keys_ride_on_their_calls_arrival_in_one_batch(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call's keys that share a batch with its arrival are written with the arrival's
    row: no update for them. The row of a call the queue reported first gets its keys'
    updates as before (with those of the new rows of its batch), and every row ends as the
    updates one by one would leave it."""
    statements = _spy_on_statements(monkeypatch)
    engine = make_engine(db_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl",
                            sync_engine=make_sync_sqlite_engine(db_url))
    try:
        recorder.put(QueueJoined("fold-1", "hotline-general", T0))  # the queue's report first
        recorder.arrival("fold-4", "79001230004", "88001234567", T0)
        await recorder.sync()
        statements.clear()
        for n in (6, 7):
            recorder.arrival(f"fold-{n}", f"7900123000{n}", "88001234567", T0)
        recorder.menu("fold-6", "1")
        recorder.menu("fold-7", "3", "support", "hotline-support")
        recorder.menu("fold-6", "2", "state_services", "hotline-services")
        recorder.menu("fold-6", "*")
        await recorder.sync()
        all_new = list(statements)
        for n in (1, 2, 3, 5):
            recorder.arrival(f"fold-{n}", f"7900123000{n}", "88001234567", T0)
        recorder.menu("fold-2", "1")
        recorder.menu("fold-1", "3", "support", "hotline-support")
        recorder.menu("fold-4", "5")  # its arrival came in an earlier batch
        recorder.menu("fold-2", "2", "state_services", "hotline-services")
        recorder.menu("fold-3", "0", queue="hotline-general")
        await recorder.sync()
        assert recorder.stats["batches"] == 3, "a batch was refused and written fact by fact"
    finally:
        await recorder.close()
        await engine.dispose()
    if db_url.startswith("sqlite"):
        assert all_new == ["SAVEPOINT", "INSERT", "RELEASE"], "keys folded in: no update"
        # fold-1's row was there: the insert is made again without the keys; then the fill
        # and the keys.
        assert statements[len(all_new):] == [
            "SAVEPOINT", "INSERT", "ROLLBACK", "INSERT", "RELEASE", "UPDATE", "UPDATE"]
    calls = await _calls(db_url)
    assert {k: (c.ivr_path, c.topic, c.queue) for k, c in calls.items()} == {
        "fold-1": ("3", "support", "hotline-support"),
        "fold-2": ("1>2", "state_services", "hotline-services"),
        "fold-3": ("0", None, "hotline-general"),
        "fold-4": ("5", None, None),
        "fold-5": ("", None, None),
        "fold-6": ("1>2>*", "state_services", "hotline-services"),
        "fold-7": ("3", "support", "hotline-support")}
    assert calls["fold-1"].caller_number == "79001230001"
    assert calls["fold-1"].queue_joined_at is not None


async def test_an_arrival_fills_a_row_made_before_it_and_skips_the_fill_for_new_rows(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The arrival's insert runs first and its fill only when some arrival found its row
    there already: made by the queue's report, or by an earlier arrival of the same batch
    (which lacked the caller's number)."""
    statements = _spy_on_statements(monkeypatch)
    engine = make_engine(db_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl",
                            sync_engine=make_sync_sqlite_engine(db_url))
    try:
        recorder.put(QueueJoined("fill-1", "hotline-general", T0))  # no caller known yet
        await recorder.sync()
        statements.clear()
        recorder.arrival("fill-2", "79001230002", "88001234567", T0)
        recorder.arrival("fill-3", "79001230003", "88001234567", T0)
        await recorder.sync()
        new_only = list(statements)
        recorder.arrival("fill-1", "79001230001", "88001234567", T0)
        recorder.arrival("fill-4", "79001230004", "88001234567", T0)
        recorder.arrival("fill-5", "", "88001234567", T0)
        recorder.arrival("fill-5", "79001230005", "", T0)
        await recorder.sync()
    finally:
        await recorder.close()
        await engine.dispose()
    if db_url.startswith("sqlite"):
        assert new_only == ["INSERT"], "every row new: no fill"
        assert statements[len(new_only):] == ["INSERT", "UPDATE"]
    calls = await _calls(db_url)
    assert {k: (c.caller_number, c.dialed_number) for k, c in calls.items()} == {
        "fill-1": ("79001230001", "88001234567"), "fill-2": ("79001230002", "88001234567"),
        "fill-3": ("79001230003", "88001234567"), "fill-4": ("79001230004", "88001234567"),
        "fill-5": ("79001230005", "88001234567")}
    assert calls["fill-1"].queue == "hotline-general"


def test_a_statement_whose_own_parameter_has_a_fields_name_is_refused() -> None:
    """A fact's fields and a statement's own parameters share one row dict: a parameter
    named as a field the statement takes ("queue" beside "b_queue") would read the wrong
    value, so compiling such a statement fails."""
    clash = update(Call).where(Call.queue == bindparam("b_queue", type_=String)).values(
        queue="hotline-general")
    with pytest.raises(RuntimeError, match="named as a fact's field"):
        _Compiled(clash, sqlite.dialect())
    fine = update(Call).where(Call.linkedid == bindparam("b_linkedid", type_=String)).values(
        queue=bindparam("b_queue", type_=String))
    assert _Compiled(fine, sqlite.dialect()).names == ("b_queue", "updated_at", "b_linkedid")


def _quiet_facts() -> list[Fact]:
    """A day's facts of every kind, each of them alone at a quiet time: arrivals (a repeat,
    one after the queue's report, which fills that row), keys, outcomes, the queue's
    reports, an abandoned call, an operator's leg, ends and an audit entry."""
    later = T0 + timedelta(seconds=30)
    return [
        Arrival("alone-1", "79001230001", "88001234567", T0),
        MenuKey("alone-1", "2", "state_services", "hotline-services"),
        MenuKey("alone-1", "*"),
        Arrival("alone-1", "ignored", "ignored", later),
        Outcome("alone-1", CallOutcome.SELF_SERVICE.value),
        Ended("alone-1", later),
        QueueJoined("alone-2", "hotline-general", T0),
        Arrival("alone-2", "79001230002", "88001234567", T0),
        Abandoned("alone-2", later),
        Arrival("alone-3", "79001230003", "88001234567", T0),
        QueueJoined("alone-3", "hotline-general", T0),
        LegAnswered("alone-3", "Local/201@op-3", "201", T0 + timedelta(seconds=5)),
        LegEnded("alone-3", "Local/201@op-3", 20, "operator", later),
        Ended("alone-3", later),
        Audited("", T0, None, "view", "call", "alone-3", "история звонков", "127.0.0.1"),
    ]


async def _rows(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            calls = [(c.linkedid, c.caller_number, c.dialed_number, c.started_at, c.ivr_path,
                      c.topic, c.queue, c.queue_joined_at, c.answered_at, c.ended_at,
                      c.outcome, c.hangup_by, c.wait_seconds)
                     for c in await s.scalars(select(Call).order_by(Call.linkedid))]
            audit = [(a.at, a.action, a.object_type, a.object_id, a.details, a.remote_addr)
                     for a in await s.scalars(select(AuditEntry))]
        return calls, audit
    finally:
        await engine.dispose()


class _SQLSeen:
    """The recorder's DBAPI connection, with the first word of every statement it runs."""

    def __init__(self, dbapi: sqlite3.Connection) -> None:
        self.dbapi = dbapi
        self.seen: list[str] = []

    def execute(self, sql: str, *args: Any) -> Any:
        self.seen.append(sql.split()[0])
        return self.dbapi.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self.seen.append(sql.split()[0])
        return self.dbapi.executemany(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.dbapi, name)


async def test_facts_written_one_at_a_time_leave_the_rows_a_batch_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At quiet times every fact is a commit of its own, and a fact whose write is one
    statement runs in SQLite's autocommit, with no BEGIN and COMMIT around it (an
    arrival's fill, when the queue made the row first, is then its only change): the
    rows end as one batch of the same facts leaves them."""
    from ivr import recorder as recorder_module

    urls = []
    for name in ("alone", "batch"):
        urls.append(f"sqlite+aiosqlite:///{tmp_path}/{name}.sqlite3")
        upgrade(urls[-1])
    alone_url, batch_url = urls
    facts = _quiet_facts()
    engine = make_engine(alone_url)
    recorder = CallRecorder(engine, spool=tmp_path / "alone.jsonl",
                            sync_engine=make_sync_sqlite_engine(alone_url))
    seen: list[list[str]] = []
    try:
        for fact in facts:
            recorder.put(fact)
            await recorder.sync()
            assert recorder._driver is not None
            if not isinstance(recorder._driver.dbapi, _SQLSeen):
                recorder._driver.dbapi = _SQLSeen(recorder._driver.dbapi)  # type: ignore[assignment]
            seen.append(recorder._driver.dbapi.seen)  # type: ignore[attr-defined]
            recorder._driver.dbapi.seen = []  # type: ignore[attr-defined]
        assert recorder.stats["batches"] == len(facts)
    finally:
        await recorder.close()
        await engine.dispose()
    by_kind = dict(zip((type(f).__name__ for f in facts[1:]), seen[1:], strict=False))
    assert by_kind["MenuKey"] == ["UPDATE"]
    assert by_kind["Outcome"] == ["UPDATE"] and by_kind["Abandoned"] == ["UPDATE"]
    assert by_kind["Audited"] == ["INSERT"]
    assert seen[7] == ["INSERT", "UPDATE"], "the queue made alone-2's row: filled"
    assert seen[9] == ["INSERT"], "a new row is made full: no fill"
    assert seen[6][0] == "BEGIN", "a fact of two statements keeps its transaction"
    assert recorder_module._ALONE == {"arrival", "menu", "outcome", "abandoned", "audited"}

    engine = make_engine(batch_url)
    batched = CallRecorder(engine, spool=tmp_path / "batch.jsonl",
                           sync_engine=make_sync_sqlite_engine(batch_url))
    try:
        await batched._commit(facts)
    finally:
        await batched.close()
        await engine.dispose()
    alone, batch = await _rows(alone_url), await _rows(batch_url)
    assert alone == batch
    assert alone[0][1][1:7] == ("79001230002", "88001234567", T0, "", None, "hotline-general")


async def test_a_quiet_time_fact_is_written_in_the_next_turn_without_the_writer_task(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fact that comes while the writer is idle is committed in the loop's next turn,
    right there: the writer task does not wake (its wake-up, loop and awaits were as much
    CPU as the write). One within an interval of the last commit still gathers."""
    rounds: list[int] = []
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", interval=0.2,
                            sync_engine=make_sync_sqlite_engine(sqlite_url))
    written_once = recorder._write_once

    async def counted() -> bool:
        rounds.append(1)
        return await written_once()

    monkeypatch.setattr(recorder, "_write_once", counted)
    try:
        recorder.arrival("now-1", "79001230001", "88001234567", T0)
        await recorder.sync()
        await asyncio.sleep(0.3)  # a quiet spell: the writer idles
        before = len(rounds)
        recorder.menu("now-1", "3")
        assert recorder.stats["committed"] == 1, "put() never writes by itself"
        await asyncio.sleep(0)
        assert recorder.stats["committed"] == 2 and len(rounds) == before
        recorder.menu("now-1", "1")  # within the interval: the writer gathers it
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert recorder.stats["committed"] == 2
        await wait_until(lambda: _true(recorder.stats["committed"] == 3), 5, "the gathered key")
        assert len(rounds) > before
    finally:
        await recorder.close()
        await engine.dispose()
    assert (await _calls(sqlite_url))["now-1"].ivr_path == "3>1"


async def _true(value: bool) -> bool:
    return value


async def test_a_quiet_time_fact_meeting_a_lock_or_a_spool_goes_to_the_writer_in_order(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The quiet-time write takes only the plain case. Another connection's lock: the fact
    goes back to the writer, which waits for the lock in a thread. Facts left on disk
    from an outage: the writer replays them first, then the new one."""
    spool = tmp_path / "spool.jsonl"
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=spool, interval=0.01,
                            sync_engine=make_sync_sqlite_engine(sqlite_url))
    try:
        recorder.arrival("gone-1", "79001230001", "88001234567", T0)
        await recorder.sync()
        await asyncio.sleep(0.05)
        other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            recorder.menu("gone-1", "2")
            syncing = asyncio.create_task(recorder.sync())
            await asyncio.sleep(0.2)
            assert not syncing.done() and recorder.stats["waited"] == 1
        finally:
            other.execute("COMMIT")
            other.close()
        await syncing
        await asyncio.sleep(0.05)
        spool.write_text(MenuKey("gone-1", "5").to_json() + "\n", encoding="utf-8")
        recorder.menu("gone-1", "6")
        await recorder.sync()
        assert recorder.stats["replayed"] == 1
    finally:
        await recorder.close()
        await engine.dispose()
    assert (await _calls(sqlite_url))["gone-1"].ivr_path == "2>5>6"
    assert not spool.exists()


def test_sqlite_timestamps_are_written_as_sqlalchemy_writes_them() -> None:
    """The recorder writes SQLite's timestamps itself (a fact's, and ``updated_at`` once a
    batch): the same text as the column type's own processor, from any time zone, so rows
    it writes sort and read back as the panel's do."""
    import random
    from datetime import timezone

    from ivr.db.base import UTCDateTime
    from ivr.recorder import _processor, _sqlite_timestamp, _stamp_processor

    dialect = sqlite.dialect()
    theirs = _processor(UTCDateTime(), dialect)
    assert _stamp_processor(UTCDateTime(), dialect) is _sqlite_timestamp
    rng = random.Random(20261201)
    for _ in range(2000):
        zone = timezone(timedelta(minutes=rng.randrange(-12 * 60, 14 * 60 + 1, 15)))
        moment = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(0, 40 * 365 * 86400),
            microseconds=rng.choice((0, rng.randrange(1_000_000))))
        local = moment.astimezone(zone)
        assert _sqlite_timestamp(local) == theirs(local)
        assert _sqlite_timestamp(moment) == theirs(moment)
    with pytest.raises(ValueError, match="naive"):
        _sqlite_timestamp(datetime(2026, 12, 1, 10, 0))
