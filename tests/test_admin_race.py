"""The last administrator under concurrency (issue 28): two administrators disabling each
other at the same moment must leave one of them. PostgreSQL only: SQLite takes one writer
at a time anyway."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.db.models import Role, Staff
from ivr.services import admin
from ivr.services.container import Services
from ivr.simulate import wait_until

pytestmark = pytest.mark.parametrize("db_url", [pytest.param(
    "postgres", marks=pytest.mark.postgres)], indirect=True)


async def _staff(session: AsyncSession, login: str) -> Staff:
    found = await session.scalar(select(Staff).where(Staff.login == login))
    assert found is not None
    return found


async def test_two_administrators_cannot_disable_each_other_at_once(svc: Services) -> None:
    async with svc.sessions() as s, s.begin():
        await s.execute(update(Staff).where(Staff.login == "smirnova").values(
            role=Role.ADMINISTRATOR))
    now = svc.clock()
    async with svc.sessions() as first, svc.sessions() as second:
        await first.begin()
        orlov, smirnova = await _staff(first, "orlov"), await _staff(first, "smirnova")
        await admin.disable_staff(first, svc.settings, smirnova, now, who=orlov.id)

        async def other_way() -> None:
            async with second.begin():
                await admin.disable_staff(second, svc.settings, await _staff(second, "orlov"),
                                          now, who=smirnova.id)

        racing = asyncio.ensure_future(other_way())

        async def blocked() -> bool:
            async with svc.engine.connect() as c:
                waiting = await c.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                              "WHERE wait_event_type = 'Lock'"))
            return racing.done() or bool(waiting)

        await wait_until(blocked, 10, "the second administrator's count waits or ends")
        assert not racing.done(), "counted before the first change was committed"
        await first.commit()
        with pytest.raises(admin.AdminError, match="последний администратор"):
            await racing
    async with svc.sessions() as s:
        active = (await s.scalars(select(Staff.login).where(
            Staff.role == Role.ADMINISTRATOR, Staff.active))).all()
    assert active == ["orlov"]
