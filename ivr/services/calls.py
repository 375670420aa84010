"""Calls as the rest of the code reads them. Facts about a call (arrival, menu keys,
outcome, hangup) are written by :mod:`ivr.recorder`, in batches."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Call


async def call_by_linkedid(session: AsyncSession, linkedid: str) -> Call | None:
    return await session.scalar(select(Call).where(Call.linkedid == linkedid))


async def call_id_for(session: AsyncSession, linkedid: str) -> int | None:
    return await session.scalar(select(Call.id).where(Call.linkedid == linkedid))
