"""The question journal (R-H6, R-H7): an entry per answered call, checked before it is
saved, and the operator's list of answered calls still without one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.models import Agency, Call, CallOutcome, Department, JournalOutcome, Role, Staff
from ivr.services.journal import Entry, JournalError, save_entry, without_entry

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
            saved = await s.get(Call, ids[2])
        assert [c.id for c in missing] == [ids[1]], "only the call left without an entry"
        assert saved is not None
        assert (saved.journal_question, saved.journal_answer, saved.journal_by_id) == (
            "Сроки выдачи справки?", "Пять рабочих дней.", op_id)
    finally:
        await engine.dispose()
