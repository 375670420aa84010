"""The call recorder: facts written in batches, in order, idempotently; while the database is
away they wait on disk (a private, bounded spool) and are replayed in order once it is back
(issue 4's batching writer, used by the IVR since issue 3: a flow never waits for a commit;
issue 25's spool: 0600 files, fsynced directory, a full spool refuses loudly)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from ivr import recorder as recorder_module
from ivr.db.engine import make_engine, make_sessionmaker
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
    fact_from_json,
)
from ivr.services.container import Services
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


async def _gone(path: Path) -> bool:
    return not await asyncio.to_thread(path.exists)


async def _true(value: bool) -> bool:
    return value


def _unmigrated(tmp_path: Path) -> str:
    """A database that is there but cannot take a fact ("no such table") until it is
    migrated: the database away, then back, without a server to stop."""
    return f"sqlite+aiosqlite:///{tmp_path}/away.sqlite3"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_facts_are_batched_in_order_and_idempotent(db_url: str, tmp_path: Path) -> None:
    """On both backends: batches mix many calls, each with several facts of a kind, and
    repeats that change nothing."""
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s, s.begin():
        citizen = Citizen(surname="Морозова", first_name="Анна", patronymic="Сергеевна")
        department = Department(name="Отдел обращений", short_name="Обращения")
        s.add_all([citizen, department])
        await s.flush()
        s.add(CitizenPhone(citizen_id=citizen.id, phone="79001234567"))
        s.add(Staff(login="petrov", surname="Петров", first_name="Иван", position="оператор",
                    department_id=department.id, role=Role.OPERATOR, extension="201"))
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", batch=50)
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


async def test_facts_within_an_interval_share_a_commit_and_sync_does_not_wait_it_out(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Under load many calls' facts share one commit; code that reads a call's row right
    after recording it (sync()) does not wait out the interval."""
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", interval=30.0)
    try:
        recorder.arrival("gather-1", "79001230001", "88001234567", T0)
        for _ in range(5):  # the writer's turns: it gathers, it does not write yet
            await asyncio.sleep(0)
        recorder.menu("gather-1", "3")
        recorder.arrival("gather-2", "79001230002", "88001234567", T0)
        await asyncio.wait_for(recorder.sync(), 10)
        assert (recorder.stats["committed"], recorder.stats["batches"]) == (3, 1)
    finally:
        await recorder.close()
        await engine.dispose()
    calls = await _calls(sqlite_url)
    assert calls["gather-1"].ivr_path == "3" and calls["gather-2"].caller_number == "79001230002"


async def test_a_batch_meeting_another_writer_waits_without_blocking_the_loop(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite: while another connection holds the write lock (a CLI command, a backup),
    the batch waits for it in the driver's thread; the loop runs on, and nothing is lost
    or spooled."""
    engine = make_engine(sqlite_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", interval=0.01)
    other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock
    try:
        recorder.arrival("lock-1", "79001112233", "88001234567", T0)
        syncing = asyncio.create_task(recorder.sync())
        for _ in range(20):  # the loop is not blocked while the batch waits
            await asyncio.sleep(0.01)
        assert not syncing.done(), "the batch waits for the lock"
    finally:
        other.execute("COMMIT")
        other.close()
    await syncing
    await recorder.close()
    await engine.dispose()
    assert (await _calls(sqlite_url))["lock-1"].caller_number == "79001112233"
    assert not (tmp_path / "spool.jsonl").exists() and recorder.stats["spooled"] == 0


async def test_a_database_locked_too_long_spools_and_replays_in_order(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite locked beyond its busy timeout is a database away: the facts wait in the
    spool, and once the lock is gone they are written in the order they came."""
    engine = make_engine(sqlite_url)
    event.listen(engine.sync_engine, "connect",
                 lambda dbapi, _: dbapi.cursor().execute("PRAGMA busy_timeout=100"))
    spool = tmp_path / "spool.jsonl"
    recorder = CallRecorder(engine, spool=spool, interval=0.01, retry_max_delay=0.2)
    recorder.arrival("locked-1", "79001112233", "88001234567", T0)
    await recorder.sync()
    other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        for key in "123":
            recorder.menu("locked-1", key)
            await recorder.sync()  # each spooled behind the one before
        assert recorder.stats["spooled"] >= 3 and spool.exists()
    finally:
        other.execute("COMMIT")
        other.close()
    recorder.menu("locked-1", "4")
    await wait_until(lambda: _gone(spool), 10, "the spool replayed")
    await recorder.close()
    await engine.dispose()
    assert (await _calls(sqlite_url))["locked-1"].ivr_path == "1>2>3>4"


async def test_a_sqlite_file_removed_under_the_service_spools_instead_of_writing_nowhere(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite goes on writing into a database file deleted under its open connection, with
    no error: those facts would be gone with it. The connection is dropped instead, the
    facts wait in the spool while there is no database with the tables, and reach the
    restored one in order."""
    path = Path(sqlite_url.split("///", 1)[1])
    engine = make_engine(sqlite_url)
    spool = tmp_path / "spool.jsonl"
    recorder = CallRecorder(engine, spool=spool, interval=0.01, retry_max_delay=0.2)
    recorder.arrival("lost-1", "79001112233", "88001234567", T0)
    await recorder.sync()
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)
    recorder.arrival("lost-2", "79004445566", "88001234567", T0)
    recorder.menu("lost-2", "2", topic="state_services", queue="hotline-services")
    await recorder.sync()
    assert recorder.stats["spooled"] == 2 and spool.exists()
    await asyncio.to_thread(upgrade, sqlite_url)  # the database restored (here: anew)
    recorder.menu("lost-2", "0")
    await wait_until(lambda: _gone(spool), 10, "the spool replayed")
    await recorder.close()
    await engine.dispose()
    calls = await _calls(sqlite_url)
    assert sorted(calls) == ["lost-2"]
    assert (calls["lost-2"].caller_number, calls["lost-2"].ivr_path) == ("79004445566", "2>0")
    assert recorder.stats["replayed"] == 2


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
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", batch=50)
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


async def test_a_spool_left_by_a_stopped_service_is_replayed_first_at_start(
    tmp_path: Path
) -> None:
    """The service stops while the database is away: the facts stay in the spool. The next
    run replays them at start, before its own new facts, in order."""
    url, spool = _unmigrated(tmp_path), tmp_path / "spool.jsonl"
    engine = make_engine(url)
    first = CallRecorder(engine, spool=spool, retry_max_delay=0.2)
    first.arrival("again-1", "79001230001", "88001234567", T0)
    first.menu("again-1", "2")
    first.menu("again-1", "5")
    await first.sync()
    await first.close()
    assert first.stats["spooled"] == 3 and spool.exists()

    await asyncio.to_thread(upgrade, url)  # the database is back
    second = CallRecorder(engine, spool=spool, interval=0.01)
    await second.start()
    await wait_until(lambda: _gone(spool), 10, "the left spool replayed without a new fact")
    second.menu("again-1", "6")
    await second.close()
    await engine.dispose()
    assert (await _calls(url))["again-1"].ivr_path == "2>5>6"
    assert second.stats["replayed"] == 3


async def test_a_replay_interrupted_keeps_only_what_was_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long spool is replayed a chunk per transaction, each chunk dropped from the spool
    once committed: when the database goes away again mid-replay, the next replay starts
    after the last committed chunk, and no menu key lands twice."""
    monkeypatch.setattr(recorder_module, "REPLAY_CHUNK", 2)
    url, spool = _unmigrated(tmp_path), tmp_path / "spool.jsonl"
    engine = make_engine(url)
    recorder = CallRecorder(engine, spool=spool, retry_max_delay=1.0)
    recorder.arrival("chunk-1", "79001230001", "88001234567", T0)
    for key in "12345":
        recorder.menu("chunk-1", key)
    await recorder.sync()
    assert recorder.stats["spooled"] == 6
    await asyncio.to_thread(upgrade, url)

    commit, commits = recorder._commit, 0

    async def away_at_the_third(facts: Any) -> None:
        nonlocal commits
        commits += 1
        if commits == 3:
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))
        await commit(facts)

    monkeypatch.setattr(recorder, "_commit", away_at_the_third)
    recorder.menu("chunk-1", "6")
    await recorder.sync()
    assert recorder.stats["replayed"] == 4
    left = [fact_from_json(line) for line in spool.read_text(encoding="utf-8").splitlines()]
    assert [cast(MenuKey, fact).key for fact in left] == ["4", "5", "6"]
    await wait_until(lambda: _gone(spool), 10, "the rest replayed")
    await recorder.close()
    await engine.dispose()
    assert (await _calls(url))["chunk-1"].ivr_path == "1>2>3>4>5>6"


async def test_a_torn_spool_line_spoils_only_itself(tmp_path: Path) -> None:
    """A crash mid-append leaves a last line without its end: the next fact spooled starts
    a line of its own, and the replay skips only the torn one."""
    url, spool = _unmigrated(tmp_path), tmp_path / "spool.jsonl"
    spool.write_text(Arrival("torn-1", "79001230001", "88001234567", T0).to_json() + "\n"
                     + MenuKey("torn-1", "9").to_json()[:25], encoding="utf-8")
    engine = make_engine(url)
    recorder = CallRecorder(engine, spool=spool, retry_max_delay=0.2)
    recorder.menu("torn-1", "3")
    await recorder.sync()
    assert spool.read_text(encoding="utf-8").count("\n") == 3
    await asyncio.to_thread(upgrade, url)
    await wait_until(lambda: _gone(spool), 10, "the spool replayed")
    await recorder.close()
    await engine.dispose()
    assert (await _calls(url))["torn-1"].ivr_path == "3"


async def test_spool_and_rejects_are_private_and_their_directory_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spooled facts and rejects hold callers' numbers and audit entries: 0600 whatever the
    umask, a spool made by an older version included. Each file's creation, replacement and
    removal is made durable by an fsync of its directory (issue 25)."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    spool = spool_dir / "calls.jsonl"
    spool.write_text(Arrival("own-1", "79001230001", "88001234567", T0).to_json() + "\n",
                     encoding="utf-8")
    spool.chmod(0o644)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    url = _unmigrated(tmp_path)
    engine = make_engine(url)
    recorder = CallRecorder(engine, spool=spool, retry_max_delay=0.2)
    old_umask = os.umask(0o000)
    try:
        spool.with_suffix(".tmp").touch(mode=0o666)  # left by a crash mid-replace
        recorder.menu("own-1", "1")
        await recorder.sync()
        assert _mode(spool) == 0o600, "tightened when next written"
        spool.unlink()
        synced.clear()
        recorder.menu("own-1", "2")
        await recorder.sync()
        assert _mode(spool) == 0o600 and synced[-1] == str(spool_dir), "a new spool"

        await asyncio.to_thread(upgrade, url)
        recorder.put(Outcome("own-1", "no-such-outcome"))
        await wait_until(lambda: _gone(spool), 10, "the spool replayed")
        await recorder.sync()
        assert str(spool_dir) in synced, "its removal"
        assert _mode(recorder.rejects) == 0o600
    finally:
        os.umask(old_umask)
        await recorder.close()
        await engine.dispose()

    # A replay cut short replaces the spool by its rest: a private file, renamed durably.
    spool.write_text("".join(MenuKey("own-1", k).to_json() + "\n" for k in "34"),
                     encoding="utf-8")
    spool.chmod(0o644)
    engine = make_engine(url)
    recorder = CallRecorder(engine, spool=spool)
    synced.clear()
    recorder._drop_spool_head(len(spool.read_bytes().splitlines(keepends=True)[0]))
    await recorder.close()
    await engine.dispose()
    assert _mode(spool) == 0o600 and synced[-1] == str(spool_dir)
    assert [cast(MenuKey, fact_from_json(line)).key
            for line in spool.read_text(encoding="utf-8").splitlines()] == ["4"]


async def _full_spool(tmp_path: Path) -> tuple[CallRecorder, AsyncEngine, str]:
    """A recorder whose database is away and whose spool is already at its bound."""
    url = _unmigrated(tmp_path)
    engine = make_engine(url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl", max_spool_bytes=100,
                            retry_max_delay=0.2)
    assert recorder.put(Arrival("full-1", "79001230001", "88001234567", T0))
    await recorder.sync()
    assert recorder.spool.stat().st_size >= 100
    return recorder, engine, url


async def test_a_full_spool_refuses_new_facts_loudly_and_keeps_those_it_has(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bound on the spool (settings: database.spool_max_mb): once reached, a new fact is
    refused — an error in the log, a count for the metrics — never dropped unseen; what the
    spool holds is kept, also across a restart, and written once the database is back
    (a refused fact is enough to start the replay); then facts are taken again."""
    caplog.set_level(logging.ERROR, logger="ivr.recorder")
    recorder, engine, url = await _full_spool(tmp_path)
    try:
        assert not recorder.put(MenuKey("full-1", "7"))
        recorder.menu("full-1", "8")
        assert recorder.stats["refused"] == 2
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 2 and all(r.levelno == logging.ERROR for r in refusals)
        assert "'full-1'" in refusals[0].getMessage()
        await recorder.sync()  # the refused facts are not waited for
    finally:
        await recorder.close()

    await asyncio.to_thread(upgrade, url)  # the database is back; the service restarts
    recorder = CallRecorder(engine, spool=recorder.spool, max_spool_bytes=100, interval=0.01)
    try:
        assert not recorder.put(MenuKey("full-1", "8"))
        await wait_until(lambda: _gone(recorder.spool), 10, "the spool replayed")
        assert recorder.put(MenuKey("full-1", "9"))
        await recorder.sync()
    finally:
        await recorder.close()
        await engine.dispose()
    call = (await _calls(url))["full-1"]
    assert (call.caller_number, call.ivr_path) == ("79001230001", "9")


async def test_an_audit_entry_a_full_spool_refuses_is_reported_in_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A view of personal data is audited through the recorder (web.auth.audit). When the
    spool is full the entry cannot be kept: it is reported in full — who, what, which
    record, from where — at CRITICAL, and counted; it does not vanish unseen."""
    from web.auth import audit

    caplog.set_level(logging.ERROR, logger="ivr.recorder")
    recorder, engine, _ = await _full_spool(tmp_path)
    svc = cast(Services, type("Svc", (), {"recorder": recorder, "clock": lambda self: T0})())
    try:
        await audit(svc, 17, "view", "citizen", 4242, "карточка гражданина", "10.0.0.5")
        assert recorder.stats["refused"] == 1
        (report,) = [r for r in caplog.records if r.levelno == logging.CRITICAL]
        message = report.getMessage()
        entry = json.loads(message[message.index("{"):])
        assert entry == {"kind": "audited", "linkedid": "", "at": T0.isoformat(),
                         "staff_id": 17, "action": "view", "object_type": "citizen",
                         "object_id": "4242", "details": "карточка гражданина",
                         "remote": "10.0.0.5"}
    finally:
        await recorder.close()
        await engine.dispose()


async def test_a_fact_the_database_refuses_is_kept_aside_and_holds_back_nothing(
    db_url: str, tmp_path: Path
) -> None:
    """A batch refused at a late fact is undone whole and written fact by fact: the good
    facts land once (no menu key twice), the bad one goes to the rejects file."""
    engine = make_engine(db_url)
    spool = tmp_path / "spool.jsonl"
    recorder = CallRecorder(engine, spool=spool, batch=500)
    for n in range(30):
        recorder.arrival(f"bad-{n}", f"790011{n:05d}", "88001234567", T0)
        recorder.menu(f"bad-{n}", "3", topic="support_measures")
    recorder.put(Outcome("bad-29", "no-such-outcome"))  # not a call outcome
    await recorder.sync()
    await recorder.close()
    await engine.dispose()

    calls = await _calls(db_url)
    assert len(calls) == 30 and {c.ivr_path for c in calls.values()} == {"3"}
    assert calls["bad-29"].outcome == CallOutcome.IN_PROGRESS
    rejected = recorder.rejects.read_text(encoding="utf-8").splitlines()
    assert len(rejected) == 1 and "no-such-outcome" in rejected[0]
    assert recorder.stats["rejected"] == 1 and recorder.stats["committed"] == 60
    assert not spool.exists()


async def test_menu_keys_of_new_and_earlier_rows_end_as_written_one_by_one(
    db_url: str, tmp_path: Path
) -> None:
    """A call's keys in the batch of its arrival, a row the queue reported first, a row
    from an earlier batch: every row ends as the keys applied one by one leave it."""
    engine = make_engine(db_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl")
    try:
        recorder.put(QueueJoined("fold-1", "hotline-general", T0))  # the queue's report first
        recorder.arrival("fold-4", "79001230004", "88001234567", T0)
        await recorder.sync()
        for n in (6, 7):
            recorder.arrival(f"fold-{n}", f"7900123000{n}", "88001234567", T0)
        recorder.menu("fold-6", "1")
        recorder.menu("fold-7", "3", "support", "hotline-support")
        recorder.menu("fold-6", "2", "state_services", "hotline-services")
        recorder.menu("fold-6", "*")
        await recorder.sync()
        for n in (1, 2, 3, 5):
            recorder.arrival(f"fold-{n}", f"7900123000{n}", "88001234567", T0)
        recorder.menu("fold-2", "1")
        recorder.menu("fold-1", "3", "support", "hotline-support")
        recorder.menu("fold-4", "5")  # its arrival came in an earlier batch
        recorder.menu("fold-2", "2", "state_services", "hotline-services")
        recorder.menu("fold-3", "0", queue="hotline-general")
        await recorder.sync()
    finally:
        await recorder.close()
        await engine.dispose()
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


async def test_an_arrival_fills_what_a_row_made_before_it_lacks(
    db_url: str, tmp_path: Path
) -> None:
    """A row made by the queue's report, or by an earlier arrival of the same batch that
    lacked the caller's number, gets the arrival's numbers."""
    engine = make_engine(db_url)
    recorder = CallRecorder(engine, spool=tmp_path / "spool.jsonl")
    try:
        recorder.put(QueueJoined("fill-1", "hotline-general", T0))  # no caller known yet
        await recorder.sync()
        recorder.arrival("fill-2", "79001230002", "88001234567", T0)
        recorder.arrival("fill-1", "79001230001", "88001234567", T0)
        recorder.arrival("fill-5", "", "88001234567", T0)
        recorder.arrival("fill-5", "79001230005", "", T0)
        await recorder.sync()
    finally:
        await recorder.close()
        await engine.dispose()
    calls = await _calls(db_url)
    assert {k: (c.caller_number, c.dialed_number) for k, c in calls.items()} == {
        "fill-1": ("79001230001", "88001234567"), "fill-2": ("79001230002", "88001234567"),
        "fill-5": ("79001230005", "88001234567")}
    assert calls["fill-1"].queue == "hotline-general"


def _a_days_facts() -> list[Fact]:
    """A day's facts of every kind: arrivals (a repeat, one after the queue's report, which
    fills that row), keys, outcomes, the queue's reports, an abandoned call, an operator's
    leg, ends and an audit entry."""
    later = T0 + timedelta(seconds=30)
    return [
        Arrival("day-1", "79001230001", "88001234567", T0),
        MenuKey("day-1", "2", "state_services", "hotline-services"),
        MenuKey("day-1", "*"),
        Arrival("day-1", "ignored", "ignored", later),
        Outcome("day-1", CallOutcome.SELF_SERVICE.value),
        Ended("day-1", later),
        QueueJoined("day-2", "hotline-general", T0),
        Arrival("day-2", "79001230002", "88001234567", T0),
        Abandoned("day-2", later),
        Arrival("day-3", "79001230003", "88001234567", T0),
        QueueJoined("day-3", "hotline-general", T0),
        LegAnswered("day-3", "Local/201@op-3", "201", T0 + timedelta(seconds=5)),
        LegEnded("day-3", "Local/201@op-3", 20, "operator", later),
        Ended("day-3", later),
        Audited("", T0, None, "view", "call", "day-3", "история звонков", "127.0.0.1"),
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


async def test_facts_written_one_at_a_time_leave_the_rows_a_batch_leaves(
    tmp_path: Path
) -> None:
    """At quiet times every fact is a commit of its own, under load they share one: the
    rows end the same either way."""
    urls = []
    for name in ("alone", "batch"):
        urls.append(f"sqlite+aiosqlite:///{tmp_path}/{name}.sqlite3")
        upgrade(urls[-1])
    alone_url, batch_url = urls
    facts = _a_days_facts()
    for url, one_by_one in ((alone_url, True), (batch_url, False)):
        engine = make_engine(url)
        recorder = CallRecorder(engine, spool=tmp_path / f"{one_by_one}.jsonl")
        try:
            for fact in facts:
                recorder.put(fact)
                if one_by_one:
                    await recorder.sync()
            await recorder.sync()
            assert recorder.stats["batches"] == (len(facts) if one_by_one else 1)
        finally:
            await recorder.close()
            await engine.dispose()
    alone, batch = await _rows(alone_url), await _rows(batch_url)
    assert alone == batch
    assert alone[0][1][1:7] == ("79001230002", "88001234567", T0, "", None, "hotline-general")
    assert alone[1] == [(T0, "view", "call", "day-3", "история звонков", "127.0.0.1")]
