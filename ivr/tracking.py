"""AMI events → call records. One subscription table, one small method per event.

Queue events give the wait (first join of the queue's spells to the answer or the abandon),
the operator legs (who answered, when, talk time, who hung up); a call ends when its first
channel — the caller's, whose uniqueid is the call's linkedid — hangs up. Facts go to the
call recorder, which writes them in batches: an event seen twice changes nothing. An
attended transfer counts once Asterisk reports it done (R-H4); one still pending when the
call ends never happened. After every (re)connection the calls that ended while nobody
listened are completed from Asterisk's own records (:mod:`ivr.reconcile`), and the calls
the service never saw are imported from them (:mod:`ivr.recovery`); a caller's pass through
agi-fail (its ``HotlineAgiFail`` user event) marks the call a fallback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from panoramisk.message import Message
from sqlalchemy import bindparam, select

from .ami import AMIClient
from .db.models import Call, CallLeg, Staff
from .phone import normalise
from .recorder import Abandoned, Flagged, LegAnswered, LegEnded, QueueJoined
from .services.container import Services
from .services.ratings import extension_of
from .services.transfers import attended_completed
from .settings import Settings

log = logging.getLogger(__name__)


def _event_time(event: Message) -> datetime:
    try:
        return datetime.fromtimestamp(float(event.get("Timestamp", "")), UTC)
    except ValueError:
        return datetime.now(UTC)


def asterisk_log_dir(settings: Settings) -> Path:
    if settings.asterisk.log_dir:
        return Path(settings.asterisk.log_dir)
    from .asterisk_dev import DevAsterisk

    return DevAsterisk(settings).log_dir


class CallTracker:
    def __init__(self, services: Services, ami: AMIClient, log_dir: Path | None = None) -> None:
        self.services = services
        self.ami = ami
        self.log_dir = log_dir or asterisk_log_dir(services.settings)
        self.reconciled = 0
        self.recovered = 0  # calls imported from Asterisk's records (ivr.recovery)
        # The calls whose first channel this link heard created: linkedid → the link's
        # number (ami.connections). A call it did not hear begin (going on when the link
        # came up) may have had events unheard, so its end waits for its CDR lines
        # (ivr.recovery.complete_after_hangup). Decided by what this link heard, not by a
        # CoreShowChannels snapshot: a hang-up racing the snapshot is never misjudged.
        self._heard: dict[str, int] = {}
        self._completing: set[asyncio.Task[None]] = set()
        # The call each queue member is on (a member has one at a time, ringinuse = no):
        # AgentComplete comes without the caller's fields when the caller's channel is gone
        # first, and then names only the member. A member not here (their AgentConnect came
        # before a restart) is looked up in the records: their open leg.
        self._on_member: dict[str, str] = {}
        # After every (re)connection: calls that ended while nobody listened are completed.
        ami.on_connect(self.reconcile)
        # Handlers that only record facts are plain functions: no task per event (the
        # listener must keep up with Asterisk); the few that need the database are async.
        self.handlers: dict[str, Callable[[Message], Awaitable[None] | None]] = {
            "Newchannel": self._on_new_channel,
            "Hangup": self._on_hangup,
            "AttendedTransfer": self._on_attended_transfer,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerAbandon": self._on_abandon,
            "AgentConnect": self._on_agent_connect,
            "AgentComplete": self._on_agent_complete,
            "UserEvent": self._on_user_event,
        }
        for name, handler in self.handlers.items():
            ami.subscribe(name, handler)

    async def reconcile(self) -> None:
        from .reconcile import reconcile
        from .recovery import recover_unknown

        link = self.ami.connections
        self._heard = {k: v for k, v in self._heard.items() if v == link}
        self.reconciled += await reconcile(self.services, self.ami, self.log_dir)
        self.recovered += await recover_unknown(self.services, self.ami, self.log_dir)

    async def handle(self, event: Message) -> None:
        """One event, as if it came from the AMI link (replays, benchmarks)."""
        handler = self.handlers.get(str(event.get("Event", "")))
        if handler is not None:
            result = handler(event)
            if result is not None:
                await result

    def _on_new_channel(self, event: Message) -> None:
        linkedid = str(event.get("Linkedid", ""))
        if linkedid and event.get("Uniqueid") == linkedid:
            self._heard[linkedid] = self.ami.connections

    def _on_hangup(self, event: Message) -> None:
        linkedid = str(event.get("Linkedid", ""))
        if not linkedid or event.get("Uniqueid") != linkedid:
            return
        heard = self._heard.pop(linkedid, None)
        # (Events handed in without a link, replays and benchmarks, are all heard.)
        if self.ami.connections and heard != self.ami.connections:
            self._complete_later(linkedid, _event_time(event))
            return
        # The recorder also cancels an attended transfer left pending (never completed).
        self.services.recorder.ended(linkedid, _event_time(event))

    def _complete_later(self, linkedid: str, at: datetime) -> None:
        from .recovery import complete_after_hangup

        task = asyncio.get_running_loop().create_task(
            complete_after_hangup(self.services, self.log_dir, linkedid, at))
        self._completing.add(task)
        task.add_done_callback(self._completing.discard)

    def _on_user_event(self, event: Message) -> None:
        # agi-fail says so: the caller's fallback shows in the records (calls.fallback).
        linkedid = str(event.get("Linkedid", ""))
        if event.get("UserEvent") == "HotlineAgiFail" and linkedid:
            self.services.recorder.put(Flagged(
                linkedid, False, True, _event_time(event),
                normalise(str(event.get("CallerIDNum", "")))))

    async def _on_attended_transfer(self, event: Message) -> None:
        if str(event.get("Result", "")) != "Success":
            return
        linkedid = str(event.get("OrigTransfererLinkedid", ""))
        if linkedid:
            await attended_completed(self.services.sessions, linkedid=linkedid,
                                     at=_event_time(event))

    def _on_queue_join(self, event: Message) -> None:
        linkedid = str(event.get("Linkedid", ""))
        if not linkedid:
            return
        # The row may not exist yet (the IVR runs in another process): the fact creates it,
        # blank fields filled by the IVR's own arrival.
        self.services.recorder.put(QueueJoined(
            linkedid, str(event.get("Queue", "")), _event_time(event),
            normalise(str(event.get("CallerIDNum", "")))))

    def _on_abandon(self, event: Message) -> None:
        linkedid = str(event.get("Linkedid", ""))
        if linkedid:
            self.services.recorder.put(Abandoned(linkedid, _event_time(event)))

    def _on_agent_connect(self, event: Message) -> None:
        linkedid, channel = str(event.get("Linkedid", "")), str(event.get("DestChannel", ""))
        if linkedid and channel:
            interface = str(event.get("Interface", ""))
            if interface:
                self._on_member[interface] = linkedid
            extension = extension_of(interface)
            self.services.recorder.put(
                LegAnswered(linkedid, channel, extension, _event_time(event)))

    def _on_agent_complete(self, event: Message) -> Awaitable[None] | None:
        # DestChannel is absent when the operator's channel was gone before the event was
        # built (they hung up first): the recorder then closes the call's open leg. The
        # caller's Linkedid is absent when the caller's channel was gone: the member's call.
        linkedid, channel = str(event.get("Linkedid", "")), str(event.get("DestChannel", ""))
        interface = str(event.get("Interface", ""))
        if not linkedid:
            linkedid = self._on_member.pop(interface, "")
        elif self._on_member.get(interface) == linkedid:
            del self._on_member[interface]
        try:
            talk = max(0, int(str(event.get("TalkTime", "0"))))
        except ValueError:
            talk = 0
        by = HANGUP_BY.get(str(event.get("Reason", "")).lower(), "system")
        if linkedid:
            self.services.recorder.put(LegEnded(linkedid, channel, talk, by, _event_time(event)))
            return None
        extension = extension_of(interface)
        if extension is None:
            return None
        # The member's call is not known here: its AgentConnect came before this process
        # started (a restart mid-conversation) or while the link was down. It is the
        # member's open leg in the records.
        return self._end_open_leg(extension, channel, talk, by, _event_time(event))

    async def _end_open_leg(self, extension: str, channel: str, talk: int, by: str,
                            at: datetime) -> None:
        await self.services.recorder.sync()
        async with self.services.sessions() as s:
            linkedid = await s.scalar(_OPEN_LEG_OF.params(extension=extension))
        if linkedid is None:
            log.warning("AgentComplete for %s: no open call of that operator", extension)
            return
        self.services.recorder.put(LegEnded(linkedid, channel, talk, by, at))


# A queue member is on one call at a time (ringinuse = no): their open leg is that call's.
_OPEN_LEG_OF = (
    select(Call.linkedid).join(CallLeg, CallLeg.call_id == Call.id)
    .join(Staff, Staff.id == CallLeg.operator_id)
    .where(Staff.extension == bindparam("extension"), CallLeg.ended_at.is_(None))
    .order_by(CallLeg.answered_at.desc()).limit(1)
)

# AgentComplete's Reason → calls.hangup_by
HANGUP_BY = {"caller": "caller", "agent": "operator", "transfer": "transfer"}
