"""Supervisor figures over hotline calls (issue 4): answered, abandoned and after how long,
average speed of answer, service level, talk time, transfers per call, repeat callers.

Computed from the call records the tracker writes. Call-backs (dialled number
``callback``) are conversations we started, not calls offered, and are left out. The
service level is Asterisk's own (``servicelevelperf``): of the calls answered, the share
answered within ``service_level_seconds`` of joining the queue; beside it, the share of all
who waited (answered or abandoned) answered in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Call, CallbackStatus, CallLeg, CallOutcome, Transfer, TransferOutcome
from ..db.models import Callback as CallbackRow

CALLBACK_DIALLED = "callback"
REPEAT_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Kpis:
    offered: int                      # calls that reached a queue
    answered: int
    abandoned: int                    # hung up waiting in the queue
    abandoned_avg_wait: float | None  # seconds in the queue before giving up
    asa_seconds: float | None         # average speed of answer
    service_level: float | None       # 0..1, Asterisk's definition
    avg_talk_seconds: float | None
    transfers_per_call: float | None  # completed transfers per answered call
    repeat_callers: int               # callers who had called within the 7 days before
    calls: int                        # every incoming call, IVR only or queued
    self_service: int                 # ended in the IVR having heard what they chose
    abandoned_in_ivr: int             # hung up in the IVR before that
    # An outage shows here, not hidden in the other figures (issue 31): calls whose caller
    # passed agi-fail, and calls completed from Asterisk's records the service missed.
    fallbacks: int = 0
    recovered: int = 0
    # The same calls answered in time, of every caller who waited in the queue, the ones who
    # gave up included: Asterisk's figure alone says 100 % when most callers hung up.
    service_level_all: float | None = None

    @property
    def self_service_share(self) -> float | None:
        """Of all incoming calls, the share the IVR served on its own."""
        return self.self_service / self.calls if self.calls else None

    @property
    def answered_share(self) -> float | None:
        """Of the calls that reached a queue, the share an operator answered."""
        return self.answered / self.offered if self.offered else None


async def call_kpis(session: AsyncSession, start: datetime, end: datetime,
                    service_level_seconds: int) -> Kpis:
    inbound = and_(Call.started_at >= start, Call.started_at < end,
                   Call.dialed_number != CALLBACK_DIALLED)
    answered = Call.answered_at.is_not(None)
    abandoned = Call.outcome == CallOutcome.ABANDONED
    row = (await session.execute(select(
        func.count().filter(Call.queue_joined_at.is_not(None)),
        func.count().filter(answered),
        func.count().filter(abandoned),
        func.avg(case((abandoned, Call.wait_seconds))),
        func.avg(case((answered, Call.wait_seconds))),
        func.count().filter(answered, Call.wait_seconds <= service_level_seconds),
        func.count(),
        func.count().filter(Call.outcome == CallOutcome.SELF_SERVICE),
        func.count().filter(Call.outcome == CallOutcome.IVR_ABANDONED),
        func.count().filter(Call.fallback),
        func.count().filter(Call.recovered),
    ).where(inbound))).one()
    offered, n_answered, n_abandoned, abandoned_wait, asa, in_sl, *ivr = row
    talk = await session.scalar(select(func.avg(CallLeg.talk_seconds)).join(Call).where(
        inbound, CallLeg.talk_seconds.is_not(None)))
    transfers = await session.scalar(select(func.count()).select_from(Transfer).join(Call).where(
        inbound, Transfer.outcome == TransferOutcome.COMPLETED)) or 0
    return Kpis(
        offered=offered, answered=n_answered, abandoned=n_abandoned,
        abandoned_avg_wait=_float(abandoned_wait), asa_seconds=_float(asa),
        service_level=in_sl / n_answered if n_answered else None,
        avg_talk_seconds=_float(talk),
        transfers_per_call=transfers / n_answered if n_answered else None,
        repeat_callers=await _repeat_callers(session, start, end),
        calls=ivr[0], self_service=ivr[1], abandoned_in_ivr=ivr[2],
        fallbacks=ivr[3], recovered=ivr[4],
        service_level_all=(in_sl / (n_answered + n_abandoned)
                           if n_answered + n_abandoned else None),
    )


async def _repeat_callers(session: AsyncSession, start: datetime, end: datetime) -> int:
    """Numbers that called in [start, end) having called within the 7 days before that call."""
    rows = await session.execute(
        select(Call.caller_number, Call.started_at).where(
            Call.started_at >= start - REPEAT_WINDOW, Call.started_at < end,
            Call.caller_number != "", Call.dialed_number != CALLBACK_DIALLED,
        ).order_by(Call.caller_number, Call.started_at))
    repeat: set[str] = set()
    last: dict[str, datetime] = {}
    for number, at in rows:
        before = last.get(number)
        if at >= start and before is not None and at - before <= REPEAT_WINDOW:
            repeat.add(number)
        last[number] = at
    return len(repeat)


async def overdue_callbacks(session: AsyncSession, today: date) -> list[CallbackRow]:
    """Callbacks past their promised answer date and still not done (R-H5)."""
    return list(await session.scalars(select(CallbackRow).where(
        CallbackRow.promised_date < today,
        CallbackRow.status.not_in([CallbackStatus.DONE, CallbackStatus.CANCELLED]),
    ).order_by(CallbackRow.promised_date, CallbackRow.id)))


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
