"""The question journal (R-H6, R-H7): one entry per answered call, filled by the operator —
the topic, the question, the answer given or the knowledge-base article used, and what came
of it (answered, transferred, callback, referred to another agency — which one —, not in
the ministry's competence). Calls an operator answered and left without an entry are listed
for them at the end of the shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.models import Agency, Call, JournalOutcome, KbArticle


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
    """Write (or correct) the journal entry of a call."""
    check(entry)
    async with sessions() as session, session.begin():
        call = await session.get(Call, call_id)
        if call is None:
            raise JournalError("Звонок не найден.")
        if entry.agency_id is not None and await session.get(Agency, entry.agency_id) is None:
            raise JournalError("Такого ведомства нет в справочнике.")
        if entry.article_id is not None and \
                await session.get(KbArticle, entry.article_id) is None:
            raise JournalError("Такой статьи нет в базе знаний.")
        call.journal_topic = entry.topic.strip()[:50]
        call.journal_question = entry.question.strip()
        call.journal_answer = entry.answer.strip() or None
        call.journal_outcome = entry.outcome
        call.journal_article_id = entry.article_id
        call.journal_agency_id = entry.agency_id
        call.journal_by_id = staff_id
        call.journal_at = at


async def without_entry(session: AsyncSession, operator_id: int, since: datetime) -> list[Call]:
    """The calls ``operator_id`` answered since ``since`` that still have no journal entry."""
    return list(await session.scalars(select(Call).where(
        Call.operator_id == operator_id, Call.answered_at >= since,
        Call.journal_outcome.is_(None),
    ).order_by(Call.answered_at)))
