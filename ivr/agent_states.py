"""Agent states from Asterisk's queue events (issue 29): ready, paused with a reason, on a
call, wrap-up, out of the queues.

Asterisk reports a member's change once per queue it is in; :class:`AgentStates` folds those
into one state per extension and calls ``on_change`` only when it really changed. The call
tracker's process records each change as a fact (:class:`ivr.facts.AgentStateChanged`); the
panel's process pushes it to the operator's open pages. :func:`member_state` asks Asterisk
for a member's state now (a page load, a reload during wrap-up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from panoramisk.message import Message

from .ami import AMIClient
from .db.models import AgentState
from .facts import AgentStateChanged
from .recorder import CallRecorder
from .services.ratings import extension_of

# The pause the panel puts an operator in after a queue call (R-H6), and the one the operator
# chooses by hand: both are wrap-up, not a break.
WRAPUP_REASON = "после звонка: журнал"
MANUAL_WRAPUP_REASON = "поствызывная обработка"
WRAPUP_REASONS = (WRAPUP_REASON, MANUAL_WRAPUP_REASON)

STATE_NAMES = {AgentState.READY: "Готов", AgentState.PAUSED: "Пауза",
               AgentState.ON_CALL: "Разговор", AgentState.WRAPUP: "Поствызывная обработка",
               AgentState.OFFLINE: "Не в очередях"}


@dataclass(frozen=True)
class Seen:
    state: AgentState
    reason: str
    at: datetime

    @property
    def label(self) -> str:
        name = STATE_NAMES[self.state]
        return f"{name}: {self.reason}" if self.state is AgentState.PAUSED and self.reason \
            else name


def event_time(event: Mapping[str, object]) -> datetime:
    try:
        return datetime.fromtimestamp(float(str(event.get("Timestamp", ""))), UTC)
    except ValueError:
        return datetime.now(UTC)


def paused_state(paused: object, reason: object) -> tuple[AgentState, str]:
    """A member's ``Paused``/``PausedReason`` as a state: wrap-up, a pause, or ready."""
    why = str(reason or "")
    if str(paused) != "1":
        return AgentState.READY, ""
    return (AgentState.WRAPUP, "") if why in WRAPUP_REASONS else (AgentState.PAUSED, why)


class AgentStates:
    """One state per extension from the queue events; ``on_change(extension, seen)``."""

    def __init__(self, ami: AMIClient | None,
                 on_change: Callable[[str, Seen], None]) -> None:
        self.on_change = on_change
        self.last: dict[str, Seen] = {}
        self._queues: dict[str, set[str]] = {}
        self._after_call: dict[str, tuple[AgentState, str]] = {}
        if ami is not None:
            for name, handler in {
                "QueueMemberAdded": self._on_added, "QueueMemberRemoved": self._on_removed,
                "QueueMemberPause": self._on_pause, "QueueMemberStatus": self._on_status,
                "AgentConnect": self._on_connect, "AgentComplete": self._on_complete,
            }.items():
                ami.subscribe(name, handler)

    def _set(self, event: Message, state: AgentState, reason: str = "") -> None:
        extension = extension_of(str(event.get("Interface", "")))
        if not extension:
            return
        last = self.last.get(extension)
        if last is not None and (last.state, last.reason) == (state, reason):
            return
        seen = self.last[extension] = Seen(state, reason[:100], event_time(event))
        self.on_change(extension, seen)

    def _on_added(self, event: Message) -> None:
        self._queues.setdefault(str(event.get("Interface")), set()).add(str(event.get("Queue")))
        self._set(event, *paused_state(event.get("Paused"), event.get("PausedReason")))

    def _on_removed(self, event: Message) -> None:
        queues = self._queues.setdefault(str(event.get("Interface")), set())
        queues.discard(str(event.get("Queue")))
        if not queues:   # out of the last queue: logged out
            self._set(event, AgentState.OFFLINE)

    def _on_pause(self, event: Message) -> None:
        state = paused_state(event.get("Paused"), event.get("PausedReason"))
        if self._talking(event):   # a pause asked for mid-call starts after the call
            self._after_call[str(event.get("Interface"))] = state
        else:
            self._set(event, *state)

    def _on_status(self, event: Message) -> None:
        if str(event.get("InCall")) == "1":
            self._set(event, AgentState.ON_CALL)
        elif self._talking(event):
            self._after_call.pop(str(event.get("Interface")), None)
            self._set(event, *paused_state(event.get("Paused"), event.get("PausedReason")))

    def _on_connect(self, event: Message) -> None:
        self._set(event, AgentState.ON_CALL)

    def _on_complete(self, event: Message) -> None:
        # The panel's wrap-up pause follows at once (its QueueMemberPause).
        after = self._after_call.pop(str(event.get("Interface")), (AgentState.READY, ""))
        if self._talking(event):
            self._set(event, *after)

    def _talking(self, event: Message) -> bool:
        last = self.last.get(extension_of(str(event.get("Interface", ""))) or "")
        return last is not None and last.state is AgentState.ON_CALL


async def member_state(ami: AMIClient, interface: str) -> tuple[AgentState, str]:
    """The member's state as Asterisk has it now, over all its queues."""
    status = await ami.action({"Action": "QueueStatus", "Member": interface}, as_list=True)
    members = [m for m in status if m.get("Event") == "QueueMember"]
    if not members:
        return AgentState.OFFLINE, ""
    if any(str(m.get("InCall")) == "1" for m in members):
        return AgentState.ON_CALL, ""
    return paused_state(members[0].get("Paused"), members[0].get("PausedReason"))


def recording(recorder: CallRecorder) -> Callable[[str, Seen], None]:
    """``on_change`` that keeps every change as a fact (written with the recorder's batch)."""
    def put(extension: str, seen: Seen) -> None:
        recorder.put(AgentStateChanged("", extension, seen.state.value, seen.reason, seen.at))
    return put
