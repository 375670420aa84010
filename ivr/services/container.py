"""The shared pieces, built once and handed to every part (AGI flows, AMI, web, scheduler)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ..calendar import WorkCalendar
from ..db.engine import make_engine, make_sessionmaker
from ..metrics import Metrics
from ..recorder import CallRecorder
from ..settings import Settings
from ..tts import PromptLibrary
from .live_menu import LiveMenu


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    calendar: WorkCalendar
    prompts: PromptLibrary
    # Call facts (arrival, menu keys, outcome, hangup), written in batches.
    recorder: CallRecorder
    # The one source of "now" for flows and jobs; tests pin it.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Knowledge-base scripts by key (script.greeting, …), kept fresh by the scheduler.
    scripts: dict[str, str] = field(default_factory=dict)
    # Scheduled jobs' progress marks ("done up to this time"), by job.
    marks: dict[str, datetime] = field(default_factory=dict)
    # The IVR menu, queues and calendar days from the database, re-read within a minute.
    menu: LiveMenu = field(default_factory=LiveMenu)
    # This process's figures for /metrics (ivr.metrics).
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        db = settings.database
        engine = make_engine(db.url, echo=db.echo)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            calendar=WorkCalendar(settings.organisation),
            prompts=PromptLibrary(settings.tts, settings.prompts),
            recorder=CallRecorder(engine, spool=_spool_file(db.spool_dir, db.url),
                                  batch=db.batch_size, interval=db.batch_interval,
                                  max_spool_bytes=db.spool_max_mb * 1024 * 1024),
        )

    async def close(self) -> None:
        await self.recorder.close()
        await self.engine.dispose()


def _spool_file(spool_dir: Path, url: str) -> Path:
    """One spool per database: facts spooled for one are never replayed into another."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(spool_dir) / f"calls-{digest}.jsonl"
