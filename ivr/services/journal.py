"""The question journal (R-H6, R-H7): one entry per operator who spoke on a call, filled by
that operator — the topic, the question, the answer given or the knowledge-base article
used, and what came of it (answered, transferred, callback, referred to another agency —
which one —, not in the ministry's competence). A transfer adds the colleague's entry and
never overwrites the first operator's. The calls an operator answered and left without
their entry are listed for them, and counted per operator for the supervisor.

An operator "answered" a call when one of their legs of it was answered, or when they are
the call's operator and it was answered (a call recorded before its legs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from ..db.models import Agency, Call, CallLeg, JournalEntry, JournalOutcome, KbArticle, Staff


class JournalError(ValueError):
    """An entry that cannot be saved, phrased for the operator (Russian)."""


@dataclass(frozen=True)
class Entry:
    topic: str
    question: str
    outcome: JournalOutcome
    answer: str = ""
    article_id: int | None = None
    agency_id: int | None = None


def check(entry: Entry) -> None:
    if not entry.question.strip():
        raise JournalError("Запишите вопрос гражданина.")
    if not entry.topic.strip():
        raise JournalError("Выберите тему обращения.")
    if entry.outcome is JournalOutcome.REFERRED_TO_AGENCY and entry.agency_id is None:
        raise JournalError("Укажите ведомство, в которое направлен гражданин.")
    if entry.outcome is JournalOutcome.ANSWERED and not (entry.answer.strip()
                                                         or entry.article_id):
        raise JournalError("Запишите данный ответ или выберите статью базы знаний.")


async def save_entry(sessions: async_sessionmaker[AsyncSession], *, call_id: int,
                     staff_id: int, entry: Entry, at: datetime) -> None:
    """Write (or correct) ``staff_id``'s own journal entry of a call; a colleague's entry
    on the same call stays as it is."""
    check(entry)
    async with sessions() as session, session.begin():
        if await session.get(Call, call_id) is None:
            raise JournalError("Звонок не найден.")
        if entry.agency_id is not None and await session.get(Agency, entry.agency_id) is None:
            raise JournalError("Такого ведомства нет в справочнике.")
        if entry.article_id is not None and \
                await session.get(KbArticle, entry.article_id) is None:
            raise JournalError("Такой статьи нет в базе знаний.")
        mine = await session.scalar(select(JournalEntry).where(
            JournalEntry.call_id == call_id, JournalEntry.operator_id == staff_id))
        if mine is None:
            mine = JournalEntry(call_id=call_id, operator_id=staff_id)
            session.add(mine)
        mine.topic = entry.topic.strip()[:50]
        mine.question = entry.question.strip()
        mine.answer = entry.answer.strip() or None
        mine.outcome = entry.outcome
        mine.article_id = entry.article_id
        mine.agency_id = entry.agency_id
        mine.written_at = at


# A call's first journal entry, for reports that take the operator's topic before the one
# chosen in the menu: ``query.outerjoin(FIRST_ENTRY, FIRST_ENTRY_OF_CALL)``, then
# ``REPORT_TOPIC``. Joined, not a subquery in the select list, so GROUP BY sees plain columns.
FIRST_ENTRY = aliased(JournalEntry, name="first_entry")
_EARLIER = aliased(JournalEntry, name="earlier_entry")
FIRST_ENTRY_OF_CALL = and_(FIRST_ENTRY.call_id == Call.id, FIRST_ENTRY.id == (
    select(func.min(_EARLIER.id)).where(_EARLIER.call_id == Call.id)
    .correlate(Call).scalar_subquery()))
REPORT_TOPIC = func.coalesce(FIRST_ENTRY.topic, Call.topic, "без темы")


def _answered_by(operator_id: int) -> ColumnElement[bool]:
    return or_(
        exists().where(CallLeg.call_id == Call.id, CallLeg.operator_id == operator_id,
                       CallLeg.answered_at.is_not(None)),
        and_(Call.operator_id == operator_id, Call.answered_at.is_not(None)))


def _no_entry_by(operator_id: int) -> ColumnElement[bool]:
    return ~exists().where(JournalEntry.call_id == Call.id,
                           JournalEntry.operator_id == operator_id)


async def without_entry(session: AsyncSession, operator_id: int, since: datetime,
                        *, limit: int = 50) -> list[Call]:
    """The calls ``operator_id`` answered since ``since`` still without their entry,
    oldest first."""
    return list(await session.scalars(
        select(Call).where(Call.started_at >= since, _answered_by(operator_id),
                           _no_entry_by(operator_id))
        .order_by(Call.started_at).limit(limit)))


@dataclass(frozen=True)
class Gap:
    operator_id: int
    name: str
    missing: int


async def gaps_by_operator(session: AsyncSession, start: datetime,
                           end: datetime) -> list[Gap]:
    """Per operator, the calls started in [start, end) they answered and left without
    their journal entry (R-H6), most first."""
    period = and_(Call.started_at >= start, Call.started_at < end,
                  Call.answered_at.is_not(None))
    # Who answered what: their legs, and the call's operator (a call recorded before its
    # legs); UNION drops the pairs found both ways. Driven from the period's calls.
    spoke = union(
        select(CallLeg.call_id, CallLeg.operator_id.label("operator_id"))
        .join(Call, Call.id == CallLeg.call_id)
        .where(period, CallLeg.operator_id.is_not(None), CallLeg.answered_at.is_not(None)),
        select(Call.id, Call.operator_id).where(period, Call.operator_id.is_not(None)),
    ).subquery()
    rows = await session.execute(
        select(Staff.id, Staff.surname, Staff.first_name, func.count())
        .select_from(spoke).join(Staff, Staff.id == spoke.c.operator_id)
        .where(~exists().where(JournalEntry.call_id == spoke.c.call_id,
                               JournalEntry.operator_id == spoke.c.operator_id))
        .group_by(Staff.id, Staff.surname, Staff.first_name))
    return sorted((Gap(int(i), f"{surname} {first}", int(n)) for i, surname, first, n in rows),
                  key=lambda g: (-g.missing, g.name))


@dataclass(frozen=True)
class GapRow:
    operator_id: int
    name: str
    missing: dict[str, int]      # period name → calls without the operator's entry


async def gaps_by_period(session: AsyncSession,
                         periods: Mapping[str, tuple[datetime, datetime]]) -> list[GapRow]:
    """The supervisor's table: per operator, the calls without their entry in each period
    (e.g. today, 7 days, 30 days); operators with none in any period left out."""
    found: dict[int, tuple[str, dict[str, int]]] = {}
    for period, (start, end) in periods.items():
        for gap in await gaps_by_operator(session, start, end):
            found.setdefault(gap.operator_id, (gap.name, {}))[1][period] = gap.missing
    rows = [GapRow(i, name, {p: counts.get(p, 0) for p in periods})
            for i, (name, counts) in found.items()]
    return sorted(rows, key=lambda r: (-max(r.missing.values()), r.name))
