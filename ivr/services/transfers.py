"""Transfers of a hotline call (R-H4): at most two, every one recorded with its outcome.

The dialplan's transfer gate (``agi/flows/transfer.py``) and the panel ask
:func:`request_transfer`, which decides and records in one transaction: a third transfer is
refused, a number not in the staff directory is refused, anything else is allowed. A blind
transfer counts once the caller is handed over; an attended one counts only when Asterisk
reports it completed (an abandoned consultation counts as no transfer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import dialplan as dialplan_names
from ..ami import AMIClient
from ..db.models import Call, Staff, Transfer, TransferKind, TransferOutcome
from .calls import call_by_linkedid
from .ratings import extension_of

MAX_TRANSFERS = 2  # R-H4: «не более двух переадресаций»
# A phone extension as the transfer gate's context matches it (digits only).
_EXTENSION = re.compile(r"[0-9]{1,10}")
COUNTED = (TransferOutcome.COMPLETED,)


class Refusal:
    LIMIT = "limit"        # the call was transferred twice already
    UNKNOWN = "unknown"    # no active staff member has that extension
    NO_CALL = "no_call"    # not a hotline call we know


@dataclass(frozen=True)
class Decision:
    allowed: bool
    refusal: str            # "" when allowed, else a Refusal value
    used: int               # transfers counted before this one
    sender: Staff | None    # who transfers (None: not an operator we know)
    target: Staff | None
    topic: str | None       # the call's topic code, for the colleague's whisper


async def count_transfers(session: AsyncSession, call_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(Transfer).where(
        Transfer.call_id == call_id, Transfer.outcome.in_(COUNTED))) or 0


async def request_transfer(
    sessions: async_sessionmaker[AsyncSession], *, linkedid: str, target_extension: str,
    sender_channel: str, kind: TransferKind, note: str, at: datetime,
) -> Decision:
    """Decide and record one transfer request."""
    async with sessions() as session, session.begin():
        call = await call_by_linkedid(session, linkedid)
        sender = await active_staff(session, extension_of(sender_channel))
        if call is None:
            return Decision(False, Refusal.NO_CALL, 0, sender, None, None)
        # Row lock on PostgreSQL: two gates of one call (a blind transfer racing a panel
        # transfer) decide one after the other. SQLite serialises writers anyway.
        await session.execute(select(Call.id).where(Call.id == call.id).with_for_update())
        used = await count_transfers(session, call.id)
        target = await active_staff(session, target_extension)
        if target is None:
            refusal = Refusal.UNKNOWN
        elif used >= MAX_TRANSFERS:
            refusal = Refusal.LIMIT
        else:
            refusal = ""
        if refusal:
            outcome = TransferOutcome.REFUSED
        elif kind is TransferKind.ATTENDED:
            outcome = TransferOutcome.PENDING  # counts once Asterisk reports it done
        else:
            outcome = TransferOutcome.COMPLETED
        seq = (await session.scalar(
            select(func.max(Transfer.seq)).where(Transfer.call_id == call.id)) or 0) + 1
        session.add(Transfer(
            call_id=call.id, seq=seq, kind=kind, from_staff_id=sender.id if sender else None,
            to_staff_id=target.id if target else None, to_target=target_extension[:100],
            note=note, requested_at=at, outcome=outcome,
            completed_at=at if outcome is TransferOutcome.COMPLETED else None))
        return Decision(not refusal, refusal, used, sender, target, call.topic)


async def transfer_failed(
    sessions: async_sessionmaker[AsyncSession], *, linkedid: str, at: datetime
) -> None:
    """The colleague did not answer a blind transfer: it does not count."""
    await _settle_last(sessions, linkedid, at, TransferOutcome.FAILED,
                       Transfer.kind == TransferKind.BLIND,
                       Transfer.outcome == TransferOutcome.COMPLETED)


async def attended_completed(
    sessions: async_sessionmaker[AsyncSession], *, linkedid: str, at: datetime
) -> bool:
    """Asterisk reported an attended transfer of this call done: the pending one counts."""
    return await _settle_last(sessions, linkedid, at, TransferOutcome.COMPLETED,
                              Transfer.outcome == TransferOutcome.PENDING)


async def _settle_last(sessions: async_sessionmaker[AsyncSession], linkedid: str,
                       at: datetime, outcome: TransferOutcome, *where: Any) -> bool:
    """Give the call's last transfer matching ``where`` its final ``outcome``."""
    async with sessions() as session, session.begin():
        call = await call_by_linkedid(session, linkedid)
        if call is None:
            return False
        last = await session.scalar(select(Transfer).where(Transfer.call_id == call.id, *where)
                                    .order_by(Transfer.seq.desc()).limit(1))
        if last is None:
            return False
        last.outcome, last.completed_at = outcome, at
        return True


async def active_staff(session: AsyncSession, extension: str | None) -> Staff | None:
    """The active employee with this phone extension, if any."""
    if not extension or not _EXTENSION.fullmatch(extension):
        return None
    return await session.scalar(select(Staff).where(
        Staff.extension == extension, Staff.active.is_(True)))


def transfer_note(note: str) -> str:
    """The operator's note for the colleague's whisper: one line of at most 300 characters.
    A control character (a line break in a one-line field, NUL) is refused: it only comes
    from a forged form."""
    if any(not ch.isprintable() for ch in note):
        raise TransferError("в заметке для коллеги есть недопустимые символы (перевод "
                            "строки и подобные)")
    return " ".join(note.split())[:300]


async def transfer_from_panel(ami: AMIClient, operator_channel: str, extension: str,
                              note: str = "") -> None:
    """A blind transfer the operator starts in the panel: the same gate as the phone's
    ``#1`` (``[hotline-transfer]``), with the operator's note for the colleague's whisper.

    The note goes on the caller's channel (the operator's bridge peer), where the gate
    reads it; AMI ``BlindTransfer`` then moves the caller, naming the operator as the one
    who transferred. The channel is the operator's own current call (the panel takes it
    from the OperatorHub, never from a form)."""
    if not _EXTENSION.fullmatch(extension):
        raise TransferError("такого номера нет в справочнике сотрудников")
    note = transfer_note(note)
    reply = await ami.action({"Action": "Getvar", "Channel": operator_channel,
                              "Variable": "BRIDGEPEER"})
    caller = str(reply.get("Value", "") or "")
    if not caller:
        raise TransferError("оператор сейчас не разговаривает с гражданином")
    await ami.action({"Action": "Setvar", "Channel": caller,
                      "Variable": dialplan_names.TRANSFER_NOTE, "Value": note})
    await ami.action({"Action": "BlindTransfer", "Channel": operator_channel,
                      "Context": dialplan_names.TRANSFER_CONTEXT, "Exten": extension})


class TransferError(Exception):
    """A transfer that cannot be made; the message is for the operator (Russian)."""
