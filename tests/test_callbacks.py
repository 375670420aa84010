"""Calling citizens back (R-H5, R-H8): inside the windows, the employee first, retried when
the citizen does not answer, rated after the conversation; and never dialled twice by two
schedulers sharing one PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr.ami import AMIClient
from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.models import (
    Call,
    Callback,
    CallbackSource,
    CallbackStatus,
    Quality,
    Rating,
    Staff,
)
from ivr.dialer import CallbackDialer
from ivr.runner import make_ami
from ivr.services.callbacks import Window, claim_due, create_callback
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
    await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": "12"})
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
