"""The shared pieces, built once and handed to every part (AGI flows, AMI, web, scheduler)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ..calendar import WorkCalendar
from ..db.engine import make_engine, make_sessionmaker
from ..settings import Settings
from ..tts import PromptLibrary


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    calendar: WorkCalendar
    prompts: PromptLibrary
    # The one source of "now" for flows and jobs; tests pin it.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Knowledge-base scripts by key (script.greeting, …), kept fresh by the scheduler.
    scripts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        engine = make_engine(settings.database.url, echo=settings.database.echo)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            calendar=WorkCalendar(settings.organisation),
            prompts=PromptLibrary(settings.tts, settings.prompts),
        )

    async def close(self) -> None:
        await self.engine.dispose()
