"""The callback dialer (R-H5): a scheduler job that calls citizens back inside their windows.

Each run claims the callbacks due now (:func:`ivr.services.callbacks.claim_due`: one attempt
each, never two schedulers on one callback) and originates, through AMI, the assigned
employee's phone into ``[hotline-callback]``; the dialplan and the ``callback-*`` flows do
the rest. An employee who does not answer ends the attempt from Asterisk's
``OriginateResponse``; an attempt whose result never comes (the service restarted
mid-call) is closed by the next claim after ``callbacks.stale_after_seconds``.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

from panoramisk.message import Message

from .ami import AMIClient, AMIError
from .dialling import DiallingPolicy
from .services.callbacks import (
    NUMBER_REFUSED,
    STAFF_NO_ANSWER,
    Due,
    claim_due,
    finish_attempt,
)
from .services.container import Services

log = logging.getLogger(__name__)

CALLBACK_CONTEXT = "hotline-callback"
_CHANNEL_ID = re.compile(r"^cb-(\d+)-")


class CallbackDialer:
    def __init__(self, services: Services, ami: AMIClient) -> None:
        self.services = services
        self.ami = ami
        ami.subscribe("OriginateResponse", self._on_originate_response)

    async def run_once(self) -> int:
        """Claim what is due and ring the employees; the number of attempts started."""
        cfg = self.services.settings.callbacks
        due = await claim_due(self.services.sessions, self.services.clock(),
                              stale_after=timedelta(seconds=cfg.stale_after_seconds))
        for item in due:
            await self._originate(item)
        return len(due)

    async def call_now(self, item: Due) -> None:
        """An attempt the employee started from the worklist
        (:func:`~ivr.services.callbacks.claim_now`): their phone rings first, as above."""
        await self._originate(item)

    def staff_dial(self, item: Due) -> str:
        if item.assignee_extension:
            return self.services.settings.asterisk.operator_dial.format(
                extension=item.assignee_extension)
        # Nobody assigned: the first free operator of the general queue.
        return f"Local/{self.services.settings.ivr.general_queue}@hotline-callback-queue/n"

    async def _originate(self, item: Due) -> None:
        cfg = self.services.settings.callbacks
        # The last gate: a number stored before the policy (or before a deny prefix was
        # added) is never dialled; the callback fails with the reason in its attempt.
        refusal = DiallingPolicy.from_settings(self.services.settings).refusal(item.phone)
        if refusal:
            log.warning("callback %d: number refused by the dialling policy: %s",
                        item.callback_id, refusal)
            await self._finish(item.attempt_id, NUMBER_REFUSED)
            return
        staff = self.staff_dial(item)
        try:
            await self.ami.originate(
                Channel=staff, Context=CALLBACK_CONTEXT, Exten="s", Priority="1",
                Timeout=str(cfg.staff_ring_seconds * 1000),
                CallerID=f"Обратный звонок <{item.phone}>",
                ChannelId=f"cb-{item.attempt_id}-{uuid.uuid4().hex[:12]}",
                Variable=[f"__HOTLINE_CALLBACK={item.attempt_id}",
                          f"__HOTLINE_CALLBACK_STAFF={staff}"])
        except AMIError as exc:
            log.error("callback %d: could not originate (%s); retrying later",
                      item.callback_id, exc)
            await self._finish(item.attempt_id, "failed")

    async def _on_originate_response(self, event: Message) -> None:
        if str(event.get("Response", "")) != "Failure":
            return
        m = _CHANNEL_ID.match(str(event.get("Uniqueid", "")))
        if m:
            await self._finish(int(m.group(1)), STAFF_NO_ANSWER)

    async def _finish(self, attempt_id: int, outcome: str) -> None:
        cfg = self.services.settings.callbacks
        await finish_attempt(self.services.sessions, attempt_id, outcome,
                             self.services.clock(), max_attempts=cfg.max_attempts,
                             retry=timedelta(seconds=cfg.retry_seconds))
