"""Transfers through the real Asterisk and our gate (R-H4, R-H8): at most two per call, the
caller told, the colleague whispered to, the third refused with the caller kept on the line,
and the rating given to whoever spoke last.

Simulated operators are queue members ``Local/<ext>@operator-sim/n``; the test presses their
phone keys (``#1`` blind transfer, ``*2`` attended) and the caller's with AMI PlayDTMF.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from panoramisk.message import Message
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import (
    Call,
    Quality,
    Rating,
    RatingStatus,
    Staff,
    Transfer,
    TransferKind,
    TransferOutcome,
)
from ivr.runner import make_ami
from ivr.services.transfers import transfer_from_panel
from ivr.simulate import (
    EventRecorder,
    SimulatedCall,
    caller_channel,
    is_event,
    place_call,
    press,
    wait_until,
)
from ivr.tracking import CallTracker

from .conftest import Stack

OWNER = "79001234567"
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
QUEUE = "hotline-services"  # menu key 2


@pytest_asyncio.fixture
async def operators(ami: AMIClient) -> AsyncIterator[None]:
    """Operators who stay on the line until the test hangs them up (or the caller goes)."""
    await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": "90"})
    await ami.queue_add(QUEUE, "Local/1002@operator-sim/n", "1002")
    try:
        yield
    finally:
        await ami.queue_remove(QUEUE, "Local/1002@operator-sim/n")
        for name in ("OP_TALK", "OP_TALK_1003"):
            await ami.action({"Action": "Setvar", "Variable": name, "Value": ""})


async def _talking(events: EventRecorder, call: SimulatedCall, extension: str,
                   seen: set[str], timeout: float = 40) -> str:
    """The simulated operator's own channel once they answered (a new leg each time)."""
    def predicate(e: Message) -> bool:
        return (call.ours(e) and is_event("Newexten", Context="operator-sim", Exten=extension,
                                          Application="Wait")(e)
                and str(e.get("Channel")) not in seen)
    event = await events.wait_for(predicate, timeout, f"operator {extension} answers")
    own = str(event["Channel"])
    seen.add(own)
    # Keys pressed during the whisper would be lost: wait until the caller is put through.
    # (This call's bridge: after an Asterisk restart channel names come round again.)
    line = own[:-2] + ";1"
    await events.wait_for(lambda e: call.ours(e) and is_event("BridgeEnter", Channel=line)(e),
                          timeout, f"operator {extension} talking with the caller")
    return own


async def _blind(ami: AMIClient, operator: str, extension: str) -> None:
    await press(ami, operator, "#1")
    await asyncio.sleep(1.0)  # Asterisk's "transfer" prompt, then the number
    # "#" ends the number: Asterisk need not wait transferdigittimeout for more digits.
    await press(ami, operator, f"{extension}#")


async def _transfers(stack: Stack, linkedid: str) -> list[Transfer]:
    async with stack.services.sessions() as s:
        return list(await s.scalars(select(Transfer).join(Call).where(
            Call.linkedid == linkedid).order_by(Transfer.seq)))


async def _staff_ids(stack: Stack) -> dict[str, int]:
    async with stack.services.sessions() as s:
        rows = await s.execute(select(Staff.extension, Staff.id).where(
            Staff.extension.is_not(None)))
        return {str(ext): id_ for ext, id_ in rows}


def _played(call: SimulatedCall, path: str):  # type: ignore[no-untyped-def]
    """Our flow played ``path`` to the caller (AGI STREAM FILE)."""
    return lambda e: (call.ours(e) and is_event("AGIExecStart")(e)
                      and path in str(e.get("Command", "")))


def _whispered(call: SimulatedCall, path: str):  # type: ignore[no-untyped-def]
    """The dialplan played ``path`` on a colleague's channel before the caller joined."""
    return lambda e: (call.ours(e) and is_event("Newexten", Context="hotline-whisper",
                                                Application="Playback")(e)
                      and str(e.get("AppData", "")) == path)


async def _call_with_operator(
    ami: AMIClient, events: EventRecorder, hold: float = 150
) -> tuple[SimulatedCall, set[str], str]:
    """A caller (key 2) put through to operator 1002: the call, the operators' channels
    seen so far, and 1002's own channel."""
    call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="2", hold=hold)
    seen: set[str] = set()
    return call, seen, await _talking(events, call, "1002", seen)


async def _any_whisper(events: EventRecorder, call: SimulatedCall) -> Message:
    return await events.wait_for(lambda e: call.ours(e) and is_event(
        "Newexten", Context="hotline-whisper", Application="Playback")(e), 20, "whisper")


async def _rated(stack: Stack, ami: AMIClient, events: EventRecorder, call: SimulatedCall,
                 answer: str, quality: str) -> Rating:
    """The caller answers the two questions (R-H8) as they are asked; the stored rating."""
    prompts, caller = stack.services.prompts, caller_channel(events, call)
    await events.wait_for(_played(call, prompts.path("rating_answer")), 40, "first question")
    await press(ami, caller, answer)
    await events.wait_for(_played(call, prompts.path("rating_quality")), 20, "second question")
    await press(ami, caller, quality)

    async def rating() -> Rating | None:
        async with stack.services.sessions() as s:
            return await s.scalar(select(Rating).join(Call).where(
                Call.linkedid == call.linkedid))

    stored: Rating = await wait_until(rating, 30, "rating stored")
    await ami.action({"Action": "Hangup", "Channel": caller}, check=False)  # no farewell
    return stored


@SQLITE
async def test_two_blind_transfers_then_the_third_is_refused(
    seeded: Stack, ami: AMIClient, events: EventRecorder, operators: None
) -> None:
    prompts = seeded.services.prompts
    call, seen, first = await _call_with_operator(ami, events)

    # 1: 1002 → 1003. The caller hears «Соединяю» (transfer_connecting), 1003 the whisper
    # (the tests' short transfer_whisper, tests/conftest.py).
    await _blind(ami, first, "1003")
    await events.wait_for(_played(call, prompts.path("transfer_connecting")), 20,
                          "caller told of the transfer")
    whisper = await _any_whisper(events, call)
    spoken = prompts.cached("Тема: Государственные услуги. Переводит Петров С. И.")
    assert spoken is not None and str(whisper["AppData"]) == str(spoken.with_suffix(""))
    second = await _talking(events, call, "1003", seen)

    # 2: 1003 → 1001.
    await _blind(ami, second, "1001")
    third = await _talking(events, call, "1001", seen)

    # 3: 1001 → 1002 is refused: the caller is asked to stay, 1001 is rung back and hears
    # why before the caller is put through again.
    await _blind(ami, third, "1002")
    await events.wait_for(_played(call, prompts.path("transfer_hold")), 20, "caller held")
    await events.wait_for(_whispered(call, prompts.path("transfer_refused")), 20,
                          "operator told the transfer is refused")
    again = await _talking(events, call, "1001", seen)
    assert again != third
    bridged = await events.wait_for(
        lambda e: call.ours(e) and is_event("DialEnd", DialStatus="ANSWER")(e)
        and "1001@operator-sim" in str(e.get("DestChannel", ""))
        and str(e.get("DestChannel")).replace(";1", ";2") == again, 20,
        "the caller is with 1001 again")
    assert bridged

    staff = await _staff_ids(seeded)
    rows = await _transfers(seeded, call.linkedid)
    assert [(t.seq, t.kind, t.from_staff_id, t.to_staff_id, t.outcome) for t in rows] == [
        (1, TransferKind.BLIND, staff["1002"], staff["1003"], TransferOutcome.COMPLETED),
        (2, TransferKind.BLIND, staff["1003"], staff["1001"], TransferOutcome.COMPLETED),
        (3, TransferKind.BLIND, staff["1001"], staff["1002"], TransferOutcome.REFUSED),
    ]
    await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)})


@SQLITE
async def test_rating_after_a_blind_transfer_goes_to_the_colleague(
    seeded: Stack, ami: AMIClient, events: EventRecorder, operators: None
) -> None:
    # The colleague talks 9 s (the whisper included) and hangs up first.
    await ami.action({"Action": "Setvar", "Variable": "OP_TALK_1003", "Value": "9"})
    call, seen, first = await _call_with_operator(ami, events)
    await _blind(ami, first, "1003")
    await _talking(events, call, "1003", seen)

    stored = await _rated(seeded, ami, events, call, "1", "3")
    assert (stored.answer_received, stored.quality, stored.status) == (
        True, Quality.NOT_SATISFIED, RatingStatus.COMPLETE)
    assert stored.operator_id == (await _staff_ids(seeded))["1003"]


@SQLITE
async def test_attended_transfer_counts_when_completed(
    seeded: Stack, ami: AMIClient, events: EventRecorder, operators: None
) -> None:
    """*2: the operator consults the colleague (who hears the whisper) and hangs up to
    complete it; Asterisk's AttendedTransfer event makes it count. The caller rates the
    colleague after the colleague hangs up."""
    listener = make_ami(seeded.settings)
    CallTracker(seeded.services, listener)
    await listener.start()
    try:
        await listener.wait_connected(10)
        # Long enough for the whisper and the hand-over, then the rating.
        await ami.action({"Action": "Setvar", "Variable": "OP_TALK_1003", "Value": "12"})
        call, seen, first = await _call_with_operator(ami, events)
        await press(ami, first, "*2")
        await asyncio.sleep(1.0)
        await press(ami, first, "1003")
        await _talking(events, call, "1003", seen)
        await _any_whisper(events, call)
        await asyncio.sleep(1.0)
        await ami.action({"Action": "Hangup", "Channel": first})  # completes the transfer
        await events.wait_for(lambda e: is_event("AttendedTransfer", Result="Success")(e)
                              and e.get("OrigTransfererLinkedid") == call.linkedid, 20,
                              "Asterisk reports the transfer done")

        async def counted() -> list[Transfer]:
            rows = await _transfers(seeded, call.linkedid)
            return rows if rows and rows[-1].outcome == TransferOutcome.COMPLETED else []

        rows = await wait_until(counted, 10, "the transfer counts")
        staff = await _staff_ids(seeded)
        assert [(t.kind, t.from_staff_id, t.to_staff_id) for t in rows] == [
            (TransferKind.ATTENDED, staff["1002"], staff["1003"])]

        stored = await _rated(seeded, ami, events, call, "1", "1")
        assert (stored.quality, stored.operator_id) == (Quality.SATISFIED, staff["1003"])
    finally:
        await listener.close()


@SQLITE
async def test_transfer_from_the_panel_passes_the_gate_with_the_note(
    seeded: Stack, ami: AMIClient, events: EventRecorder, operators: None
) -> None:
    prompts = seeded.services.prompts
    call, seen, operator = await _call_with_operator(ami, events, hold=60)
    await transfer_from_panel(ami, operator[:-2] + ";1", "1003",
                              note="Гражданин уточняет  сроки выплаты")
    whisper = await _any_whisper(events, call)
    spoken = prompts.cached("Тема: Государственные услуги. Переводит Петров С. И. "
                            "Гражданин уточняет сроки выплаты")
    assert spoken is not None and str(whisper["AppData"]) == str(spoken.with_suffix(""))
    await _talking(events, call, "1003", seen)
    staff = await _staff_ids(seeded)
    rows = await _transfers(seeded, call.linkedid)
    assert [(t.kind, t.from_staff_id, t.to_staff_id, t.note, t.outcome) for t in rows] == [
        (TransferKind.BLIND, staff["1002"], staff["1003"], "Гражданин уточняет сроки выплаты",
         TransferOutcome.COMPLETED)]
    await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)})
