"""The question journal (R-H6, R-H7): an entry per operator who spoke on a call, checked
before it is saved; a transfer adds the colleague's entry and never overwrites the first;
the operator's list of answered calls still without their entry, and the supervisor's count
of them per operator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.migrate import upgrade
from ivr.db.models import (
    Agency,
    Call,
    CallLeg,
    CallOutcome,
    Department,
    JournalEntry,
    JournalOutcome,
    Quality,
    Rating,
    RatingStatus,
    Role,
    Staff,
    Transfer,
    TransferKind,
    TransferOutcome,
)
from ivr.services.journal import (
    Entry,
    JournalError,
    gaps_by_operator,
    gaps_by_period,
    save_entry,
    without_entry,
)
from ivr.services.supervision import ratings_by

from .conftest import BACKENDS, fresh_database

T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


async def test_entries_are_checked_saved_and_missing_ones_listed(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as s, s.begin():
            dep = Department(name="Отдел консультаций")
            s.add(dep)
            await s.flush()
            op = Staff(login="op", surname="Иванова", first_name="Анна", position="консультант",
                       department_id=dep.id, role=Role.OPERATOR, extension="1001")
            agency = Agency(name="Социальный фонд России", phone="88001001000")
            s.add_all([op, agency])
            await s.flush()
            calls = [Call(linkedid=f"j-{n}", caller_number="79001234567", started_at=T0,
                          answered_at=T0 + timedelta(minutes=n), operator_id=op.id,
                          outcome=CallOutcome.ANSWERED) for n in range(3)]
            s.add_all(calls)
            await s.flush()
            ids = [c.id for c in calls]
            op_id, agency_id = op.id, agency.id

        with pytest.raises(JournalError, match="ведомство"):
            await save_entry(sessions, call_id=ids[0], staff_id=op_id, at=T0, entry=Entry(
                topic="pensions", question="Как получить пенсию?",
                outcome=JournalOutcome.REFERRED_TO_AGENCY))
        with pytest.raises(JournalError, match="ответ"):
            await save_entry(sessions, call_id=ids[0], staff_id=op_id, at=T0, entry=Entry(
                topic="services", question="Сроки?", outcome=JournalOutcome.ANSWERED))
        with pytest.raises(JournalError, match="справочнике"):
            await save_entry(sessions, call_id=ids[0], staff_id=op_id, at=T0, entry=Entry(
                topic="pensions", question="Пенсия", agency_id=10_000,
                outcome=JournalOutcome.REFERRED_TO_AGENCY))
        await save_entry(sessions, call_id=ids[0], staff_id=op_id, at=T0, entry=Entry(
            topic="pensions", question="Как получить пенсию?", agency_id=agency_id,
            outcome=JournalOutcome.REFERRED_TO_AGENCY))
        await save_entry(sessions, call_id=ids[2], staff_id=op_id, at=T0, entry=Entry(
            topic="services", question=" Сроки выдачи справки? ",
            answer="Пять рабочих дней.", outcome=JournalOutcome.ANSWERED))

        async with sessions() as s:
            missing = await without_entry(s, op_id, since=T0)
            saved = (await s.scalars(select(JournalEntry).where(
                JournalEntry.call_id == ids[2]))).all()
        assert [c.id for c in missing] == [ids[1]], "only the call left without an entry"
        assert [(j.question, j.answer, j.operator_id) for j in saved] == [
            ("Сроки выдачи справки?", "Пять рабочих дней.", op_id)]
    finally:
        await engine.dispose()


async def _transferred_call(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, ...]:
    """Иванова answers, transfers to Петров, who answers; Сидоров is on duty, not on it."""
    async with sessions() as s, s.begin():
        dep = Department(name="Отдел консультаций")
        s.add(dep)
        await s.flush()
        ops = [Staff(login=login, surname=surname, first_name="А", position="консультант",
                     department_id=dep.id, role=Role.OPERATOR, extension=ext)
               for login, surname, ext in (("iv", "Иванова", "1001"), ("pe", "Петров", "1002"),
                                           ("si", "Сидоров", "1003"))]
        s.add_all(ops)
        await s.flush()
        call = Call(linkedid="jt-1", caller_number="79001234567", started_at=T0,
                    answered_at=T0, operator_id=ops[1].id, topic="pensions",
                    outcome=CallOutcome.ANSWERED)
        s.add(call)
        await s.flush()
        s.add_all([CallLeg(call_id=call.id, operator_id=ops[0].id, channel="PJSIP/1001-1",
                           answered_at=T0, ended_at=T0 + timedelta(minutes=2)),
                   CallLeg(call_id=call.id, operator_id=ops[1].id, channel="PJSIP/1002-1",
                           answered_at=T0 + timedelta(minutes=2)),
                   Transfer(call_id=call.id, seq=1, kind=TransferKind.PANEL,
                            from_staff_id=ops[0].id, to_staff_id=ops[1].id,
                            outcome=TransferOutcome.COMPLETED)])
        return call.id, *(o.id for o in ops)


async def test_a_transfer_adds_the_colleagues_entry_never_overwrites(db_url: str) -> None:
    """R-H6: each operator who spoke on a transferred call writes their own entry; a
    correction changes only the writer's; the supervisor's gaps and the operator's list of
    calls without an entry count per operator; reports take the first operator's topic."""
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    day = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    try:
        call_id, ivanova, petrov, sidorov = await _transferred_call(sessions)
        first = Entry(topic="housing", question="Субсидия на ЖКУ", answer="Передаю коллеге",
                      outcome=JournalOutcome.TRANSFERRED)
        await save_entry(sessions, call_id=call_id, staff_id=ivanova, entry=first, at=T0)
        async with sessions() as s:
            assert [c.id for c in await without_entry(s, petrov, since=day[0])] == [call_id]
            assert await without_entry(s, ivanova, since=day[0]) == []
            assert await without_entry(s, sidorov, since=day[0]) == []
            assert [(g.name, g.missing) for g in await gaps_by_operator(s, *day)] == [
                ("Петров А", 1)]

        await save_entry(sessions, call_id=call_id, staff_id=petrov, at=T0, entry=Entry(
            topic="pensions", question="Субсидия на ЖКУ, сроки", answer="30 дней",
            outcome=JournalOutcome.ANSWERED))
        await save_entry(sessions, call_id=call_id, staff_id=ivanova, at=T0, entry=Entry(
            topic="housing", question="Субсидия на оплату ЖКУ", answer="Передаю коллеге",
            outcome=JournalOutcome.TRANSFERRED))   # her correction: still one entry each
        async with sessions() as s:
            entries = (await s.execute(
                select(JournalEntry.operator_id, JournalEntry.question, JournalEntry.topic)
                .where(JournalEntry.call_id == call_id).order_by(JournalEntry.id))).all()
            assert await gaps_by_operator(s, *day) == []
        assert [tuple(e) for e in entries] == [
            (ivanova, "Субсидия на оплату ЖКУ", "housing"),
            (petrov, "Субсидия на ЖКУ, сроки", "pensions")]
    finally:
        await engine.dispose()


async def test_reports_take_the_first_operators_topic(db_url: str) -> None:
    """Ratings by topic (R-H8 report) use the first journal entry's topic over the menu's,
    and a call with two entries is counted once."""
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        call_id, ivanova, petrov, _ = await _transferred_call(sessions)
        for staff_id, topic in ((ivanova, "housing"), (petrov, "pensions")):
            await save_entry(sessions, call_id=call_id, staff_id=staff_id, at=T0, entry=Entry(
                topic=topic, question="Вопрос", outcome=JournalOutcome.NOT_IN_COMPETENCE))
        async with sessions() as s, s.begin():
            s.add(Rating(call_id=call_id, operator_id=petrov, answer_received=True,
                         quality=Quality.SATISFIED, status=RatingStatus.COMPLETE,
                         rated_at=T0 + timedelta(minutes=5)))
        async with sessions() as s:
            rows = await ratings_by(s, "topic", T0, T0 + timedelta(hours=1), UTC)
        assert [(r.key, r.rated, r.satisfied) for r in rows] == [("housing", 1, 1)]
    finally:
        await engine.dispose()


async def test_the_supervisor_sees_gaps_per_operator_and_period(db_url: str) -> None:
    """R-H6: calls without the operator's entry counted for today, 7 and 30 days."""
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        _, ivanova, _, _ = await _transferred_call(sessions)
        async with sessions() as s, s.begin():   # an older call of Иванова's, 10 days ago
            s.add(Call(linkedid="jt-old", caller_number="79001234567",
                       started_at=T0 - timedelta(days=10), answered_at=T0 - timedelta(days=10),
                       operator_id=ivanova, outcome=CallOutcome.ANSWERED))
        end = T0 + timedelta(hours=1)
        periods = {name: (T0 - timedelta(days=days, hours=1), end)
                   for name, days in (("today", 0), ("week", 7), ("month", 30))}
        async with sessions() as s:
            rows = await gaps_by_period(s, periods)
        assert [(r.name, r.missing) for r in rows] == [
            ("Иванова А", {"today": 1, "week": 1, "month": 2}),
            ("Петров А", {"today": 1, "week": 1, "month": 1})]
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database(request.param, request, tmp_path)


async def test_the_migration_carries_entries_kept_on_the_call_row(empty_url: str) -> None:
    """R-H6: an entry written before the journal had its own table becomes its writer's
    entry; a call without one gets none; the call's legs stay."""
    upgrade(empty_url, "0001")
    engine = make_engine(empty_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO departments (id, name, short_name, competence)"
                " VALUES (1, 'Отдел', 'О', '')"))
            await conn.execute(text(
                "INSERT INTO staff (id, login, surname, first_name, patronymic, position,"
                " department_id, role, phone, competence, password_hash, active,"
                " failed_logins) VALUES (5, 'op', 'Иванова', 'Анна', '', 'консультант', 1,"
                " 'operator', '', '', '', true, 0)"))
            for linkedid, outcome in (("m-1", "'answered'"), ("m-2", "NULL")):
                await conn.execute(text(
                    "INSERT INTO calls (linkedid, caller_number, dialed_number, started_at,"
                    " ivr_path, outcome, journal_topic, journal_question, journal_answer,"
                    " journal_outcome, journal_by_id, journal_at) VALUES (:l, '79001234567',"
                    f" '', :at, '', 'answered', 'pensions', 'Пенсия?', 'Да', {outcome}, 5,"
                    " :at)"), {"l": linkedid, "at": T0})
            await conn.execute(text(
                "INSERT INTO call_legs (call_id, operator_id, channel) SELECT id, 5, 'PJSIP/1'"
                " FROM calls WHERE linkedid = 'm-1'"))
        upgrade(empty_url, "0002")
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT c.linkedid, j.operator_id, j.topic, j.question, j.answer, j.outcome"
                " FROM journal_entries j JOIN calls c ON c.id = j.call_id"))).all()
            legs = await conn.scalar(text("SELECT count(*) FROM call_legs"))
        assert [tuple(r) for r in rows] == [("m-1", 5, "pensions", "Пенсия?", "Да", "answered")]
        assert legs == 1, "rebuilding calls on SQLite cascades into no table referring to it"
    finally:
        await engine.dispose()
