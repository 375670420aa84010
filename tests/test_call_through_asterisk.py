"""A call through the real Asterisk 22: hotline-in → FastAGI flow → database (SQLite and
PostgreSQL), and the fallback context when a flow fails. R-H1, R-H10."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import Call
from ivr.runner import make_ami
from ivr.simulate import EventRecorder, is_event, place_call, wait_until
from ivr.tracking import CallTracker

from .conftest import Stack


async def _call_row(stack: Stack, linkedid: str) -> Call | None:
    async with stack.services.sessions() as session:
        return await session.scalar(
            select(Call).where(Call.linkedid == linkedid, Call.topic.is_not(None)))


async def test_menu_key_reaches_flow_and_is_stored(
    stack: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    # The key is pressed one second in, while the greeting still plays: typed-ahead input.
    call = await place_call(ami, caller="+7 (900) 123-45-67", number="88001234567",
                            dtmf="2", delay=1, hold=4)
    row = await wait_until(lambda: _call_row(stack, call.linkedid), 30, "call stored")
    assert row.topic == "state_services"
    assert row.ivr_path == "2"
    assert row.queue == "hotline-services"
    assert row.caller_number == "79001234567"
    assert row.dialed_number == "88001234567"
    assert row.started_at.tzinfo is not None

    joined = await events.wait_for(
        lambda e: call.ours(e) and is_event("QueueCallerJoin", Queue="hotline-services")(e),
        15, "caller joins the topic queue")
    assert joined["Queue"] == "hotline-services"
    # The flow finished properly: the server set the flag the dialplan checks.
    assert events.matching(lambda e: call.ours(e) and is_event(
        "VarSet", Variable="HOTLINE_FLOW_OK", Value="1")(e))


async def test_second_published_number_reaches_the_same_service(
    stack: Stack, ami: AMIClient
) -> None:
    call = await place_call(ami, caller="79007654321", number="4951234567", dtmf="6",
                            delay=1, hold=3)
    row = await wait_until(lambda: _call_row(stack, call.linkedid), 30, "call stored")
    assert (row.dialed_number, row.topic, row.queue) == (
        "4951234567", "inspections", "hotline-inspections")


async def test_flow_that_raises_sends_caller_to_fallback(
    stack: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    call = await place_call(ami, caller="79001110000", number="boom", context="agi-test",
                            hold=3)
    failed = await events.wait_for(
        lambda e: call.ours(e) and is_event("UserEvent", UserEvent="HotlineAgiFail")(e),
        20, "fallback context reached")
    assert failed["AgiStatus"] == "SUCCESS"  # the server answered, then the flow failed
    await events.wait_for(
        lambda e: call.ours(e) and is_event("QueueCallerJoin", Queue="hotline-general")(e),
        15, "caller reaches the general queue")
    assert not events.matching(
        lambda e: call.ours(e) and is_event("UserEvent", UserEvent="AgiTestPassed")(e))
    assert stack.agi.stats["flow_errors"] >= 1


async def test_tracker_records_the_end_of_the_call_from_ami(
    stack: Stack, ami: AMIClient
) -> None:
    """The AMI listener closes the call record when the caller's channel hangs up."""
    listener = make_ami(stack.settings)
    CallTracker(stack.services, listener)
    await listener.start()
    try:
        await listener.wait_connected(10)
        call = await place_call(ami, caller="79003330001", number="88001234567", dtmf="2",
                                delay=1, hold=2)

        async def ended() -> Call | None:
            async with stack.services.sessions() as session:
                return await session.scalar(select(Call).where(
                    Call.linkedid == call.linkedid, Call.ended_at.is_not(None)))

        row = await wait_until(ended, 30, "ended_at recorded")
        # Asterisk's own event time (the flows' clock is pinned in tests; Asterisk's is not).
        assert abs(row.ended_at - datetime.now(UTC)) < timedelta(minutes=1)
    finally:
        await listener.close()
