"""Supervisor figures from call records (issue 4): answered, abandoned and after how long,
speed of answer, service level as Asterisk defines it, talk time, transfers per call,
repeat callers within 7 days; overdue callbacks (R-H5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.models import (
    Call,
    Callback,
    CallbackSource,
    CallbackStatus,
    CallLeg,
    CallOutcome,
    Transfer,
    TransferKind,
    TransferOutcome,
)
from ivr.services.kpi import call_kpis, overdue_callbacks

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Monday 10:00 in Moscow


def _call(n: int, caller: str, *, minutes: int, wait: int | None, answered: bool,
          abandoned: bool = False, dialed: str = "88001234567") -> Call:
    start = T0 + timedelta(minutes=minutes)
    joined = start + timedelta(seconds=30) if wait is not None else None
    return Call(
        linkedid=f"k-{n}", caller_number=caller, dialed_number=dialed, started_at=start,
        queue_joined_at=joined, wait_seconds=wait,
        answered_at=joined + timedelta(seconds=wait) if answered and joined and wait else None,
        outcome=(CallOutcome.ANSWERED if answered else CallOutcome.ABANDONED if abandoned
                 else CallOutcome.SELF_SERVICE))


async def test_kpis_over_a_morning(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as s, s.begin():
            calls = [
                _call(1, "79000000001", minutes=0, wait=10, answered=True),
                _call(2, "79000000002", minutes=5, wait=40, answered=True),
                _call(3, "79000000003", minutes=9, wait=25, answered=False, abandoned=True),
                _call(4, "79000000001", minutes=60, wait=5, answered=True),   # calls again
                _call(5, "79000000004", minutes=70, wait=None, answered=False),  # IVR only
                # A callback we made, and a call of the week before: neither counts here.
                _call(6, "79000000002", minutes=80, wait=3, answered=True, dialed="callback"),
                _call(7, "79000000004", minutes=-60 * 24 * 3, wait=2, answered=True),
            ]
            s.add_all(calls)
            await s.flush()
            s.add_all([CallLeg(call_id=calls[0].id, channel="a", talk_seconds=120),
                       CallLeg(call_id=calls[1].id, channel="b", talk_seconds=60),
                       CallLeg(call_id=calls[3].id, channel="c", talk_seconds=30)])
            s.add_all([Transfer(call_id=calls[1].id, seq=1, kind=TransferKind.BLIND,
                                outcome=TransferOutcome.COMPLETED),
                       Transfer(call_id=calls[1].id, seq=2, kind=TransferKind.BLIND,
                                outcome=TransferOutcome.REFUSED)])
        async with sessions() as s:
            k = await call_kpis(s, T0, T0 + timedelta(hours=8), service_level_seconds=20)
        assert (k.offered, k.answered, k.abandoned) == (4, 3, 1)
        assert k.abandoned_avg_wait == 25
        assert k.asa_seconds == pytest.approx((10 + 40 + 5) / 3)
        assert k.service_level == pytest.approx(2 / 3)        # 10 s and 5 s, not 40 s
        assert k.avg_talk_seconds == pytest.approx(70)
        assert k.transfers_per_call == pytest.approx(1 / 3)   # the refused one is no transfer
        # 79000000001 called twice within the day; 79000000004's earlier call was 3 days
        # before its IVR-only call.
        assert k.repeat_callers == 2
    finally:
        await engine.dispose()


async def test_overdue_callbacks_are_those_past_their_date_and_not_done(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    today = date(2026, 11, 25)
    try:
        async with sessions() as s, s.begin():
            for n, (promised, status) in enumerate([
                (date(2026, 11, 20), CallbackStatus.WAITING_INFO),   # overdue
                (date(2026, 11, 24), CallbackStatus.FAILED),         # overdue: no answer given
                (date(2026, 11, 24), CallbackStatus.DONE),
                (date(2026, 11, 25), CallbackStatus.READY),          # due today, not late
                (date(2026, 11, 19), CallbackStatus.CANCELLED),
            ]):
                s.add(Callback(phone=f"7900111000{n}", source=CallbackSource.OPERATOR,
                               promised_date=promised, status=status, question_key=str(n)))
        async with sessions() as s:
            late = await overdue_callbacks(s, today)
        assert [(c.promised_date, c.status) for c in late] == [
            (date(2026, 11, 20), CallbackStatus.WAITING_INFO),
            (date(2026, 11, 24), CallbackStatus.FAILED)]
    finally:
        await engine.dispose()
