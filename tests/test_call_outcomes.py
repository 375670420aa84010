"""Every call that ended has a final outcome (issue 27): a caller who hangs up in the IVR is
self-served once the IVR told them what they chose, else left in the IVR at a named step —
through the real Asterisk, callers hung up from the test (AMI Hangup) as a step's prompt
starts. The supervisor's figures (R-H2) count them apart from the queue's abandons."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from ivr.ami import AMIClient
from ivr.db.models import Call, CallOutcome, IvrStep
from ivr.reconcile import finish_ended
from ivr.recorder import Abandoned, LegAnswered, QueueJoined
from ivr.runner import make_ami
from ivr.services.kpi import call_kpis
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

from .conftest import OPEN_TIME, Stack

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
OWNER = "79001234567"
HOTLINE = "88001234567"


@pytest_asyncio.fixture
async def tracker(seeded: Stack) -> AsyncIterator[CallTracker]:
    listener = make_ami(seeded.settings)
    tracker = CallTracker(seeded.services, listener)
    await listener.start()
    await listener.wait_connected(10)
    yield tracker
    await listener.close()


def _files(events: EventRecorder, call: SimulatedCall) -> list[str]:
    """The files the call played (STREAM FILE, GET DATA), in order."""
    return [str(e["Command"]).split()[2].strip('"') for e in events.matching(
        lambda e: call.ours(e) and is_event("AGIExecStart")(e))
        if str(e.get("Command", "")).startswith(("STREAM FILE", "GET DATA"))]


def _after(files: list[str], prompt: str) -> list[str]:
    return files[files.index(prompt) + 1:] if prompt in files else []


async def _hang_up_when(ami: AMIClient, events: EventRecorder, call: SimulatedCall,
                        playing: Callable[[list[str]], bool], what: str) -> None:
    async def started() -> bool:
        return playing(_files(events, call))

    await wait_until(started, 40, what)
    await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)},
                     check=False)


async def _final(stack: Stack, linkedid: str) -> Call | None:
    await stack.services.recorder.sync()
    async with stack.services.sessions() as s:
        row = await s.scalar(select(Call).where(Call.linkedid == linkedid))
    if row is None or row.ended_at is None or row.outcome == CallOutcome.IN_PROGRESS:
        return None
    return row


async def _press_at_menu(ami: AMIClient, events: EventRecorder, call: SimulatedCall,
                         menu: str, key: str) -> None:
    async def asked() -> bool:
        return menu in _files(events, call)

    await wait_until(asked, 40, "menu asked")
    await press(ami, caller_channel(events, call), key)


# step: (key pressed at the menu, the prompt that starts the step, outcome expected)
STEPS = {
    IvrStep.GREETING: ("", lambda p, files: bool(files), CallOutcome.IVR_ABANDONED),
    IvrStep.MENU: ("", lambda p, files: p.path("menu") in files, CallOutcome.IVR_ABANDONED),
    IvrStep.HOURS: ("1", lambda p, files: bool(_after(files, p.path("menu"))),
                    CallOutcome.SELF_SERVICE),
    IvrStep.APPEAL_STATUS: ("4", lambda p, files: p.path("appeal_enter") in files,
                            CallOutcome.IVR_ABANDONED),
    IvrStep.RECEPTION: ("5", lambda p, files: p.path("reception_enter") in files,
                        CallOutcome.IVR_ABANDONED),
}


@SQLITE
@pytest.mark.parametrize("step", list(STEPS))
async def test_caller_hanging_up_at_each_ivr_step_ends_with_its_outcome(
    seeded: Stack, tracker: CallTracker, ami: AMIClient, events: EventRecorder,
    step: IvrStep,
) -> None:
    """Hung up as the step's prompt starts: the hours are self-service (the information
    was being told, R-H1); the greeting, the menu and the number prompts of the appeal
    status (R-A6) and the reception (R-P4) are an IVR abandon at that step."""
    key, playing, outcome = STEPS[step]
    prompts = seeded.services.prompts
    call = await place_call(ami, caller=OWNER, number=HOTLINE, hold=60)
    if key:
        await _press_at_menu(ami, events, call, prompts.path("menu"), key)
    await _hang_up_when(ami, events, call, lambda files: playing(prompts, files), step)
    row = await wait_until(lambda: _final(seeded, call.linkedid), 20, "outcome recorded")
    assert (row.outcome, row.ivr_step, row.queue_joined_at) == (outcome, step, None)
    assert row.self_served is (outcome == CallOutcome.SELF_SERVICE)
    assert not events.matching(lambda e: call.ours(e) and is_event("QueueCallerJoin")(e))


BURST = 100
# What a burst caller presses at the menu: nothing, the hours, the appeal status, reception.
BURST_KEYS = ("", "", "1", "4", "5")


async def _burst_caller(ami: AMIClient, events: EventRecorder, n: int,
                        rng: random.Random) -> SimulatedCall:
    key = rng.choice(BURST_KEYS)
    call = await place_call(ami, caller=f"7900444{n:04d}", number=HOTLINE,
                            dtmf=key, delay=rng.uniform(0.5, 3.0), hold=60)
    await asyncio.sleep(rng.uniform(0.2, 8.0))  # a random moment: a random step

    async def seen() -> bool:
        return any(is_event("Newchannel")(e) and e.get("Uniqueid") == call.linkedid
                   for e in events.events)

    await wait_until(seen, 20, "caller's channel")
    await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)},
                     check=False)
    return call


async def _all_final(stack: Stack, calls: list[SimulatedCall]) -> list[Call]:
    await stack.services.recorder.sync()
    async with stack.services.sessions() as s:
        rows = list(await s.scalars(select(Call).where(
            Call.linkedid.in_([c.linkedid for c in calls]))))
    finished = [r for r in rows if r.ended_at and r.outcome != CallOutcome.IN_PROGRESS]
    return rows if len(finished) == len(calls) else []


@SQLITE
async def test_a_burst_of_callers_hung_up_at_random_steps_leaves_none_in_progress(
    seeded: Stack, tracker: CallTracker, ami: AMIClient, events: EventRecorder
) -> None:
    """Issue 27: a hundred callers hung up at random moments of the IVR all end with a
    final outcome; self-service exactly where the information was being told."""
    rng = random.Random(27)
    calls = await asyncio.gather(*(_burst_caller(ami, events, n, rng) for n in range(BURST)))
    rows = await wait_until(lambda: _all_final(seeded, list(calls)), 60, "every call final")
    assert {r.outcome for r in rows} <= {CallOutcome.SELF_SERVICE, CallOutcome.IVR_ABANDONED}
    for row in rows:
        assert (row.outcome == CallOutcome.SELF_SERVICE) is row.self_served, row.linkedid
        assert row.ivr_step in set(IvrStep), row.linkedid
    assert len({r.outcome for r in rows}) == 2, "both kinds of end occurred"


async def test_reconciliation_sweeps_ended_calls_left_in_progress(stack: Stack) -> None:
    """Calls whose end was recorded without an outcome (an earlier version, a lost fact)
    get theirs from what the records show; calls still going keep "in progress"."""
    recorder = stack.services.recorder
    at = OPEN_TIME
    for linkedid, step, delivered in (("sw-menu", IvrStep.MENU, False),
                                      ("sw-hours", IvrStep.HOURS, True),
                                      ("sw-live", IvrStep.MENU, False)):
        recorder.arrival(linkedid, OWNER, HOTLINE, at)
        recorder.step(linkedid, step, delivered=delivered)
    await recorder.sync()
    async with stack.services.sessions() as s, s.begin():
        await s.execute(update(Call).where(Call.linkedid.in_(["sw-menu", "sw-hours"]))
                        .values(ended_at=at + timedelta(seconds=30)))
    assert await finish_ended(stack.services) == 2
    async with stack.services.sessions() as s:
        outcomes = dict((await s.execute(select(Call.linkedid, Call.outcome))).tuples().all())
    assert outcomes == {"sw-menu": CallOutcome.IVR_ABANDONED,
                        "sw-hours": CallOutcome.SELF_SERVICE,
                        "sw-live": CallOutcome.IN_PROGRESS}


async def test_a_step_reported_after_the_end_still_counts_the_information(
    stack: Stack,
) -> None:
    """The IVR and the AMI tracker write from different processes: the tracker's end may
    come first; the IVR's later "information told" still makes the call self-served."""
    recorder = stack.services.recorder
    recorder.arrival("late-1", OWNER, HOTLINE, OPEN_TIME)
    recorder.step("late-1", IvrStep.MENU)
    recorder.ended("late-1", OPEN_TIME + timedelta(seconds=9))
    row = await _final(stack, "late-1")
    assert row is not None and row.outcome == CallOutcome.IVR_ABANDONED
    recorder.step("late-1", IvrStep.HOURS, delivered=True)
    row = await _final(stack, "late-1")
    assert row is not None and (row.outcome, row.ivr_step) == (
        CallOutcome.SELF_SERVICE, IvrStep.HOURS)


async def test_the_queue_knows_better_than_an_ivr_hang_up(stack: Stack) -> None:
    """The IVR also sees a hang-up when the AGI watchdog cut a stalled step short and the
    caller went on through agi-fail to an operator: the queue's answer (or the caller's
    abandon there) replaces "left in the IVR"."""
    recorder = stack.services.recorder
    for linkedid in ("wd-answered", "wd-abandoned"):
        recorder.arrival(linkedid, OWNER, HOTLINE, OPEN_TIME)
        recorder.step(linkedid, IvrStep.MENU)
        recorder.ended(linkedid, OPEN_TIME + timedelta(seconds=5))
    await recorder.sync()
    later = OPEN_TIME + timedelta(seconds=20)
    recorder.put(QueueJoined("wd-answered", "hotline-general", later))
    recorder.put(LegAnswered("wd-answered", "Local/1002@operator-sim-1;1", "1002", later))
    recorder.put(QueueJoined("wd-abandoned", "hotline-general", later))
    recorder.put(Abandoned("wd-abandoned", later + timedelta(seconds=30)))
    rows = [await _final(stack, linkedid) for linkedid in ("wd-answered", "wd-abandoned")]
    assert [row.outcome if row else None for row in rows] == [
        CallOutcome.ANSWERED, CallOutcome.ABANDONED]


async def test_figures_count_self_service_and_ivr_abandons_apart_from_the_queue(
    stack: Stack,
) -> None:
    """R-H2: the supervisor's self-service share and the abandons in the IVR and in the
    queue are separate figures."""
    recorder = stack.services.recorder
    at = OPEN_TIME
    for linkedid, delivered in (("k-1", True), ("k-2", True), ("k-3", False)):
        recorder.arrival(linkedid, OWNER, HOTLINE, at)
        recorder.step(linkedid, IvrStep.HOURS if delivered else IvrStep.MENU,
                      delivered=delivered)
        recorder.ended(linkedid, at + timedelta(seconds=20))
    recorder.arrival("k-4", OWNER, HOTLINE, at)
    recorder.put(QueueJoined("k-4", "hotline-general", at))
    recorder.ended("k-4", at + timedelta(seconds=40))
    await recorder.sync()
    async with stack.services.sessions() as s:
        k = await call_kpis(s, at - timedelta(hours=1), at + timedelta(hours=1), 20)
    assert (k.calls, k.self_service, k.abandoned_in_ivr, k.offered, k.abandoned,
            k.answered) == (4, 2, 1, 1, 1, 0)
    assert k.self_service_share == pytest.approx(0.5)
    assert k.answered_share == 0.0
