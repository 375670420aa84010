"""Ending a test's own simulated calls: a caller left waiting in a queue would hold the
next test's ``quiesce`` until its ``hold`` ran out."""

from __future__ import annotations

from ivr.ami import AMIClient
from ivr.simulate import EventRecorder, SimulatedCall, caller_channel


async def hang_up(ami: AMIClient, events: EventRecorder, *calls: SimulatedCall) -> None:
    """Hang up each caller's own channel (the rest of the call follows); a call already
    over is no error."""
    for call in calls:
        try:
            channel = caller_channel(events, call)
        except LookupError:
            continue  # never came up
        await ami.action({"Action": "Hangup", "Channel": channel}, check=False)


async def asterisk_idle(ami: AMIClient) -> bool:
    """No channel left in the test Asterisk (each xdist worker has its own)."""
    reply = await ami.action({"Action": "CoreShowChannels"})
    return not any(m.get("Event") == "CoreShowChannel" for m in reply)
