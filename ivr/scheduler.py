"""Periodic jobs, each isolated: one failing job is logged and retried next period.

Jobs are registered in one table (``JOBS``); callbacks, notices, reminders and retention
jobs join it as their issues land.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .services.container import Services

log = logging.getLogger(__name__)

Job = Callable[[Services], Awaitable[object]]


@dataclass(frozen=True)
class Periodic:
    name: str
    every_seconds: float
    job: Job


def _jobs() -> list[Periodic]:
    from .services.appeals import render_statuses
    from .services.kb import render_scripts

    return [Periodic("render-kb-scripts", 60, render_scripts),
            Periodic("render-appeal-statuses", 30, render_statuses)]


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
            try:
                await job.job(self.services)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduled job %s failed; retrying in %ss", job.name,
                              job.every_seconds)
            await asyncio.sleep(job.every_seconds)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
