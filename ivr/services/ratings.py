"""The two-question rating after a conversation (R-H8)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.models import Quality, Rating, RatingStatus, Staff
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


async def save_rating(
    sessions: async_sessionmaker[AsyncSession], *, linkedid: str, interface: str,
    answer_received: bool | None, quality: Quality | None,
) -> None:
    """Store what the caller actually pressed: nothing is filled in for them."""
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
        operator_id = await operator_for(session, interface)
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
