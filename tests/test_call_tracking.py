"""Call records from AMI events (issue 4): queue wait, the operator's leg and talk time, who
hung up, abandoned calls — through the real Asterisk, with the tracker on its own AMI link.
An event delivered twice changes nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from panoramisk.message import Message
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr.ami import AMIClient
from ivr.asterisk_dev import DevAsterisk
from ivr.db.models import Call, CallOutcome, Rating, RatingStatus, Staff
from ivr.runner import make_ami
from ivr.simulate import EventRecorder, SimulatedCall, is_event, place_call, wait_until
from ivr.tracking import CallTracker

from .conftest import Stack
from .support.calls import asterisk_idle
from .support.postgres import TestCluster

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
OWNER = "79001234567"
DATABASE_AWAY = 30.0  # seconds without the database (issue 4)


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


async def test_a_caller_who_hangs_up_first_ends_the_operators_leg_without_the_callers_ids(
    seeded: Stack, tracker: CallTracker
) -> None:
    # Asterisk 22 builds AgentComplete without the caller's fields (Linkedid, Channel) when
    # the caller's channel is gone first (seen in test_wrapup); the events as it sent them.
    linkedid, member = "gone-first-1", "Local/1002@operator-sim/n"
    start = time.time()
    seeded.services.recorder.arrival(linkedid, OWNER, "88001234567",
                                     datetime.fromtimestamp(start, UTC))
    common = {"Queue": "hotline-services", "Interface": member, "MemberName": "1002"}
    for event in (
        {"Event": "QueueCallerJoin", "Linkedid": linkedid, "CallerIDNum": OWNER,
         "Timestamp": f"{start + 1:.6f}", **common},
        {"Event": "AgentConnect", "Linkedid": linkedid, "Timestamp": f"{start + 3:.6f}",
         "DestChannel": "Local/1002@operator-sim-00000003;1", **common},
        {"Event": "AgentComplete", "Timestamp": f"{start + 7:.6f}", "Reason": "caller",
         "HoldTime": "2", "TalkTime": "4", **common},
    ):
        await tracker.handle(Message(event))
    await seeded.services.recorder.sync()
    async with seeded.services.sessions() as s:
        row = await s.scalar(select(Call).options(selectinload(Call.legs)).where(
            Call.linkedid == linkedid))
    assert row is not None and row.hangup_by == "caller"
    [leg] = row.legs
    assert (leg.ended_at, leg.talk_seconds) == (datetime.fromtimestamp(start + 7, UTC), 4)


@SQLITE
async def test_a_restart_mid_conversation_still_ends_the_operators_leg(seeded: Stack) -> None:
    """The tracker's member-to-call map is in memory: after a restart, an AgentComplete
    without the caller's fields finds the member's open leg in the records instead."""
    linkedid, member = "restart-mid-talk-1", "Local/1002@operator-sim/n"
    start = time.time()
    seeded.services.recorder.arrival(linkedid, OWNER, "88001234567",
                                     datetime.fromtimestamp(start, UTC))
    common = {"Queue": "hotline-services", "Interface": member, "MemberName": "1002"}
    before = CallTracker(seeded.services, make_ami(seeded.settings))
    for event in (
        {"Event": "QueueCallerJoin", "Linkedid": linkedid, "CallerIDNum": OWNER,
         "Timestamp": f"{start + 1:.6f}", **common},
        {"Event": "AgentConnect", "Linkedid": linkedid, "Timestamp": f"{start + 3:.6f}",
         "DestChannel": "Local/1002@operator-sim-00000005;1", **common},
    ):
        await before.handle(Message(event))
    await seeded.services.recorder.sync()

    after = CallTracker(seeded.services, make_ami(seeded.settings))  # the restarted service
    await after.handle(Message({"Event": "Hangup", "Linkedid": linkedid, "Uniqueid": linkedid,
                                "Timestamp": f"{start + 7:.6f}"}))
    await after.handle(Message({"Event": "AgentComplete", "Timestamp": f"{start + 7:.6f}",
                                "Reason": "caller", "HoldTime": "2", "TalkTime": "4",
                                **common}))
    # A member with no open leg, or an interface with no extension: nothing is recorded.
    for interface in ("Local/1003@operator-sim/n", "SIP/nobody"):
        await after.handle(Message({"Event": "AgentComplete", "Reason": "caller",
                                    "Timestamp": f"{start + 8:.6f}", "TalkTime": "9",
                                    "Queue": "hotline-services", "Interface": interface}))
    await seeded.services.recorder.sync()
    async with seeded.services.sessions() as s:
        row = await s.scalar(select(Call).options(selectinload(Call.legs)).where(
            Call.linkedid == linkedid))
    assert row is not None and (row.hangup_by, row.ended_at) == (
        "caller", datetime.fromtimestamp(start + 7, UTC))
    [leg] = row.legs
    assert (leg.ended_at, leg.talk_seconds) == (datetime.fromtimestamp(start + 7, UTC), 4)


@SQLITE
async def test_call_missed_by_a_stopped_listener_is_completed_from_asterisk_records(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """The listener goes away as the caller joins the queue; the operator's answer, the
    talk and the hang-up happen unseen. Reconnecting, the tracker finds the call gone from
    Asterisk and completes it from Asterisk's CDR (cdr_custom's hotline.csv)."""
    services = seeded.services
    member = "Local/1002@operator-sim/n"
    # Paused: the caller waits in the queue until the listener is gone.
    await ami.queue_add("hotline-services", member, "1002", paused=True)
    first = make_ami(seeded.settings)
    CallTracker(services, first)
    await first.start()
    try:
        await first.wait_connected(10)
        call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="2", hold=7)
        joined = await events.wait_for(
            lambda e: call.ours(e) and is_event("QueueCallerJoin")(e), 30, "queued")
        await wait_until(lambda: _queued(seeded, call), 10, "queue join recorded")
        await first.close()  # nobody listens from here on
        await ami.action({"Action": "QueuePause", "Interface": member, "Paused": "false"})
        hangup = await events.wait_for(lambda e: is_event("Hangup")(e)
                                       and e.get("Uniqueid") == call.linkedid, 40, "call over")
        connect = events.matching(lambda e: call.ours(e) and is_event("AgentConnect")(e))[0]
        assert (await _open(seeded, call)) is not None, "the call is still open in our records"

        second = make_ami(seeded.settings)
        tracker = CallTracker(services, second)
        await second.start()
        try:
            row = await wait_until(lambda: _ended(seeded, call), 30, "completed from the CDR")
        finally:
            await second.close()
    finally:
        await ami.queue_remove("hotline-services", member)
    async with services.sessions() as s:
        operator = await s.scalar(select(Staff.id).where(Staff.extension == "1002"))
    assert tracker.reconciled >= 1
    assert abs((row.ended_at - _at(hangup)).total_seconds()) <= 1.5
    assert (row.queue_joined_at, row.outcome, row.operator_id) == (
        _at(joined), CallOutcome.ANSWERED, operator)
    assert row.answered_at is not None
    assert abs((row.answered_at - _at(connect)).total_seconds()) <= 1.5
    [leg] = row.legs
    assert (leg.operator_id, leg.channel) == (operator, connect["DestChannel"])
    assert leg.ended_at is not None and 2 <= (leg.talk_seconds or 0) <= 5


async def _open(stack: Stack, call: SimulatedCall) -> Call | None:
    await stack.services.recorder.sync()
    async with stack.services.sessions() as s:
        return await s.scalar(select(Call).where(
            Call.linkedid == call.linkedid, Call.ended_at.is_(None)))


async def _queued(stack: Stack, call: SimulatedCall) -> Call | None:
    await stack.services.recorder.sync()
    async with stack.services.sessions() as s:
        return await s.scalar(select(Call).where(
            Call.linkedid == call.linkedid, Call.queue_joined_at.is_not(None)))


@SQLITE
async def test_asterisk_restart_mid_calls_leaves_every_call_closed_once(
    seeded: Stack, ami: AMIClient, events: EventRecorder, asterisk: DevAsterisk
) -> None:
    """Three callers wait in a queue nobody answers; Asterisk is restarted under them.
    Afterwards each call is in the database once, closed, abandoned; the tracker is back."""
    settings = seeded.settings
    listener = AMIClient(settings.ami.host, settings.ami.port, settings.ami.username,
                         settings.ami.secret, ping_interval=1, reconnect_min_delay=0.2,
                         reconnect_max_delay=1)
    CallTracker(seeded.services, listener)
    await listener.start()
    try:
        await listener.wait_connected(10)
        calls = [await place_call(ami, caller=f"7900222000{n}", number="88001234567",
                                  dtmf="6", hold=90) for n in range(3)]
        for call in calls:
            await events.wait_for(lambda e, c=call: c.ours(e) and is_event(
                "QueueCallerJoin")(e), 30, "queued")
            await wait_until(lambda c=call: _queued(seeded, c), 10, "join recorded")
        await asyncio.to_thread(asterisk.down)
        await asyncio.to_thread(asterisk.up)

        async def reconnected() -> bool:
            return listener.connections >= 2 and listener.connected.is_set()

        await wait_until(reconnected, 30, "the tracker's AMI link is back")

        async def all_closed() -> bool:
            return all([await _ended(seeded, c) for c in calls])

        await wait_until(all_closed, 30, "every call closed after the restart")
    finally:
        await listener.close()
    # Asterisk hangs its channels up as it stops, and says so: the listener saw the
    # hang-ups, or (had it been away) the reconnection's reconciliation closes them.
    async with seeded.services.sessions() as s:
        rows = list(await s.scalars(select(Call).where(
            Call.linkedid.in_([c.linkedid for c in calls]))))
    assert len(rows) == 3, "each call exactly once"
    assert {r.outcome for r in rows} == {CallOutcome.ABANDONED}
    assert all(r.ended_at is not None and r.answered_at is None for r in rows)


async def _burst(ami: AMIClient, prefix: str) -> list[SimulatedCall]:
    """Eight callers a second apart: some talk with operator 1002 (key 2), some give up in
    a queue nobody serves (key 6)."""
    calls = []
    for n in range(8):
        calls.append(await place_call(ami, caller=f"{prefix}{n:04d}", number="88001234567",
                                      dtmf="26"[n % 2], hold=6 + n % 3))
        await asyncio.sleep(1)
    return calls


async def _each_once_and_closed(stack: Stack, calls: list[SimulatedCall]) -> list[Call]:
    await stack.services.recorder.sync()
    async with stack.services.sessions() as s:
        rows = list(await s.scalars(select(Call).where(
            Call.linkedid.in_([c.linkedid for c in calls]))))
    return rows if len(rows) == len(calls) and all(r.ended_at for r in rows) else []


@SQLITE
async def test_listener_away_during_a_burst_loses_no_call(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """The listener is stopped while a burst of calls comes, is answered, abandoned and
    ends, then started again (issue 4)."""
    await ami.queue_add("hotline-services", "Local/1002@operator-sim/n", "1002")
    listener = make_ami(seeded.settings)
    CallTracker(seeded.services, listener)
    await listener.start()
    await listener.wait_connected(10)
    await listener.close()
    try:
        calls = await _burst(ami, "7900333")
        # No listener until the burst and its longest call are over: every call begins and
        # ends unheard, and only reconciliation can record it (issue 4).
        await wait_until(lambda: asterisk_idle(ami), 60, "the burst's calls over")
        again = make_ami(seeded.settings)
        tracker = CallTracker(seeded.services, again)
        await again.start()
        try:
            rows = await wait_until(lambda: _each_once_and_closed(seeded, calls), 30,
                                    "every call of the burst closed")
        finally:
            await again.close()
    finally:
        await ami.queue_remove("hotline-services", "Local/1002@operator-sim/n")
    assert tracker.reconciled == len(calls)
    # What Asterisk itself said (the test's own AMI link heard it all): an operator
    # answered, or the caller gave up (one operator, wrap-up time: not every key-2 caller).
    by_key = {r.linkedid: r for r in rows}
    outcomes = []
    for call in calls:
        connected = events.matching(lambda e, c=call: c.ours(e) and is_event("AgentConnect")(e))
        expected = CallOutcome.ANSWERED if connected else CallOutcome.ABANDONED
        assert by_key[call.linkedid].outcome == expected, call.linkedid
        outcomes.append(expected)
    assert set(outcomes) == {CallOutcome.ANSWERED, CallOutcome.ABANDONED}


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
async def test_database_away_during_a_burst_loses_no_call(
    seeded: Stack, ami: AMIClient, events: EventRecorder, pg_cluster: TestCluster
) -> None:
    """PostgreSQL stops for 30 s (issue 4) while the tracker records a burst: the facts
    wait in the spool and are replayed in order; afterwards every call is there once,
    closed."""
    await ami.queue_add("hotline-services", "Local/1002@operator-sim/n", "1002")
    listener = make_ami(seeded.settings)
    CallTracker(seeded.services, listener)
    await listener.start()
    try:
        await listener.wait_connected(10)
        await asyncio.to_thread(pg_cluster.pause)
        stopped = time.monotonic()
        try:
            calls = await _burst(ami, "7900444")
            await asyncio.sleep(DATABASE_AWAY - (time.monotonic() - stopped))
        finally:
            await asyncio.to_thread(pg_cluster.resume)
        rows = await wait_until(lambda: _each_once_and_closed(seeded, calls), 60,
                                "every call of the burst in the database")
    finally:
        await listener.close()
        await ami.queue_remove("hotline-services", "Local/1002@operator-sim/n")
    assert seeded.services.recorder.stats["spooled"] > 0, "the database really was away"
    assert {r.outcome for r in rows} == {CallOutcome.ANSWERED, CallOutcome.ABANDONED}
    # The callers whose operator hung up first were asked for a rating while the database
    # was away and pressed nothing: each of those surveys is still there, as "no answer"
    # (R-H8). A caller whose hold ran out just as the operator answered hung up first: no
    # survey, and who hung up is recorded all the same.
    answered = [r for r in rows if r.outcome == CallOutcome.ANSWERED]
    surveyed = [r.id for r in answered if r.hangup_by == "operator"]
    assert surveyed and all(r.hangup_by in ("operator", "caller") for r in answered)
    async with seeded.services.sessions() as s:
        ratings = list(await s.scalars(select(Rating).where(
            Rating.call_id.in_([r.id for r in answered]))))
    assert sorted(r.call_id for r in ratings) == sorted(surveyed)
    assert {r.status for r in ratings} == {RatingStatus.NO_ANSWER}
