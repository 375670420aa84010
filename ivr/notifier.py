"""The notice sender: a scheduler job that delivers queued notices (R-A2, R-A5, R-P3).

E-mail goes over SMTP (aiosmtplib); a phone notice is an automated call — AMI Originate of
the citizen's number (``asterisk.trunk_dial``) into ``[hotline-notice]``, where the
``notice`` flow speaks it (``1`` repeats; a reminder takes ``1`` confirm, ``2`` cancel)
and records the delivery; a citizen who does not answer ends the attempt from Asterisk's
``OriginateResponse``. Post and state-portal copies go to the outbox for the external
system.
"""

from __future__ import annotations

import logging
import re
import uuid

from panoramisk.message import Message

from .ami import AMIClient, AMIError
from .db.models import Channel
from .dialling import DiallingPolicy, NumberRefused, caller_id
from .services import notices
from .services.container import Services

log = logging.getLogger(__name__)

NOTICE_CONTEXT = "hotline-notice"
_CHANNEL_ID = re.compile(r"^nt-(\d+)-")


class NoticeSender:
    def __init__(self, services: Services, ami: AMIClient | None) -> None:
        self.services = services
        self.ami = ami
        if ami is not None:
            ami.subscribe("OriginateResponse", self._on_originate_response)

    async def run_once(self) -> int:
        """Claim the due copies and send them; the number of attempts started."""
        svc = self.services
        due = await notices.claim_due(svc.sessions, svc.settings, svc.clock())
        for item in due:
            await self._send(item)
        return len(due)

    async def _send(self, item: notices.Claimed) -> None:
        svc = self.services
        if item.channel == Channel.EMAIL:
            try:
                await notices.send_email(svc.settings, item)
            except Exception as exc:  # SMTP refused, unreachable, timed out: retried later
                log.warning("notice %d: e-mail to %s not sent: %s", item.id, item.address, exc)
                await notices.finish(svc.sessions, svc.settings, item.id, svc.clock(),
                                     error=f"SMTP: {exc}")
                return
            await notices.finish(svc.sessions, svc.settings, item.id, svc.clock())
        elif item.channel == Channel.PHONE:
            await self._call(item)
        else:  # post, state portal: the external system takes it from the outbox
            await notices.finish(svc.sessions, svc.settings, item.id, svc.clock(), outbox=True)

    async def _call(self, item: notices.Claimed) -> None:
        svc = self.services
        if self.ami is None:
            await notices.finish(svc.sessions, svc.settings, item.id, svc.clock(),
                                 error="нет связи с Asterisk")
            return
        try:   # the last gate before the citizen's phone rings
            number = DiallingPolicy.from_settings(svc.settings).decide(item.address)
        except NumberRefused as refused:
            log.warning("notice %d: number refused by the dialling policy: %s", item.id,
                        refused)
            await notices.finish(svc.sessions, svc.settings, item.id, svc.clock(),
                                 error=f"номер не набирается: {refused}", final=True)
            return
        try:
            await self.ami.originate(
                Channel=svc.settings.asterisk.trunk_dial.format(number=number),
                Context=NOTICE_CONTEXT, Exten="s", Priority="1",
                Timeout=str(svc.settings.notices.phone_ring_seconds * 1000),
                CallerID=f"{svc.settings.organisation.short_name} <{caller_id(svc.settings)}>",
                ChannelId=f"nt-{item.id}-{uuid.uuid4().hex[:12]}",
                Variable=[f"HOTLINE_NOTICE={item.id}", "HOTLINE_FAIL_HANGUP=1"])
        except AMIError as exc:
            log.error("notice %d: could not originate (%s); retrying later", item.id, exc)
            await notices.finish(svc.sessions, svc.settings, item.id, svc.clock(),
                                 error=f"AMI: {exc}")

    async def _on_originate_response(self, event: Message) -> None:
        if str(event.get("Response", "")) != "Failure":
            return
        m = _CHANNEL_ID.match(str(event.get("Uniqueid", "")))
        if m:
            reason = str(event.get("Reason", ""))
            await notices.finish(self.services.sessions, self.services.settings,
                                 int(m.group(1)), self.services.clock(),
                                 error=f"не ответил (причина {reason})")
