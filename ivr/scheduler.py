"""Periodic jobs, each isolated: one failing job is logged and retried next period.

Jobs are registered in one table (``JOBS``); the runner adds the two that need an AMI link
(calling back, sending notices).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .services.container import Services

if TYPE_CHECKING:
    from .services.retention import RetentionReport

log = logging.getLogger(__name__)

Job = Callable[[Services], Awaitable[object]]


@dataclass(frozen=True)
class Periodic:
    name: str
    every_seconds: float
    job: Job


async def reception_slots(services: Services) -> int:
    from .services.receptions import generate_slots

    return await generate_slots(services.sessions, services.calendar,
                                services.calendar.today(services.clock()),
                                services.settings.reception.days_ahead)


async def reception_reminders(services: Services) -> int:
    from .services.receptions import send_due_reminders

    return await send_due_reminders(services.sessions, services.settings, services.calendar,
                                     services.clock())


async def callback_reminders(services: Services) -> int:
    from .services.callbacks import remind_due

    return await remind_due(services.sessions, services.calendar, services.clock())


async def retention(services: Services) -> RetentionReport:
    """Personal data past its period anonymised or removed (R-A9, 152-ФЗ)."""
    from .services.retention import apply_retention

    now = services.clock()
    report = await apply_retention(services.sessions, services.settings,
                                   services.calendar.today(now), now)
    if report.changed:
        log.info("retention: %s", report)
    return report


async def refresh_menu(services: Services) -> int:
    """The menu, queues and calendar days re-read (the calendar decides deadlines too)."""
    found = await services.menu.reload(services)
    return len(found.ivr.topics)


async def store_recordings(services: Services) -> int:
    """Finished call recordings compressed off the call path and linked (issue 30)."""
    from .recordings import store_finished

    return await store_finished(services)


def _jobs() -> list[Periodic]:
    from .services.appeals import render_statuses

    # The knowledge base's scripts are kept by the processes that speak or show them
    # (ivr.runner._scripts), not here.
    return [Periodic("refresh-ivr-menu", 30, refresh_menu),
            Periodic("render-appeal-statuses", 30, render_statuses),
            Periodic("reception-slots", 3600, reception_slots),
            Periodic("reception-reminders", 30, reception_reminders),
            Periodic("callback-reminders", 300, callback_reminders),
            Periodic("store-recordings", 5, store_recordings),
            Periodic("retention", 6 * 3600, retention)]


JOBS: list[Periodic] = _jobs()


class Scheduler:
    def __init__(self, services: Services, jobs: list[Periodic] | None = None) -> None:
        self.services = services
        self.jobs = list(JOBS if jobs is None else jobs)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self.jobs:
            log.info("scheduler: no periodic jobs registered")
        for job in self.jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"job:{job.name}"))

    async def _loop(self, job: Periodic) -> None:
        while True:
            ok = False
            try:
                await job.job(self.services)
                ok = True
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduled job %s failed; retrying in %ss", job.name,
                              job.every_seconds)
            self.services.metrics.job_ran(job.name, job.every_seconds, ok)
            await asyncio.sleep(job.every_seconds)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
