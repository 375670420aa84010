"""Knowledge-base lookups the IVR needs: the scripts it speaks (R-H3), agency contacts (R-H7)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Agency, KbArticle
from .container import Services

GREETING = "script.greeting"
FAREWELL = "script.farewell"


async def script_text(session: AsyncSession, key: str) -> str | None:
    return await session.scalar(
        select(KbArticle.body).where(KbArticle.key == key, KbArticle.archived.is_(False)))


async def agency_by_name(session: AsyncSession, name: str) -> Agency | None:
    return await session.scalar(select(Agency).where(Agency.name == name))


async def script_texts(session: AsyncSession) -> list[str]:
    rows = await session.scalars(select(KbArticle.body).where(
        KbArticle.key.like("script.%"), KbArticle.archived.is_(False)))
    return list(rows)


async def render_scripts(services: Services) -> None:
    """Scheduled: render the knowledge base's scripts ahead of calls, so an edited greeting
    is never synthesised while a caller waits (the cache makes unchanged ones free)."""
    async with services.sessions() as session:
        texts = await script_texts(session)
    for text in texts:
        await services.prompts.prepare(text)
