"""Simulated calls through the real Asterisk, and waiting for what they cause.

A simulated call is ``Originate Local/<number>@hotline-in`` whose other half runs the
test-only ``caller-sim`` context: it waits, sends its DTMF script, stays on the line, hangs
up. The hotline half runs the real dialplan, our FastAGI flows and the real queues.
Used by the tests and by ``hotline call simulate``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from panoramisk.message import Message

from .ami import AMIClient

EventPredicate = Callable[[Message], bool]


class EventRecorder:
    """Keeps every AMI event seen, and lets a caller wait for one with a deadline."""

    def __init__(self, ami: AMIClient, limit: int = 50_000) -> None:
        self.events: list[Message] = []
        self.limit = limit
        self._changed = asyncio.Condition()
        ami.subscribe("*", self._on_event)

    async def _on_event(self, event: Message) -> None:
        self.events.append(event)
        if len(self.events) > self.limit:
            del self.events[: self.limit // 2]
        async with self._changed:
            self._changed.notify_all()

    def matching(self, predicate: EventPredicate) -> list[Message]:
        return [e for e in self.events if predicate(e)]

    async def wait_for(self, predicate: EventPredicate, timeout: float, what: str = "") -> Message:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no AMI event {what or predicate} within {timeout:g}s")
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    continue


async def wait_until(
    check: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll an async condition until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not true within {timeout:g}s")
        await asyncio.sleep(interval)


def is_event(name: str, **fields: str) -> EventPredicate:
    def predicate(event: Message) -> bool:
        if str(event.get("Event", "")).lower() != name.lower():
            return False
        return all(str(event.get(k, "")) == v for k, v in fields.items())
    return predicate


@dataclass
class SimulatedCall:
    linkedid: str
    caller: str
    number: str
    dtmf: str
    started: float = field(default_factory=time.monotonic)

    def ours(self, event: Message) -> bool:
        return str(event.get("Linkedid", "")) == self.linkedid


async def place_call(
    ami: AMIClient,
    *,
    caller: str,
    number: str,
    dtmf: str = "",
    delay: float = 1.0,
    hold: float = 5.0,
    context: str = "hotline-in",
) -> SimulatedCall:
    """Originate a simulated caller. ``dtmf`` is a SendDTMF string (``w`` = 0.5 s pause)
    sent ``delay`` seconds after the hotline answers; the caller then stays ``hold`` s."""
    channel_id = f"sim-{uuid.uuid4().hex[:16]}"
    await ami.originate(
        Channel=f"Local/{number}@{context}",
        Context="caller-sim",
        Exten="run",
        Priority="1",
        CallerID=f"Гражданин <{caller}>",
        ChannelId=channel_id,
        OtherChannelId=f"{channel_id}-h",
        Timeout="30000",
        Variable=[f"SIM_DTMF={dtmf}", f"SIM_DELAY={delay:g}", f"SIM_HOLD={hold:g}",
                  f"SIM_ID={channel_id}"],
    )
    # The first channel created (our ;1 half) gives the whole call its linkedid.
    return SimulatedCall(linkedid=channel_id, caller=caller, number=number, dtmf=dtmf)


async def press(ami: AMIClient, channel: str, digits: str, gap: float = 0.25) -> None:
    """Keys pressed by a simulated party: AMI PlayDTMF sends them out of ``channel`` (the
    simulation's half of a Local pair), so the other half receives them as keypresses."""
    for digit in digits:
        await ami.action({"Action": "PlayDTMF", "Channel": channel, "Digit": digit,
                          "Duration": "120"})
        await asyncio.sleep(gap)


def caller_channel(events: EventRecorder, call: SimulatedCall) -> str:
    """The simulated caller's own channel (the half that runs ``caller-sim``)."""
    for event in events.events:
        if is_event("Newchannel")(event) and event.get("Uniqueid") == call.linkedid:
            return str(event["Channel"])
    raise LookupError(f"no channel seen for call {call.linkedid}")
