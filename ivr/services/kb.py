"""Knowledge-base lookups the IVR needs: the scripts it speaks (R-H3), agency contacts (R-H7)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Agency, KbArticle
from .container import Services

GREETING = "script.greeting"
FAREWELL = "script.farewell"


async def agency_by_name(session: AsyncSession, name: str) -> Agency | None:
    return await session.scalar(select(Agency).where(Agency.name == name))


async def script_texts(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(KbArticle.key, KbArticle.body).where(
        KbArticle.key.like("script.%"), KbArticle.archived.is_(False)))
    return {key: body for key, body in rows.tuples() if key}


async def render_scripts(services: Services) -> None:
    """Scheduled: render the knowledge base's scripts ahead of calls and hand them to the
    flows in memory, so no call waits for a query or for speech synthesis. An edited script
    reaches callers within one period (the cache makes unchanged ones free)."""
    async with services.sessions() as session:
        texts = await script_texts(session)
    for text in texts.values():
        await services.prompts.prepare(text)
    services.scripts = texts
