"""AMI events → call records. One subscription table, one small method per event.

This is the start of call tracking (issue 4 extends it with queue, legs, transfers and the
batching writer): a call ends when its first channel — the caller's, whose uniqueid is the
call's linkedid — hangs up.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from panoramisk.message import Message

from .ami import AMIClient
from .services.calls import call_by_linkedid
from .services.container import Services

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

    async def _on_hangup(self, event: Message) -> None:
        linkedid = str(event.get("Linkedid", ""))
        if not linkedid or event.get("Uniqueid") != linkedid:
            return
        async with self.services.sessions() as session, session.begin():
            call = await call_by_linkedid(session, linkedid)
            if call is not None and call.ended_at is None:
                call.ended_at = _event_time(event)
