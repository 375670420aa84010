"""An operator's day from the agent-state facts (issue 29): time in each state, pauses by
reason, calls answered and talk time. The operator sees their own, the supervisor
everybody's.

A state lasts from its row until the next row of the same extension, or until now; the state
an operator was in when the day began counts from the day's start.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import AgentState, AgentStateChange, CallLeg, Staff


@dataclass
class OperatorDay:
    staff_id: int
    name: str
    extension: str
    state: AgentState = AgentState.OFFLINE
    reason: str = ""
    since: datetime | None = None
    seconds: dict[AgentState, int] = field(default_factory=lambda: defaultdict(int))
    pauses: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    calls: int = 0
    talk_seconds: int = 0

    @property
    def logged_in_seconds(self) -> int:
        return sum(s for state, s in self.seconds.items() if state is not AgentState.OFFLINE)


async def _changes(session: AsyncSession, start: datetime,
                   end: datetime) -> list[AgentStateChange]:
    """The day's rows, each extension's last row before the day first."""
    before = (select(AgentStateChange.extension, func.max(AgentStateChange.at).label("at"))
              .where(AgentStateChange.at < start).group_by(AgentStateChange.extension)
              .subquery())
    carried = select(AgentStateChange).join(before, (
        before.c.extension == AgentStateChange.extension) & (before.c.at == AgentStateChange.at))
    within = select(AgentStateChange).where(AgentStateChange.at >= start,
                                            AgentStateChange.at < end)
    rows = [*(await session.scalars(carried)).all(), *(await session.scalars(within)).all()]
    return sorted(rows, key=lambda r: (r.extension, r.at, r.id))


def _fold(day: OperatorDay, rows: list[AgentStateChange], start: datetime,
          until: datetime) -> None:
    for i, row in enumerate(rows):
        begins = max(row.at, start)
        ends = min(rows[i + 1].at if i + 1 < len(rows) else until, until)
        seconds = max(0, int((ends - begins).total_seconds()))
        day.seconds[row.state] += seconds
        if row.state is AgentState.PAUSED:
            day.pauses[row.reason or "без причины"] += seconds
        day.state, day.reason, day.since = row.state, row.reason, row.at


async def days(session: AsyncSession, start: datetime, end: datetime, now: datetime,
               staff_id: int | None = None) -> list[OperatorDay]:
    """Every operator with a phone (or the one asked for), by name."""
    query = select(Staff).where(Staff.active, Staff.extension.is_not(None))
    if staff_id is not None:
        query = query.where(Staff.id == staff_id)
    staff = list((await session.scalars(query.order_by(Staff.surname))).all())
    by_extension: dict[str, list[AgentStateChange]] = defaultdict(list)
    for row in await _changes(session, start, end):
        by_extension[row.extension].append(row)
    legs = {operator: (calls, talk) for operator, calls, talk in (await session.execute(
        select(CallLeg.operator_id, func.count(), func.coalesce(func.sum(
            CallLeg.talk_seconds), 0))
        .where(CallLeg.answered_at >= start, CallLeg.answered_at < end)
        .group_by(CallLeg.operator_id))).all()}
    result = []
    for person in staff:
        day = OperatorDay(person.id, person.initials_name, person.extension or "")
        _fold(day, by_extension.get(day.extension, []), start, min(now, end))
        day.calls, day.talk_seconds = legs.get(person.id, (0, 0))
        result.append(day)
    return result


def duration(seconds: int) -> str:
    """``1 ч 05 мин``, ``12 мин``, ``40 с``: for people."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} ч {minutes:02d} мин"
    return f"{minutes} мин" if minutes else f"{secs} с"
