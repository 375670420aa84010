"""Call recording through the real Asterisk (issue 30): the caller hears the notice before
the queue; the operator's answer starts MixMonitor, the file holds both parties for the
talk time, and the store job compresses it and links it to the call and the leg."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr.ami import AMIClient
from ivr.db.models import Call, CallRecording, RecordingKind, RecordingStatus
from ivr.demo import seed_demo
from ivr.recordings import RecordingTracker, store_finished
from ivr.runner import make_ami
from ivr.services.kb import RECORDING_NOTICE, refresh_scripts
from ivr.settings import Settings
from ivr.simulate import EventRecorder, is_event, place_call, wait_until
from ivr.tracking import CallTracker

from .conftest import OPEN_TIME, Stack, start_stack

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MEMBER = "Local/1002@operator-sim/n"
NOTICE = "Разговор записывается."


@dataclass
class Recorded:
    stack: Stack
    tone: Path


@pytest.fixture(scope="session")
def tone(settings: Settings) -> Path:
    """1.5 s of 440 Hz where the test Asterisk plays prompts from."""
    path = settings.tts.recordings_dir / "test-tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
                    "synth", "1.5", "sine", "440", "vol", "0.5"], check=True)
    return path


@pytest_asyncio.fixture
async def recorded(settings: Settings, db_url: str, asterisk: object,
                   tone: Path) -> AsyncIterator[Recorded]:
    """The stack with the notice on, the call and recording trackers listening, and a
    1.5 s tone the simulated operator 1002 says on answering."""
    notice_on = settings.recording.model_copy(update={"notice": True})
    stack = await start_stack(settings.model_copy(update={"recording": notice_on}), db_url)
    await seed_demo(stack.settings, today=OPEN_TIME.date())
    await refresh_scripts(stack.services)
    stack.services.scripts[RECORDING_NOTICE] = NOTICE   # the knowledge base's script
    listener = make_ami(stack.settings)
    CallTracker(stack.services, listener)
    RecordingTracker(stack.services, listener)
    await listener.start()
    await listener.wait_connected(10)
    yield Recorded(stack, tone)
    await listener.close()
    await stack.agi.close()
    await stack.services.close()


def rms(path: Path) -> float:
    """sox stat's RMS amplitude: 0 for silence."""
    report = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True,
                            text=True, check=True).stderr
    line = next(x for x in report.splitlines() if x.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


@SQLITE
async def test_an_answered_call_is_recorded_and_linked_to_its_call_and_leg(
        recorded: Recorded, ami: AMIClient, events: EventRecorder) -> None:
    svc = recorded.stack.services
    await ami.action({"Action": "Setvar", "Variable": "OP_SAY_1002",
                      "Value": str(recorded.tone.with_suffix(""))})
    await ami.queue_add("hotline-services", MEMBER, "1002")
    try:
        # 2 → the notice → the queue → 1002 answers, says the tone; the caller hangs up
        # about 3.5 s after the answer.
        call = await place_call(ami, caller="79001234567", number="88001234567", dtmf="2",
                                hold=6)

        async def stored() -> CallRecording | None:
            await store_finished(svc)
            async with svc.sessions() as s:
                return await s.scalar(select(CallRecording).where(
                    CallRecording.linkedid == call.linkedid,
                    CallRecording.status == RecordingStatus.STORED))
        row = await wait_until(stored, 30, "the call's recording stored", interval=0.3)
    finally:
        await ami.queue_remove("hotline-services", MEMBER)
        await ami.action({"Action": "Setvar", "Variable": "OP_SAY_1002", "Value": ""})
    await svc.recorder.sync()
    async with svc.sessions() as s:
        found = await s.scalar(select(Call).options(selectinload(Call.legs)).where(
            Call.linkedid == call.linkedid))
    assert found is not None
    [leg] = found.legs
    assert (row.call_id, row.leg_id, row.kind, row.channel) == (
        found.id, leg.id, RecordingKind.QUEUE, leg.channel)
    kept = svc.settings.recording.directory / str(row.path)
    day = row.started_at.astimezone(svc.settings.organisation.tz)
    assert kept.parent == svc.settings.recording.directory / f"{day:%Y/%m/%d}"
    assert kept.suffix == ".ogg" and kept.stat().st_size == row.size_bytes > 0
    assert leg.answered_at is not None and leg.ended_at is not None
    talk = (leg.ended_at - leg.answered_at).total_seconds()
    assert row.duration_seconds is not None and abs(row.duration_seconds - talk) <= 1.0
    assert rms(kept) > 0.05, "the recording is silence"
    assert not list((svc.settings.recording.spool / "done").glob(f"*{call.linkedid}*"))
    # The caller heard the notice (the knowledge base's script) before the queue.
    notice = await svc.prompts.prepare(NOTICE, personal=False)
    played = [str(e["Command"]) for e in events.matching(
        lambda e: call.ours(e) and is_event("AGIExecStart")(e))]
    assert any(notice in command for command in played)
