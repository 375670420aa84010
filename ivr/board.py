"""The live wallboard's state (issue 30), kept from the AMI stream: callers waiting in each
queue, operators by state with the moment it began, calls in the IVR.

Asterisk is asked once per (re)connection (``QueueStatus``, ``CoreShowChannels``); after
that every change comes as an event, handled in one subscription table. Whoever shows the
board waits on :meth:`LiveBoard.changed` and reads :meth:`LiveBoard.snapshot`.

A caller waits in spells (``[hotline-queue]``): between two of them Asterisk reports the
caller as gone from the queue while our flow speaks their position. Such a caller still
waits, from their first join: only an operator's answer, an abandon or the hang-up of the
queued channel ends the wait, so the count never blinks every announcement.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from panoramisk.message import Message
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .agent_states import paused_state
from .ami import AMIClient, AMIError
from .db.models import AgentState, Call, CallOutcome
from .dialplan import HOTLINE_ENTRY_CONTEXT
from .services.ratings import extension_of

# Where a caller's channel is while the IVR speaks to them (before or between queues).
IVR_CONTEXTS = frozenset({HOTLINE_ENTRY_CONTEXT, "hotline-main", "agi-step"})
# Asterisk's device states (QueueMember Status) of a phone on a call: in use, busy.
BUSY_STATES = frozenset({"2", "3"})


@dataclass
class Waiting:
    linkedid: str
    uniqueid: str
    queue: str
    since: float


@dataclass
class Member:
    interface: str
    extension: str
    state: AgentState = AgentState.READY
    reason: str = ""
    since: float = 0.0
    queues: set[str] = field(default_factory=set)


def _stamp(event: Message, default: float) -> float:
    try:
        return float(str(event.get("Timestamp", "")))
    except ValueError:
        return default


class LiveBoard:
    def __init__(self, ami: AMIClient | None, queues: Callable[[], Iterable[str]],
                 clock: Callable[[], float] = time.time) -> None:
        self.ami = ami
        self._queues = queues
        self.clock = clock
        self.waiting: dict[str, Waiting] = {}
        self.members: dict[str, Member] = {}
        self.ivr: dict[str, tuple[str, float]] = {}     # uniqueid → (linkedid, since)
        self.talking: dict[str, float] = {}             # linkedid → answered at
        self._changed: set[asyncio.Event] = set()
        self.closing = False
        self.reloads = 0      # how many times the board was read from Asterisk afresh
        if ami is not None:
            for name, handler in {
                "QueueCallerJoin": self._on_join, "QueueCallerLeave": self._on_leave,
                "QueueCallerAbandon": self._on_abandon, "AgentConnect": self._on_connect,
                "AgentComplete": self._on_complete, "QueueMemberStatus": self._on_member,
                "QueueMemberPause": self._on_member, "QueueMemberAdded": self._on_member,
                "QueueMemberRemoved": self._on_member_removed,
                "Newchannel": self._on_new_channel, "Hangup": self._on_hangup,
            }.items():
                ami.subscribe(name, handler)
            ami.on_connect(self.reload)

    # --- who is told ---------------------------------------------------------------------

    def listen(self) -> asyncio.Event:
        changed = asyncio.Event()
        self._changed.add(changed)
        return changed

    def leave(self, changed: asyncio.Event) -> None:
        self._changed.discard(changed)

    async def close(self, _app: object = None) -> None:
        """On shutdown: every open board stream ends (no page holds the server up)."""
        self.closing = True
        self._touch()

    def _touch(self) -> None:
        for changed in self._changed:
            changed.set()

    # --- events ----------------------------------------------------------------------------

    def _on_join(self, event: Message) -> None:
        linkedid = str(event.get("Linkedid", ""))
        if not linkedid:
            return
        found = self.waiting.get(linkedid)
        if found is None:     # a new wait; a caller back for the next spell keeps theirs
            self.waiting[linkedid] = Waiting(linkedid, str(event.get("Uniqueid", "")),
                                             str(event.get("Queue", "")),
                                             _stamp(event, self.clock()))
        else:
            found.queue = str(event.get("Queue", found.queue))
        self._touch()

    def _on_leave(self, event: Message) -> None:
        # The end of a spell, or of the wait: the answer, abandon or hang-up says which.
        self._touch()

    def _on_abandon(self, event: Message) -> None:
        if self.waiting.pop(str(event.get("Linkedid", "")), None) is not None:
            self._touch()

    def _on_connect(self, event: Message) -> None:
        linkedid = str(event.get("Linkedid", ""))
        self.waiting.pop(linkedid, None)
        if linkedid:
            self.talking[linkedid] = _stamp(event, self.clock())
        member = self.members.get(str(event.get("Interface", "")))
        if member is not None:
            self._set_state(member, AgentState.ON_CALL, "", _stamp(event, self.clock()))
        self._touch()

    def _on_complete(self, event: Message) -> None:
        self.talking.pop(str(event.get("Linkedid", "")), None)
        self._touch()

    def _on_member(self, event: Message) -> None:
        interface = str(event.get("Interface", ""))
        if not interface:
            return
        member = self.members.get(interface)
        if member is None:
            extension = str(event.get("MemberName", "")) or extension_of(interface) or ""
            member = self.members[interface] = Member(interface, extension,
                                                      since=_stamp(event, self.clock()))
        member.queues.add(str(event.get("Queue", "")))
        state, reason = self._state_of(event)
        self._set_state(member, state, reason, _stamp(event, self.clock()))
        self._touch()

    def _on_member_removed(self, event: Message) -> None:
        interface = str(event.get("Interface", ""))
        member = self.members.get(interface)
        if member is None:
            return
        member.queues.discard(str(event.get("Queue", "")))
        if not member.queues:
            del self.members[interface]
        self._touch()

    def _on_new_channel(self, event: Message) -> None:
        if str(event.get("Context", "")) == HOTLINE_ENTRY_CONTEXT:
            self.ivr[str(event.get("Uniqueid", ""))] = (
                str(event.get("Linkedid", "")), _stamp(event, self.clock()))
            self._touch()

    def _on_hangup(self, event: Message) -> None:
        uniqueid, linkedid = str(event.get("Uniqueid", "")), str(event.get("Linkedid", ""))
        gone = self.ivr.pop(uniqueid, None) is not None
        for key, wait in list(self.waiting.items()):
            if wait.uniqueid == uniqueid:
                del self.waiting[key]
                gone = True
        if uniqueid == linkedid and self.talking.pop(linkedid, None) is not None:
            gone = True
        if gone:
            self._touch()

    # --- operators' states -------------------------------------------------------------

    @staticmethod
    def _state_of(fields: Message | dict[str, Any]) -> tuple[AgentState, str]:
        if str(fields.get("InCall", "")) == "1" or str(fields.get("Status")) in BUSY_STATES:
            return AgentState.ON_CALL, ""
        return paused_state(fields.get("Paused"), fields.get("PausedReason"))

    @staticmethod
    def _set_state(member: Member, state: AgentState, reason: str, at: float) -> None:
        if (member.state, member.reason) != (state, reason):
            member.state, member.reason, member.since = state, reason, at

    # --- after every (re)connection ------------------------------------------------------

    async def reload(self) -> None:
        """Everything from Asterisk again: events missed while the link was down."""
        assert self.ami is not None
        try:
            status = await self.ami.action({"Action": "QueueStatus"}, as_list=True)
            channels = await self.ami.action({"Action": "CoreShowChannels"}, as_list=True)
        except AMIError:
            return    # the next connection tries again
        now = self.clock()
        self.waiting, self.members = {}, {}
        for item in status:
            if item.get("Event") == "QueueEntry":
                self._seed_entry(item, now)
            elif item.get("Event") == "QueueMember":
                self._seed_member(item, now)
        self.ivr = {str(c.get("Uniqueid")): (str(c.get("Linkedid", "")),
                                             now - _seconds(c.get("Duration")))
                    for c in channels if c.get("Event") == "CoreShowChannel"
                    and str(c.get("Context", "")) in IVR_CONTEXTS}
        self.talking = {}     # a caller with an operator is in [hotline-queue], not the IVR
        self.reloads += 1
        self._touch()

    def _seed_entry(self, item: Message, now: float) -> None:
        linkedid = str(item.get("Linkedid", "") or item.get("Uniqueid", ""))
        self.waiting[linkedid] = Waiting(linkedid, str(item.get("Uniqueid", "")),
                                         str(item.get("Queue", "")),
                                         now - _seconds(item.get("Wait")))

    def _seed_member(self, item: Message, now: float) -> None:
        interface = str(item.get("Location", "") or item.get("StateInterface", ""))
        member = self.members.setdefault(interface, Member(
            interface, str(item.get("Name", "")) or extension_of(interface) or ""))
        member.queues.add(str(item.get("Queue", "")))
        member.state, member.reason = self._state_of(item)
        # Asterisk keeps when the member last paused and last finished a call: the best
        # start of the present state there is after a reconnection.
        marks = [_seconds(item.get(k)) for k in ("LastPause", "LastCall", "LoginTime")]
        paused = member.state in (AgentState.PAUSED, AgentState.WRAPUP)
        started = marks[0] if paused else max(marks)
        member.since = started if 0 < started <= now else now

    # --- what the board shows ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Queues (waiting, since when the longest), operators, calls in the IVR."""
        queues: dict[str, dict[str, Any]] = {
            q: {"queue": q, "waiting": 0, "longest_since": None} for q in self._queues()}
        for wait in self.waiting.values():
            row = queues.setdefault(wait.queue, {"queue": wait.queue, "waiting": 0,
                                                 "longest_since": None})
            row["waiting"] += 1
            if row["longest_since"] is None or wait.since < row["longest_since"]:
                row["longest_since"] = wait.since
        busy = set(self.waiting) | set(self.talking)
        calls: dict[str, float] = {}     # a call is counted once, whatever its channels
        for linkedid, since in self.ivr.values():
            if linkedid not in busy:
                calls[linkedid] = min(since, calls.get(linkedid, since))
        ivr = sorted(calls.values())
        return {"now": self.clock(), "queues": [queues[q] for q in sorted(queues)],
                "operators": sorted(({"extension": m.extension, "state": m.state,
                                      "reason": m.reason, "since": m.since}
                                     for m in self.members.values()),
                                    key=lambda m: m["extension"]),
                "ivr": len(ivr), "ivr_longest_since": ivr[0] if ivr else None}


def _seconds(value: object) -> float:
    with contextlib.suppress(TypeError, ValueError):
        return float(str(value))
    return 0.0


async def queue_figures(session: AsyncSession, start: datetime, end: datetime,
                        service_level_seconds: int) -> dict[str, dict[str, float | None]]:
    """Per queue, for calls that started in [start, end): the service level (answered
    within ``service_level_seconds`` of joining, of those answered: Asterisk's
    definition, as on the supervisor's page) and how many hung up waiting."""
    answered = Call.answered_at.is_not(None)
    rows = await session.execute(select(
        Call.queue, func.count().filter(answered),
        func.count().filter(answered, Call.wait_seconds <= service_level_seconds),
        func.count().filter(Call.outcome == CallOutcome.ABANDONED),
    ).where(Call.started_at >= start, Call.started_at < end, Call.queue.is_not(None))
        .group_by(Call.queue))
    return {str(queue): {"service_level": in_sl / n if n else None, "abandoned": lost}
            for queue, n, in_sl, lost in rows}
