"""Migrations and model rules, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from ivr.db import models  # noqa: F401
from ivr.db.base import Base, managed_outside_models
from ivr.db.engine import SQLITE_PREFIX, make_engine, make_sessionmaker
from ivr.db.migrate import MIGRATIONS, alembic_config, downgrade, upgrade
from ivr.db.models import (
    Booking,
    BookingStatus,
    Call,
    Callback,
    CallbackSource,
    CallbackStatus,
    Channel,
    Citizen,
    Department,
    Official,
    ReceptionSlot,
    Role,
    Staff,
)

from .conftest import BACKENDS, fresh_database


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database(request.param, request, tmp_path)


async def _schema(url: str) -> tuple[list[Any], set[str], set[str]]:
    """What autogenerate would change to match the models; the tables; the columns of
    kb_articles (PostgreSQL's search vector among them)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True,
                                                    "include_name": managed_outside_models}),
                Base.metadata))
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            columns = await conn.run_sync(lambda c: {
                column["name"] for column in inspect(c).get_columns("kb_articles")}
                if "kb_articles" in tables else set())
    finally:
        await engine.dispose()
    return diff, tables, columns


async def _starting_terms(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT term, kind FROM plain_language_terms"))
            return dict(rows.tuples().all())
    finally:
        await engine.dispose()


async def test_migrations_build_the_models_schema_and_roll_back(empty_url: str) -> None:
    """The one test of the migrations themselves (every other test copies a database
    migrated once): from nothing to the schema the models declare, with the full-text
    search of the knowledge base and the starting plain-language dictionary (R-A7); back
    to nothing; and up again."""
    sqlite = empty_url.startswith(SQLITE_PREFIX)
    upgrade(empty_url)
    diff, tables, columns = await _schema(empty_url)
    assert diff == []
    assert {"calls", "transfers", "ratings", "callbacks", "appeals", "reception_bookings",
            "kb_articles", "agencies", "notifications", "audit_log", "operator_phones"} <= tables
    assert ("kb_fts" in tables) if sqlite else ("search_vector" in columns)
    terms = await _starting_terms(empty_url)
    assert len(terms) == 28 and terms["вышеуказанный"] == "archaism"

    downgrade(empty_url, "base")
    _, left, _ = await _schema(empty_url)
    assert left <= {"alembic_version"}, "the search tables go too"
    upgrade(empty_url)
    assert (await _schema(empty_url))[0] == []


def _autogenerate_every_table(directory: Path) -> str:
    """The migration autogenerate writes against a database that claims the newest schema
    without a table of it: every table is new to it. (In a thread: env.py runs its own
    event loop.)"""
    cfg = alembic_config(f"{SQLITE_PREFIX}{directory}/claims_head.sqlite3")
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations",
                        os.pathsep.join([str(MIGRATIONS / "versions"), str(directory)]))
    command.stamp(cfg, "head")
    command.revision(cfg, "everything", autogenerate=True, version_path=str(directory))
    return next(directory.glob("*_everything.py")).read_text()


def _imports_project(source: str) -> bool:
    return re.search(r"^\s*(from|import) (ivr|agi|web)\b", source, re.MULTILINE) is not None


async def test_a_new_migration_spells_its_schema_out(tmp_path: Path) -> None:
    """A migration is a picture of its day: no migration imports the project's code, and
    what autogenerate writes for a new one names plain SQLAlchemy types (our UTC timestamp
    as ``sa.DateTime(timezone=True)``), never the models' own."""
    shipped = sorted((MIGRATIONS / "versions").glob("*.py"))
    assert shipped and not [path.name for path in shipped if _imports_project(path.read_text())]
    written = await asyncio.to_thread(_autogenerate_every_table, tmp_path)
    compile(written, "everything.py", "exec")
    assert "op.create_table('calls'" in written
    assert "sa.DateTime(timezone=True)" in written
    assert not _imports_project(written) and "ivr.db" not in written


async def test_timestamps_round_trip_in_utc(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    vladivostok = timezone(timedelta(hours=10))
    started = datetime(2026, 3, 3, 10, 30, tzinfo=vladivostok)
    async with sessions() as s, s.begin():
        s.add(Call(linkedid="tz-1", caller_number="79000000000", started_at=started))
    async with sessions() as s:
        row = (await s.scalars(select(Call).where(Call.linkedid == "tz-1"))).one()
    assert row.started_at == started
    assert row.started_at.tzinfo == UTC
    assert row.created_at.tzinfo == UTC
    with pytest.raises(StatementError, match="naive datetime"):
        async with sessions() as s, s.begin():
            s.add(Call(linkedid="tz-2", caller_number="7", started_at=datetime(2026, 1, 1)))
    await engine.dispose()


async def test_database_refuses_double_booking_and_double_callbacks(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    async with sessions() as s, s.begin():
        dep = Department(name="Отдел")
        s.add(dep)
        await s.flush()
        minister = Staff(login="m", surname="Орлов", first_name="В", position="министр",
                         department_id=dep.id, role=Role.ADMINISTRATOR)
        citizen = Citizen(surname="Морозова", preferred_channel=Channel.EMAIL)
        s.add_all([minister, citizen])
        await s.flush()
        official = Official(staff_id=minister.id, title="Министр", kind="minister")
        s.add(official)
        await s.flush()
        now = datetime.now(UTC)
        slot = ReceptionSlot(official_id=official.id, starts_at=now, ends_at=now)
        s.add(slot)
        await s.flush()
        s.add(Booking(slot_id=slot.id, citizen_id=citizen.id, booked_via="panel"))
        ids = (slot.id, citizen.id)

    with pytest.raises(IntegrityError):
        async with sessions() as s, s.begin():
            s.add(Booking(slot_id=ids[0], citizen_id=ids[1], booked_via="hotline"))
    # A cancelled booking frees the slot.
    async with sessions() as s, s.begin():
        booking = (await s.scalars(select(Booking))).one()
        booking.status = BookingStatus.CANCELLED
    async with sessions() as s, s.begin():
        s.add(Booking(slot_id=ids[0], citizen_id=ids[1], booked_via="hotline"))

    def callback(status: CallbackStatus = CallbackStatus.READY) -> Callback:
        return Callback(phone="79001234567", question_key="выплата", status=status,
                        source=CallbackSource.IVR_AFTER_HOURS)

    async with sessions() as s, s.begin():
        s.add(callback())
    with pytest.raises(IntegrityError):
        async with sessions() as s, s.begin():
            s.add(callback())
    async with sessions() as s, s.begin():
        s.add(callback(CallbackStatus.DONE))  # closed ones don't count
    await engine.dispose()


def _check_texts(path: Path) -> dict[str, list[str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {name: re.findall(r"CHECK \(.*?\)(?=,?\s*$)", sql, re.MULTILINE)
                for name, sql in db.execute("SELECT name, sql FROM sqlite_master "
                                            "WHERE type = 'table' AND sql LIKE '%CHECK (%'")}


async def test_enum_checks_on_sqlite_are_comparisons_and_still_refuse(
        sqlite_url: str, tmp_path: Path) -> None:
    """SQLite builds a temporary table for every row a CHECK (x IN (3+ constants)) tests:
    enum constraints are comparisons joined by OR there, and refuse what the list did."""
    path = tmp_path / "hotline.sqlite3"
    current = _check_texts(path)
    # journal_entries took calls' journal outcome (R-H6); agent_states, reception_exceptions
    # and call_recordings came with the administration, the seat and recording.
    assert len(current) == 14
    assert sum(len(checks) for checks in current.values()) == 23
    assert all(" IN (" not in check for checks in current.values() for check in checks)
    assert ("CHECK (status = 'complete' OR status = 'partial' OR status = 'no_answer')"
            in current["ratings"])
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with sessions() as s, s.begin():
        s.add(Call(linkedid="ck-1", caller_number="79000000000", started_at=datetime.now(UTC)))
    await engine.dispose()

    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT linkedid, outcome FROM calls").fetchall() == [
            ("ck-1", "in_progress")]
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        with pytest.raises(sqlite3.IntegrityError, match="ck_calls_outcome"):
            db.execute("UPDATE calls SET outcome = 'lost'")
        db.execute("UPDATE calls SET outcome = 'answered'")


async def test_call_indexes_leave_out_nulls_and_still_serve_lookups(db_url: str) -> None:
    """A new call's operator and citizen are NULL: their indexes leave NULL out, so the
    row's insert writes two index pages fewer, and a lookup by either (the journal's
    ``operator_id = ?``, a foreign key's check on ``citizen_id = ?``) still uses them."""
    postgres = db_url.startswith("postgresql")
    engine = make_engine(db_url)

    async def definitions() -> dict[str, str]:
        sql = ("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'calls'"
               if postgres else
               "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'calls' AND sql != ''")
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql(sql)).all()
        return {name: text_ for name, text_ in rows if name in (
            "ix_calls_operator_id", "ix_calls_citizen_id")}

    async def plan(where: str) -> str:
        async with engine.connect() as conn:
            if postgres:  # an empty table: a scan is cheaper unless refused
                await conn.exec_driver_sql("SET enable_seqscan = off")
                rows = await conn.exec_driver_sql(f"EXPLAIN SELECT id FROM calls WHERE {where}")
            else:
                rows = await conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN SELECT id FROM calls WHERE {where}")
            return " ".join(str(row[-1]) for row in rows)

    partial = await definitions()
    assert len(partial) == 2
    assert "operator_id IS NOT NULL" in partial["ix_calls_operator_id"]
    assert "citizen_id IS NOT NULL" in partial["ix_calls_citizen_id"]
    assert "ix_calls_operator_id" in await plan("operator_id = 7 AND answered_at IS NOT NULL")
    assert "ix_calls_citizen_id" in await plan("citizen_id = 3")
    await engine.dispose()
