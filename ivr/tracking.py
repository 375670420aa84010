"""AMI events → call records. One subscription table, one small method per event.

This is the start of call tracking (issue 4 extends it with queue and legs): a call ends
when its first channel — the caller's, whose uniqueid is the call's linkedid — hangs up.
Facts go to the call recorder, which writes them in batches. An attended transfer counts
once Asterisk reports it done (R-H4); one still pending when the call ends never happened.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from panoramisk.message import Message

from .ami import AMIClient
from .services.container import Services
from .services.transfers import attended_completed

log = logging.getLogger(__name__)


def _event_time(event: Message) -> datetime:
    try:
        return datetime.fromtimestamp(float(event.get("Timestamp", "")), UTC)
    except ValueError:
        return datetime.now(UTC)


class CallTracker:
    def __init__(self, services: Services, ami: AMIClient) -> None:
        self.services = services
        ami.subscribe("Hangup", self._on_hangup)
        ami.subscribe("AttendedTransfer", self._on_attended_transfer)

    async def _on_hangup(self, event: Message) -> None:
        linkedid = str(event.get("Linkedid", ""))
        if not linkedid or event.get("Uniqueid") != linkedid:
            return
        # The recorder also cancels an attended transfer left pending (never completed).
        self.services.recorder.ended(linkedid, _event_time(event))

    async def _on_attended_transfer(self, event: Message) -> None:
        if str(event.get("Result", "")) != "Success":
            return
        linkedid = str(event.get("OrigTransfererLinkedid", ""))
        if linkedid:
            await attended_completed(self.services.sessions, linkedid=linkedid,
                                     at=_event_time(event))
