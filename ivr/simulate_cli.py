"""``hotline call simulate``: place one simulated call and print what happened to it."""

from __future__ import annotations

from panoramisk.message import Message
from sqlalchemy import select

from .ami import AMIError
from .db.models import Call
from .runner import make_ami
from .services.container import Services
from .settings import Settings
from .simulate import EventRecorder, place_call


def describe(event: Message) -> str | None:
    """One line for the events a person wants to see, None for the rest."""
    name = str(event.get("Event", ""))
    if name == "Newexten" and event.get("Application") in ("AGI", "Queue", "Playback", "Goto"):
        return f"{event.get('Context')}: {event.get('Application')}({event.get('AppData')})"
    if name == "VarSet" and str(event.get("Variable", "")).startswith("HOTLINE_"):
        return f"set {event.get('Variable')}={event.get('Value') or ''}"
    if name == "QueueCallerJoin":
        return f"joined queue {event.get('Queue')} at position {event.get('Position')}"
    if name in ("QueueCallerLeave", "QueueCallerAbandon"):
        return f"left queue {event.get('Queue')} ({name})"
    if name == "UserEvent" and not str(event.get("UserEvent", "")).startswith("Sim"):
        return f"event {event.get('UserEvent')}"
    if name == "Hangup":
        return f"hangup {event.get('Channel')} ({event.get('Cause-txt')})"
    return None


async def simulate(settings: Settings, *, caller: str, number: str | None, dtmf: str,
                   delay: float, hold: float, timeout: float) -> int:
    number = number or settings.organisation.hotline_numbers[0]
    # The test AMI user (loaded with the test contexts, which simulation needs anyway) hears
    # every event; the service's own user gets only the few it uses.
    ami = make_ami(settings.model_copy(update={"ami": settings.ami.model_copy(
        update={"username": "hotline-test"})}))
    recorder = EventRecorder(ami)
    await ami.start()
    services = Services.create(settings)
    try:
        try:
            await ami.wait_connected(10)
            call = await place_call(ami, caller=caller, number=number, dtmf=dtmf,
                                    delay=delay, hold=hold)
        except AMIError as exc:
            print(f"hotline call simulate: {exc} (is `hotline asterisk up` running, with "
                  "asterisk.load_test_contexts = true?)")
            return 1
        print(f"call {call.linkedid}: {caller} → {number}, keys {dtmf or '(none)'}")
        try:
            await recorder.wait_for(
                lambda e: call.ours(e) and e.get("Event") == "Hangup"
                and e.get("Uniqueid") == call.linkedid, timeout, "caller hangs up")
        except TimeoutError:
            print(f"  (still going after {timeout:g}s)")
        ours = recorder.matching(call.ours)
        t0 = float(ours[0].get("Timestamp", 0)) if ours else 0.0
        for event in ours:
            line = describe(event)
            if line:
                print(f"  +{float(event.get('Timestamp', t0)) - t0:6.2f}s  {line}")
        async with services.sessions() as session:
            row = await session.scalar(select(Call).where(Call.linkedid == call.linkedid))
        if row is None:
            print("database: no call record (is `hotline serve` running?)")
            return 1
        print(f"database: call #{row.id} caller {row.caller_number} dialled "
              f"{row.dialed_number} path '{row.ivr_path}' topic {row.topic} queue {row.queue}")
        return 0
    finally:
        await ami.close()
        await services.close()
