"""Knowledge-base lookups the IVR needs: the scripts it speaks (R-H3), agency contacts (R-H7)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Agency, KbArticle

GREETING = "script.greeting"
FAREWELL = "script.farewell"


async def script_text(session: AsyncSession, key: str) -> str | None:
    return await session.scalar(
        select(KbArticle.body).where(KbArticle.key == key, KbArticle.archived.is_(False)))


async def agency_by_name(session: AsyncSession, name: str) -> Agency | None:
    return await session.scalar(select(Agency).where(Agency.name == name))
