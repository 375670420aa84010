"""Proof that an attack reached Asterisk or not: the AMI event stream and its channels.

An injected action would run before anything the test sends afterwards, so a sentinel event
(a paused queue member added and removed) caught after the attempt bounds the stream: every
event the attempt could have caused is already recorded. A synchronous ``Originate`` (the
payload's) reports its channels before its reply.
"""

from __future__ import annotations

import uuid

from panoramisk.message import Message

from ivr.ami import AMIClient
from ivr.simulate import EventPredicate, EventRecorder, is_event

SENTINEL_QUEUE = "hotline-general"


def marker() -> str:
    """A number no test dials: its appearance anywhere is the attack's trace."""
    return "5550" + str(uuid.uuid4().int)[:8]


def originate_payload(number: str) -> str:
    """A header value ending its line and the action, then a whole ``Originate`` of a
    simulated citizen (who answers at once): what a forged pause reason looked like."""
    return (f"перерыв\r\n\r\nAction: Originate\r\nChannel: Local/{number}@citizen-sim/n\r\n"
            "Application: Wait\r\nData: 5\r\n")


async def sentinel(ami: AMIClient, events: EventRecorder) -> None:
    """Every event sent before this call is in ``events`` once it returns."""
    interface = f"Local/sentinel-{uuid.uuid4().hex[:12]}@hotline-end/n"
    await ami.queue_add(SENTINEL_QUEUE, interface, "sentinel", paused=True)
    await ami.queue_remove(SENTINEL_QUEUE, interface)
    await events.wait_for(lambda e: is_event("QueueMemberRemoved", Interface=interface)(e),
                          10, "the sentinel's removal")


def seen_before(events: EventRecorder) -> EventPredicate:
    """True for the events recorded so far: ``not before(e)`` picks what comes next (the
    recorder keeps the whole session's events, other tests' calls included)."""
    old = {id(e) for e in events.events}
    return lambda e: id(e) in old


def _mentions(event: Message, number: str) -> bool:
    return any(number in str(value) for value in event.values())


async def assert_no_trace(ami: AMIClient, events: EventRecorder, number: str,
                          before: EventPredicate = lambda e: False) -> None:
    """No channel, no ``Newchannel`` / ``OriginateResponse``, no event at all (but those
    ``before`` the attempt) names ``number``: the injected action never ran."""
    await sentinel(ami, events)
    assert not events.matching(lambda e: not before(e) and _mentions(e, number)), \
        "an action naming the number ran"
    reply = await ami.action({"Action": "CoreShowChannels"})
    channels = [str(m.get("Channel")) for m in reply if m.get("Event") == "CoreShowChannel"]
    assert not [c for c in channels if number in c], channels
