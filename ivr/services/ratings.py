"""The two-question rating after a conversation (R-H8)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.models import (
    Quality,
    Rating,
    RatingStatus,
    Staff,
    Transfer,
    TransferKind,
    TransferOutcome,
)
from .calls import call_by_linkedid


def extension_of(interface: str) -> str | None:
    """``PJSIP/1001``, ``Local/1001@operator-sim/n`` → ``1001``."""
    m = re.search(r"/(\d+)", interface or "")
    return m.group(1) if m else None


async def operator_for(session: AsyncSession, interface: str) -> int | None:
    extension = extension_of(interface)
    if extension is None:
        return None
    return await session.scalar(select(Staff.id).where(Staff.extension == extension))


async def attended_target(session: AsyncSession, call_id: int) -> int | None:
    """The colleague an attended transfer last handed the call to, if any."""
    return await session.scalar(select(Transfer.to_staff_id).where(
        Transfer.call_id == call_id, Transfer.kind == TransferKind.ATTENDED,
        Transfer.outcome == TransferOutcome.COMPLETED,
    ).order_by(Transfer.seq.desc()).limit(1))


async def save_rating(
    sessions: async_sessionmaker[AsyncSession], *, linkedid: str, interface: str,
    answer_received: bool | None, quality: Quality | None, from_queue: bool = True,
) -> None:
    """Store what the caller actually pressed: nothing is filled in for them.

    ``interface`` is whom the caller last spoke with as the dialplan knows it: the queue
    member, or the colleague the transfer gate dialled. After an attended transfer the
    caller is still in the queue's conversation, now with the colleague, so for a rating
    ``from_queue`` the colleague of a completed attended transfer takes precedence."""
    if answer_received is not None and quality is not None:
        status = RatingStatus.COMPLETE
    elif answer_received is not None:
        status = RatingStatus.PARTIAL
    else:
        status = RatingStatus.NO_ANSWER
    async with sessions() as session, session.begin():
        call = await call_by_linkedid(session, linkedid)
        if call is None:
            return
        operator_id = (await attended_target(session, call.id) if from_queue else None) \
            or await operator_for(session, interface)
        rating = await session.scalar(select(Rating).where(Rating.call_id == call.id))
        if rating is None:
            rating = Rating(call_id=call.id, status=status)
            session.add(rating)
        rating.operator_id = operator_id
        rating.answer_received = answer_received
        rating.quality = quality
        rating.status = status
        if operator_id is not None:
            call.operator_id = operator_id
