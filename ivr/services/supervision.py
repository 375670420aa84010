"""What the supervisor reviews (issue 5; R-H4, R-H5, R-H8, R-X2, R-X3): ratings by
operator, topic, day and week, the calls behind each figure, low ratings to call back,
transfers (calls with two, refused thirds), frequent journal topics with no article."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..db.models import Call, JournalEntry, Quality, Rating, Staff, Transfer, TransferOutcome
from .journal import FIRST_ENTRY, FIRST_ENTRY_OF_CALL, REPORT_TOPIC


@dataclass(frozen=True)
class RatingRow:
    key: str                  # operator's name, topic, day (ДД.ММ) or week (ISO «2026-W48»)
    key_id: str               # what the drill-down filters by
    rated: int
    answer_received: int
    satisfied: int
    partly: int
    not_satisfied: int

    @property
    def answered_share(self) -> float:
        return self.answer_received / self.rated if self.rated else 0.0

    @property
    def satisfied_share(self) -> float:
        return self.satisfied / self.rated if self.rated else 0.0


def _counts() -> tuple[object, ...]:
    return (func.count(), func.count().filter(Rating.answer_received.is_(True)),
            func.count().filter(Rating.quality == Quality.SATISFIED),
            func.count().filter(Rating.quality == Quality.PARTLY),
            func.count().filter(Rating.quality == Quality.NOT_SATISFIED))


async def ratings_by(session: AsyncSession, by: str, start: datetime, end: datetime,
                     tz: tzinfo) -> list[RatingRow]:
    """``by``: operator, topic, day or week (days and weeks in the organisation's zone)."""
    period = and_(Rating.rated_at >= start, Rating.rated_at < end)
    if by in ("operator", "topic"):
        query: Select[Any]
        if by == "operator":
            key = func.coalesce(Staff.surname + " " + Staff.first_name, "не определён")
            query = select(key, func.coalesce(Rating.operator_id, 0), *_counts()) \
                .outerjoin(Staff, Staff.id == Rating.operator_id) \
                .group_by(Rating.operator_id, Staff.surname, Staff.first_name)
        else:
            query = select(REPORT_TOPIC, REPORT_TOPIC, *_counts()) \
                .join(Call, Call.id == Rating.call_id) \
                .outerjoin(FIRST_ENTRY, FIRST_ENTRY_OF_CALL).group_by(REPORT_TOPIC)
        rows = (await session.execute(query.select_from(Rating).where(period))).all()
        return sorted((RatingRow(str(k), str(i), *map(int, rest)) for k, i, *rest in rows),
                      key=lambda r: (-r.rated, r.key))
    # Days and weeks: grouped on the local date, which SQL would need per-dialect zones for.
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    labels: dict[str, str] = {}
    for at, answer, quality in (await session.execute(
            select(Rating.rated_at, Rating.answer_received, Rating.quality).where(period))):
        day = at.astimezone(tz).date()
        if by == "week":
            year, week, _ = day.isocalendar()
            key_id, label = f"{year}-W{week:02d}", f"{year}, неделя {week}"
        else:
            key_id, label = day.isoformat(), f"{day:%d.%m}"
        labels[key_id] = label
        counts = groups[key_id]
        counts[0] += 1
        counts[1] += answer is True
        counts[2] += quality == Quality.SATISFIED
        counts[3] += quality == Quality.PARTLY
        counts[4] += quality == Quality.NOT_SATISFIED
    return [RatingRow(labels[k], k, *groups[k]) for k in sorted(groups)]


def local_day_range(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), tz)
    return start, datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)


async def calls_behind(session: AsyncSession, *, start: datetime, end: datetime,
                       operator_id: int | None = None, topic: str | None = None,
                       low_only: bool = False, limit: int = 50,
                       before: tuple[datetime, int] | None = None) -> list[Call]:
    """The rated calls behind a figure, with journal and transfers (drill-down), newest
    first; a page of ``limit``, the next one read from ``before`` (the last row's rating
    time and id: keyset, never OFFSET)."""
    query = (select(Call).join(Rating, Rating.call_id == Call.id)
             .where(Rating.rated_at >= start, Rating.rated_at < end)
             .options(selectinload(Call.transfers), selectinload(Call.rating),
                      selectinload(Call.journal))
             .order_by(Rating.rated_at.desc(), Rating.id.desc()).limit(limit))
    if before is not None:
        query = query.where(or_(Rating.rated_at < before[0],
                                and_(Rating.rated_at == before[0], Rating.id < before[1])))
    if operator_id is not None:   # 0: the calls whose operator is not known
        query = query.where(Rating.operator_id == operator_id if operator_id
                            else Rating.operator_id.is_(None))
    if topic:
        query = query.outerjoin(FIRST_ENTRY, FIRST_ENTRY_OF_CALL).where(REPORT_TOPIC == topic)
    if low_only:
        query = query.where(or_(Rating.answer_received.is_(False),
                                Rating.quality == Quality.NOT_SATISFIED))
    return list((await session.scalars(query)).all())


async def transfer_review(session: AsyncSession, start: datetime,
                          end: datetime) -> tuple[list[Call], list[Transfer]]:
    """Calls transferred twice (the limit reached) and the refused thirds (R-H4)."""
    in_period = and_(Call.started_at >= start, Call.started_at < end)
    # Driven from the period's calls (indexed), each counted through its own transfers.
    completed = (select(func.count()).where(Transfer.call_id == Call.id,
                                            Transfer.outcome == TransferOutcome.COMPLETED)
                 .correlate(Call).scalar_subquery())
    twice = list((await session.scalars(
        select(Call).where(in_period, completed >= 2)
        .options(selectinload(Call.transfers)).order_by(Call.started_at.desc()).limit(200)
    )).all())
    refused = list((await session.scalars(
        select(Transfer).join(Call, Call.id == Transfer.call_id)
        .where(in_period, Transfer.outcome == TransferOutcome.REFUSED)
        .order_by(Transfer.requested_at.desc()).limit(200))).all())
    return twice, refused


async def journal_gaps(session: AsyncSession, start: datetime, end: datetime,
                       *, limit: int = 30) -> list[tuple[str, int, int]]:
    """(topic, questions, answered without a knowledge-base article): where articles are
    missing (R-X2: feedback drives the knowledge base)."""
    no_article = case((JournalEntry.article_id.is_(None), 1), else_=0)
    rows = await session.execute(
        select(JournalEntry.topic, func.count(), func.sum(no_article))
        .join(Call, Call.id == JournalEntry.call_id)
        # By the call's start (indexed): a journal is written during or right after it.
        .where(Call.started_at >= start, Call.started_at < end)
        .group_by(JournalEntry.topic).order_by(func.sum(no_article).desc()).limit(limit))
    return [(str(t), int(n), int(m or 0)) for t, n, m in rows.all()]
