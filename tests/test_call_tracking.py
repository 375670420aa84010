"""Call records from AMI events (issue 4): queue wait, the operator's leg and talk time, who
hung up, abandoned calls — through the real Asterisk, with the tracker on its own AMI link.
An event delivered twice changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr.ami import AMIClient
from ivr.db.models import Call, CallOutcome, Staff
from ivr.runner import make_ami
from ivr.simulate import EventRecorder, SimulatedCall, is_event, place_call, wait_until
from ivr.tracking import CallTracker

from .conftest import Stack

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
OWNER = "79001234567"


@pytest_asyncio.fixture
async def tracker(seeded: Stack) -> AsyncIterator[CallTracker]:
    listener = make_ami(seeded.settings)
    tracker = CallTracker(seeded.services, listener)
    await listener.start()
    await listener.wait_connected(10)
    yield tracker
    await listener.close()


def _at(event: Message) -> datetime:
    return datetime.fromtimestamp(float(event["Timestamp"]), UTC)


async def _ended(stack: Stack, call: SimulatedCall) -> Call | None:
    await stack.services.recorder.sync()
    async with stack.services.sessions() as s:
        return await s.scalar(select(Call).options(selectinload(Call.legs)).where(
            Call.linkedid == call.linkedid, Call.ended_at.is_not(None)))


async def test_answered_call_is_recorded_with_its_times_and_operator(
    seeded: Stack, tracker: CallTracker, ami: AMIClient, events: EventRecorder
) -> None:
    await ami.queue_add("hotline-services", "Local/1002@operator-sim/n", "1002")
    try:
        # 2 → queue → 1002 answers, talks 3 s and hangs up; the caller skips the rating.
        call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="2", hold=6)
        row = await wait_until(lambda: _ended(seeded, call), 60, "call ended and recorded")
    finally:
        await ami.queue_remove("hotline-services", "Local/1002@operator-sim/n")
    joined = events.matching(lambda e: call.ours(e) and is_event("QueueCallerJoin")(e))[0]
    connect = events.matching(lambda e: call.ours(e) and is_event("AgentConnect")(e))[0]
    complete = events.matching(lambda e: call.ours(e) and is_event("AgentComplete")(e))[0]
    async with seeded.services.sessions() as s:
        operator = await s.scalar(select(Staff.id).where(Staff.extension == "1002"))

    assert (row.queue, row.queue_joined_at, row.answered_at) == (
        "hotline-services", _at(joined), _at(connect))
    assert row.wait_seconds == round((_at(connect) - _at(joined)).total_seconds())
    assert (row.outcome, row.operator_id, row.hangup_by) == (
        CallOutcome.ANSWERED, operator, "operator")
    [leg] = row.legs
    assert (leg.operator_id, leg.channel, leg.answered_at, leg.ended_at) == (
        operator, connect["DestChannel"], _at(connect), _at(complete))
    assert leg.talk_seconds == int(complete["TalkTime"]) and 2 <= leg.talk_seconds <= 5

    # The same events again (a reconnect replaying what was seen): nothing changes.
    before = (row.queue_joined_at, row.answered_at, row.wait_seconds, row.hangup_by,
              row.ended_at, [(x.channel, x.answered_at, x.ended_at) for x in row.legs])
    for event in events.matching(call.ours):
        await tracker.handle(event)
    again = await _ended(seeded, call)
    assert again is not None
    assert before == (again.queue_joined_at, again.answered_at, again.wait_seconds,
                      again.hangup_by, again.ended_at,
                      [(x.channel, x.answered_at, x.ended_at) for x in again.legs])


@SQLITE
async def test_caller_hanging_up_in_the_queue_is_an_abandoned_call(
    seeded: Stack, tracker: CallTracker, ami: AMIClient, events: EventRecorder
) -> None:
    # 6 → the inspections queue, where nobody answers; the caller gives up after ~5 s.
    call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="6", hold=7)
    row = await wait_until(lambda: _ended(seeded, call), 60, "call ended and recorded")
    joined = events.matching(lambda e: call.ours(e) and is_event("QueueCallerJoin")(e))[0]
    assert (row.outcome, row.hangup_by, row.answered_at, row.legs) == (
        CallOutcome.ABANDONED, "caller", None, [])
    assert row.queue_joined_at == _at(joined)
    assert row.wait_seconds == round((row.queue_left_at - row.queue_joined_at).total_seconds())
    assert 2 <= row.wait_seconds <= 8
