"""``agi://…/transfer`` and ``transfer-failed``: the transfer gate (R-H4).

Every transfer an operator makes — from the phone (blind ``#1``, attended ``*2``) or from the
panel — lands in the dialplan's ``[hotline-transfer]`` context (the operators' channels carry
``TRANSFER_CONTEXT``), which runs this flow before anyone is dialled:

* blind: the *caller* arrives here (``BLINDTRANSFER`` names the operator who transferred).
  Allowed → the caller hears «Соединяю вас со специалистом…» and the colleague is dialled
  with a whisper (a hotline transfer, the topic, the operator's note). Refused (the third
  transfer, an unknown number) → the caller hears «оставайтесь на линии» and the operator
  who transferred is rung back, hearing why before the caller is put through again.
* attended: the operator's *consultation call* arrives here, the caller waits on hold.
  Allowed → the colleague is dialled with the whisper; the transfer counts once Asterisk
  reports it completed. Refused → the operator hears why, the consultation ends and the
  operator is back with the caller.

The dialplan does the dialling (``HOTLINE_NEXT`` = ``dial`` or ``refused``,
``HOTLINE_DIAL``, ``HOTLINE_WHISPER``); a colleague who does not answer a blind transfer
makes it not count, and the caller goes to the topic's queue (``transfer-failed``).
"""

from __future__ import annotations

import asyncio

from ivr import dialplan
from ivr.db.models import TransferKind
from ivr.services.transfers import Decision, Refusal, request_transfer, transfer_failed
from ivr.settings import Ivr

from ..server import CallContext
from .common import CallFlow


def dial_string(flow: CallFlow, extension: str) -> str:
    return flow.settings.asterisk.operator_dial.format(extension=extension)


async def run(call: CallContext) -> None:
    flow = CallFlow(call)
    target = flow.args[0] if flow.args else ""
    blind_from = flow.args[1] if len(flow.args) > 1 else ""
    kind = TransferKind.BLIND if blind_from else TransferKind.ATTENDED
    # Attended: this channel is the operator's consultation call; it inherited who they are.
    sender_channel = blind_from or await flow.agi.get_variable(dialplan.OPERATOR) or ""
    note = await flow.agi.get_variable(dialplan.TRANSFER_NOTE) or ""
    await flow.svc.recorder.sync()  # the call's row and topic, as the IVR recorded them
    decision = await request_transfer(
        flow.svc.sessions, linkedid=flow.linkedid, target_extension=target,
        sender_channel=sender_channel, kind=kind, note=note, at=flow.now())
    if decision.allowed and decision.target is not None:
        whisper = asyncio.create_task(flow.prompts.prepare(
            _whisper_text(flow, await flow.menu(), decision, note)))
        if kind is TransferKind.BLIND:
            await flow.play("transfer_connecting")
        await flow.agi.set_variable(dialplan.WHISPER, await whisper)
        await flow.agi.set_variable(dialplan.DIAL, dial_string(flow, target))
        await flow.agi.set_variable(dialplan.NEXT, "dial")
        return
    reason = "transfer_refused" if decision.refusal == Refusal.LIMIT else "transfer_unknown"
    await flow.agi.set_variable(dialplan.NEXT, "refused")
    if kind is TransferKind.ATTENDED:
        await flow.agi.stream_file(flow.prompts.path(reason), "")  # to the operator
        return
    # Blind: the operator has already let go of the caller; ring them back, telling why.
    await flow.play("transfer_hold")
    await flow.agi.set_variable(dialplan.WHISPER, flow.prompts.path(reason))
    back = decision.sender.extension if decision.sender else None
    await flow.agi.set_variable(dialplan.DIAL, dial_string(flow, back) if back else "")


def _whisper_text(flow: CallFlow, ivr: Ivr, decision: Decision, note: str) -> str:
    topic = next((t.title for t in ivr.topics if t.code == decision.topic),
                 flow.prompts.texts["transfer_no_topic"])
    sender = (flow.prompts.fill("transfer_sender", who=decision.sender.initials_name)
              if decision.sender else "")
    return " ".join(flow.prompts.fill("transfer_whisper", sender=sender, topic=topic,
                                      note=note).split())


async def failed(call: CallContext) -> None:
    """The colleague did not answer (``DIALSTATUS`` in the argument): the transfer does
    not count, and the caller is put through to the queue of the call's topic."""
    flow = CallFlow(call)
    await transfer_failed(flow.svc.sessions, linkedid=flow.linkedid, at=flow.now())
    await flow.play("transfer_failed")
