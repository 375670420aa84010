"""Calling citizens back (R-H5, R-H8): inside the windows, the employee first, retried when
the citizen does not answer, rated after the conversation; and never dialled twice by two
schedulers sharing one PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from ivr.ami import AMIClient
from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.models import (
    Call,
    Callback,
    CallbackAttempt,
    CallbackSource,
    CallbackStatus,
    Quality,
    Rating,
    Staff,
)
from ivr.dialer import CallbackDialer
from ivr.runner import make_ami
from ivr.services.callbacks import Window, claim_due, create_callback, finish_attempt
from ivr.simulate import EventRecorder, is_event, press, wait_until

from .conftest import OPEN_TIME, Stack

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
POSTGRES = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
CITIZEN = "79007654321"


def _around(now: datetime) -> list[Window]:
    return [Window(now - timedelta(hours=1), now + timedelta(hours=1))]


@POSTGRES
async def test_two_schedulers_never_claim_one_callback_twice(db_url: str) -> None:
    engines = [make_engine(db_url), make_engine(db_url)]
    first, second = (make_sessionmaker(e) for e in engines)
    now = datetime.now(UTC)
    try:
        for n in range(30):
            assert await create_callback(first, phone=f"7900555{n:04d}", windows=_around(now),
                                         source=CallbackSource.OPERATOR,
                                         question=f"вопрос {n}") is not None
        claimed: list[int] = []
        for _ in range(4):  # both schedulers claim at the same moment, a few rounds
            a, b = await asyncio.gather(claim_due(first, now, limit=8),
                                        claim_due(second, now, limit=8))
            claimed += [d.callback_id for d in a + b]
        assert len(claimed) == len(set(claimed)) == 30, "each callback claimed exactly once"
        async with first() as s:
            statuses = set(await s.scalars(select(Callback.status)))
        assert statuses == {CallbackStatus.CALLING}
    finally:
        for engine in engines:
            await engine.dispose()


@SQLITE
async def test_callback_retried_after_no_answer_then_connected_and_rated(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    services = seeded.services
    started = time.monotonic()
    # The scheduler's clock runs (from the pinned working morning): retries come due.
    services.clock = lambda: OPEN_TIME + timedelta(seconds=time.monotonic() - started)
    async with services.sessions() as s:
        staff_id = await s.scalar(select(Staff.id).where(Staff.extension == "1002"))
    callback_id = await create_callback(
        services.sessions, phone=CITIZEN, windows=_around(services.clock()),
        source=CallbackSource.OPERATOR, question="перерасчёт субсидии")
    assert callback_id is not None
    async with services.sessions() as s, s.begin():
        callback = await s.get(Callback, callback_id)
        assert callback is not None
        callback.assignee_id = staff_id
    await ami.action({"Action": "Setvar", "Variable": f"CITIZEN_{CITIZEN}", "Value": "ignore"})
    await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": "8"})
    listener = make_ami(seeded.settings)
    dialer = CallbackDialer(services, listener)
    await listener.start()

    async def attempts() -> list[str | None]:
        async with services.sessions() as s:
            cb = await s.scalar(select(Callback).options(selectinload(Callback.attempts))
                                .where(Callback.id == callback_id))
            assert cb is not None
            return [a.outcome for a in cb.attempts]

    try:
        await listener.wait_connected(10)
        # 1st attempt: the employee answers, hears the question; the citizen does not answer.
        assert await dialer.run_once() == 1
        assert await dialer.run_once() == 0, "the callback being called is not claimed again"
        await wait_until(lambda: _equals(attempts, ["no_answer"]), 40, "first attempt ends")
        await ami.action({"Action": "Setvar", "Variable": f"CITIZEN_{CITIZEN}", "Value": ""})

        # 2nd attempt, after callbacks.retry_seconds: connected.
        async def second_attempt() -> bool:
            return await dialer.run_once() == 1
        await wait_until(second_attempt, 20, "second attempt claimed", interval=0.5)
        intro = await events.wait_for(
            lambda e: is_event("Newexten", Context="hotline-intro", Application="Playback")(e),
            40, "citizen told who is calling")
        staff_heard = services.prompts.cached(services.prompts.fill(
            "callback_staff", question="перерасчёт субсидии"))
        assert staff_heard is not None, "the employee heard the question first"

        # The employee hangs up first: the citizen rates (answer: yes; quality: partly).
        citizen = str(intro["Channel"]).replace(";1", ";2")
        linkedid = str(intro["Linkedid"])
        await events.wait_for(lambda e: str(e.get("Linkedid")) == linkedid and is_event(
            "AGIExecStart")(e) and services.prompts.path("rating_answer") in str(
            e.get("Command", "")), 40, "rating asked")
        await press(ami, citizen, "1")
        await events.wait_for(lambda e: str(e.get("Linkedid")) == linkedid and is_event(
            "AGIExecStart")(e) and services.prompts.path("rating_quality") in str(
            e.get("Command", "")), 20, "second question")
        await press(ami, citizen, "2")

        async def rating() -> Rating | None:
            async with services.sessions() as s:
                return await s.scalar(select(Rating).join(Call).where(Call.linkedid == linkedid))
        stored = await wait_until(rating, 30, "rating stored")
        await ami.action({"Action": "Hangup", "Channel": citizen}, check=False)
    finally:
        await listener.close()
        for name in (f"CITIZEN_{CITIZEN}", "OP_TALK"):
            await ami.action({"Action": "Setvar", "Variable": name, "Value": ""})
    assert (stored.answer_received, stored.quality, stored.operator_id) == (
        True, Quality.PARTLY, staff_id)
    assert await attempts() == ["no_answer", "answered"]
    async with services.sessions() as s:
        cb = await s.get(Callback, callback_id)
        call = await s.scalar(select(Call).where(Call.linkedid == linkedid))
    assert cb is not None and cb.status == CallbackStatus.DONE
    assert call is not None and (call.caller_number, call.dialed_number) == (CITIZEN, "callback")


async def _equals(check, expected):  # type: ignore[no-untyped-def]
    return await check() == expected


async def test_attempts_keep_inside_the_windows_and_stop_after_the_last(sqlite_url: str) -> None:
    """Busy/no answer → retried later inside a window, else at the next window's start;
    out of attempts or windows → failed; an attempt a restart left open is closed."""
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    t0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    windows = [Window(t0, t0 + timedelta(minutes=30)),
               Window(t0 + timedelta(days=1), t0 + timedelta(days=1, minutes=30))]
    try:
        cb = await create_callback(sessions, phone=CITIZEN, windows=windows,
                                   source=CallbackSource.IVR_AFTER_HOURS)
        assert cb is not None
        retry = timedelta(minutes=20)

        [due] = await claim_due(sessions, t0 + timedelta(minutes=1))
        assert await finish_attempt(sessions, due.attempt_id, "busy", t0 + timedelta(minutes=2),
                                    max_attempts=3, retry=retry) == (CallbackStatus.READY, CITIZEN)
        assert await finish_attempt(sessions, due.attempt_id, "busy", t0, max_attempts=3,
                                    retry=retry) is None, "an attempt ends once"
        assert await _next(sessions, cb) == t0 + timedelta(minutes=22)  # same window

        [due] = await claim_due(sessions, t0 + timedelta(minutes=22))
        await finish_attempt(sessions, due.attempt_id, "no_answer", t0 + timedelta(minutes=23),
                             max_attempts=3, retry=retry)
        # 23 + 20 min is past the first window: the next attempt opens the second one.
        assert await _next(sessions, cb) == t0 + timedelta(days=1)
        assert await claim_due(sessions, t0 + timedelta(hours=5)) == []

        # A restart mid-call: the attempt never reports; the next claim closes it.
        [due] = await claim_due(sessions, t0 + timedelta(days=1, minutes=1))
        later = t0 + timedelta(days=1, minutes=20)
        assert await claim_due(sessions, later, stale_after=timedelta(minutes=15)) != []
        async with sessions() as s:
            outcomes = list(await s.scalars(select(CallbackAttempt.outcome)
                                            .order_by(CallbackAttempt.id)))
        assert outcomes == ["busy", "no_answer", "failed", None]

        # Out of windows: nothing more to try.
        async with sessions() as s, s.begin():
            await s.execute(update(CallbackAttempt).values(outcome="busy"))
            await s.execute(update(Callback).values(status=CallbackStatus.READY,
                                                    next_attempt_at=later))
        assert await claim_due(sessions, t0 + timedelta(days=2)) == []
        async with sessions() as s:
            assert await s.scalar(select(Callback.status)) == CallbackStatus.FAILED
    finally:
        await engine.dispose()


async def _next(sessions, callback_id):  # type: ignore[no-untyped-def]
    async with sessions() as s:
        return await s.scalar(select(Callback.next_attempt_at).where(Callback.id == callback_id))
