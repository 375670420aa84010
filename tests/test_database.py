"""Migrations and model rules, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError, StatementError

from ivr.db import models  # noqa: F401
from ivr.db.base import Base, managed_outside_models
from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.migrate import downgrade, upgrade
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


async def test_migrations_match_models_and_roll_back(db_url: str) -> None:
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(
            MigrationContext.configure(c, opts={"compare_type": True,
                                                "include_name": managed_outside_models}),
            Base.metadata))
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert diff == []
    assert {"calls", "transfers", "ratings", "callbacks", "appeals", "reception_bookings",
            "kb_articles", "agencies", "notifications", "audit_log"} <= tables
    await engine.dispose()
    downgrade(db_url, "base")
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        left = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert left <= {"alembic_version"}
    await engine.dispose()
    upgrade(db_url)


async def test_timestamps_round_trip_in_utc(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    vladivostok = timezone(timedelta(hours=10))
    started = datetime(2026, 3, 3, 10, 30, tzinfo=vladivostok)
    async with sessions() as s, s.begin():
        s.add(Call(linkedid="tz-1", caller_number="79000000000", started_at=started))
    async with sessions() as s:
        row = await s.scalar(select(Call).where(Call.linkedid == "tz-1"))
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
        booking = await s.scalar(select(Booking))
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
    enum constraints are comparisons joined by OR there; migration 0007 rewrites those of a
    database made before, keeping its rows (downgrading gives the IN lists back)."""
    path = tmp_path / "hotline.sqlite3"
    current = _check_texts(path)
    assert len(current) == 10
    assert all(" IN (" not in check for checks in current.values() for check in checks)
    assert ("CHECK (status = 'complete' OR status = 'partial' OR status = 'no_answer')"
            in current["ratings"])

    downgrade(sqlite_url, "0006")  # as a database made before the models wrote comparisons
    old = _check_texts(path)
    assert ("CHECK (status IN ('complete', 'partial', 'no_answer'))" in old["ratings"])
    assert sum(len(checks) for checks in old.values()) == 19
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with sessions() as s, s.begin():
        s.add(Call(linkedid="ck-1", caller_number="79000000000", started_at=datetime.now(UTC)))
    await engine.dispose()

    upgrade(sqlite_url)
    assert _check_texts(path) == current
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT linkedid, outcome FROM calls").fetchall() == [
            ("ck-1", "in_progress")]
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        with pytest.raises(sqlite3.IntegrityError, match="ck_calls_outcome"):
            db.execute("UPDATE calls SET outcome = 'lost'")
        db.execute("UPDATE calls SET outcome = 'answered', journal_outcome = NULL")


async def test_call_indexes_leave_out_nulls_and_still_serve_lookups(db_url: str) -> None:
    """A new call's operator and citizen are NULL: their indexes leave NULL out (0008), so
    the row's insert writes two index pages fewer, and a lookup by either (the journal's
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
    downgrade(db_url, "0007")
    full = await definitions()
    assert len(full) == 2 and not any("NULL" in text_ for text_ in full.values())
    upgrade(db_url)
    assert await definitions() == partial
    await engine.dispose()
