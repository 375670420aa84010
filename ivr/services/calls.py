"""Calls as the IVR sees them: arrival and the caller's menu choices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.models import Call, CallOutcome, CitizenPhone
from ..phone import normalise


async def _citizen_for(session: AsyncSession, phone: str) -> int | None:
    if not phone:
        return None
    return await session.scalar(select(CitizenPhone.citizen_id).where(CitizenPhone.phone == phone))


async def call_by_linkedid(session: AsyncSession, linkedid: str) -> Call | None:
    return await session.scalar(select(Call).where(Call.linkedid == linkedid))


async def record_arrival(
    sessions: async_sessionmaker[AsyncSession],
    *, linkedid: str, caller: str, dialed: str, at: datetime,
) -> int:
    """Create the call record if it is not there yet (the AMI listener may have been first)."""
    caller = normalise(caller)
    for _ in range(2):
        async with sessions() as session, session.begin():
            call = await call_by_linkedid(session, linkedid)
            if call is not None:
                call.caller_number = call.caller_number or caller
                call.dialed_number = call.dialed_number or dialed
                return call.id
            call = Call(linkedid=linkedid, caller_number=caller, dialed_number=dialed,
                        started_at=at, citizen_id=await _citizen_for(session, caller))
            session.add(call)
            try:
                await session.flush()
            except IntegrityError:
                # Another writer created it between our select and insert: read theirs.
                await session.rollback()
                continue
            return call.id
    raise RuntimeError(f"could not record call {linkedid}")


async def record_menu_choice(
    sessions: async_sessionmaker[AsyncSession],
    *, linkedid: str, key: str, topic: str | None, queue: str | None,
) -> None:
    async with sessions() as session, session.begin():
        call = await call_by_linkedid(session, linkedid)
        if call is None:
            raise LookupError(f"no call {linkedid}")
        call.ivr_path = f"{call.ivr_path}>{key}" if call.ivr_path else key
        if topic is not None:
            call.topic = topic
        if queue is not None:
            call.queue = queue


async def call_id_for(session: AsyncSession, linkedid: str) -> int | None:
    return await session.scalar(select(Call.id).where(Call.linkedid == linkedid))


async def set_outcome(
    sessions: async_sessionmaker[AsyncSession], linkedid: str, outcome: CallOutcome
) -> None:
    async with sessions() as session, session.begin():
        call = await call_by_linkedid(session, linkedid)
        if call is not None:
            call.outcome = outcome
