"""One path for every change of the IVR setup, from the panel, the API and the CLI: the
change and its audit entry (who, before, after) in one transaction, the live menu re-read,
and Asterisk's queues rewritten and reloaded when the queues changed."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from .ami import AMIClient
from .asterisk_queues import apply_queues
from .db.models import AuditEntry
from .services.container import Services
from .services.menu import Change

Step = Callable[[AsyncSession], Awaitable[Change]]


@dataclass(frozen=True)
class Applied:
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    # What kept Asterisk from taking the change (Russian); "" when it did.
    warning: str


@dataclass(frozen=True)
class Who:
    staff_id: int | None
    remote: str = ""   # the panel's client address, "cli" for the command line


async def apply_change(services: Services, ami: AMIClient | None, who: Who, *,
                       object_type: str, object_id: str, step: Step,
                       queues: bool = False) -> Applied:
    """Run ``step`` (a change of :mod:`ivr.services.menu` or ``work_days``) and audit it;
    ``queues``: Asterisk's queues.conf depends on it."""
    await services.menu.fresh(services)  # a fresh database gets the settings' seed first
    async with services.sessions() as session, session.begin():
        before, after = await step(session)
        action = "create" if before is None else "delete" if after is None else "update"
        details = json.dumps({"before": before, "after": after}, ensure_ascii=False)
        session.add(AuditEntry(staff_id=who.staff_id, action=action,
                               object_type=object_type, object_id=object_id[:60],
                               details=details[:2000], remote_addr=who.remote[:60]))
    setup = await services.menu.reload(services)
    warning = await apply_queues(services.settings, setup.queues, ami) if queues else ""
    return Applied(before, after, warning)
