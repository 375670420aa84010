"""A call through the real Asterisk 22: hotline-in → FastAGI flow → database (SQLite and
PostgreSQL), and the fallback context when a flow fails. R-H1, R-H10."""

from __future__ import annotations

from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import Call
from ivr.simulate import EventRecorder, is_event, place_call, wait_until

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
