"""The menu, the queues and the calendar's own days as the running service sees them.

Read from the database and kept for :data:`MAX_AGE` seconds, so an administrator's change
reaches calls within a minute in every process (``--only agi`` too) without a query per
call. The menu prompt is rendered from the topics' titles before the new menu is used, so
a caller never waits for speech synthesis and never hears a menu that lists other topics.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..settings import Ivr
from ..tts import TTSError
from . import menu, work_days
from .menu import QueueSpec

if TYPE_CHECKING:
    from .container import Services

log = logging.getLogger(__name__)
MAX_AGE = 30.0


@dataclass(frozen=True)
class MenuSetup:
    ivr: Ivr
    queues: tuple[QueueSpec, ...]


class LiveMenu:
    def __init__(self) -> None:
        self._current: MenuSetup | None = None
        self._loaded = -math.inf
        self._lock = asyncio.Lock()

    async def fresh(self, services: Services) -> MenuSetup:
        """The current setup, read again when older than :data:`MAX_AGE`."""
        if self._current is None or time.monotonic() - self._loaded >= MAX_AGE:
            async with self._lock:
                if self._current is None or time.monotonic() - self._loaded >= MAX_AGE:
                    await self.reload(services)
        assert self._current is not None
        return self._current

    async def reload(self, services: Services) -> MenuSetup:
        """Read now: after a change made by this process, and when the cache is old."""
        self._loaded = time.monotonic()
        try:
            await _seed(services)
            async with services.sessions() as session:
                topics = await menu.topics(session)
                queues = await menu.queues(session)
                days = await work_days.rules(session)
        except (SQLAlchemyError, OSError):
            # The database is away: calls go on with what was read last (or the settings).
            log.exception("could not read the IVR menu from the database")
            if self._current is None:
                ivr = services.settings.ivr
                self._current = MenuSetup(ivr, tuple(menu.seed_queues(ivr)))
            return self._current
        found = MenuSetup(menu.menu_of(services.settings, topics), tuple(queues))
        await _speak(services, found.ivr)
        services.calendar.set_rules(days)
        self._current = found
        return found


async def _seed(services: Services) -> None:
    try:
        async with services.sessions() as session, session.begin():
            if await menu.seed(session, services.settings):
                log.info("IVR queues and menu seeded from the settings")
    except IntegrityError:
        pass  # another process seeded it at the same moment


async def _speak(services: Services, ivr: Ivr) -> None:
    """Render the menu prompt from the topics, then let ``prompts.path("menu")`` find it."""
    text = ivr.menu_text()
    prompts = services.prompts
    if prompts.texts.get("menu") == text:
        return
    try:
        await prompts.prepare(text, personal=False)  # the ministry's own topics only
    except (TTSError, OSError):
        log.exception("could not render the menu prompt; the previous one is kept")
        return
    prompts.texts["menu"] = text
