"""Appeals as the IVR reports them: lookup and who may hear the status."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..db.models import Agency, Appeal, CitizenPhone, Staff
from ..phone import normalise
from ..phrases import appeal_status_text
from .container import Services

RENDER_FIRST_DAYS = 30   # on start-up, statuses changed this recently are rendered
RENDER_BATCH = 500       # at most this many per run; the next run goes on from there


async def find_appeal(session: AsyncSession, reg_number: str) -> Appeal | None:
    return await session.scalar(select(Appeal).where(Appeal.reg_number == reg_number.strip()))


async def linked_to_caller(session: AsyncSession, appeal: Appeal, caller: str) -> bool:
    """Is the calling number the appeal's own (given in it, or one of its citizen's)?"""
    caller = normalise(caller)
    if not caller:
        return False
    if appeal.contact_phone and normalise(appeal.contact_phone) == caller:
        return True
    if appeal.citizen_id is None:
        return False
    owner = await session.scalar(select(CitizenPhone.citizen_id).where(
        CitizenPhone.phone == caller, CitizenPhone.citizen_id == appeal.citizen_id))
    return owner is not None


def second_factor_ok(appeal: Appeal, last_four: str) -> bool:
    phone = normalise(appeal.contact_phone)
    return len(last_four) == 4 and len(phone) >= 4 and phone.endswith(last_four)


async def executor_of(session: AsyncSession, appeal: Appeal) -> Staff | None:
    if appeal.executor_id is None:
        return None
    return await session.get(Staff, appeal.executor_id, options=[selectinload(Staff.department)])


async def agency_of(session: AsyncSession, appeal: Appeal) -> Agency | None:
    if appeal.redirected_to_id is None:
        return None
    return await session.get(Agency, appeal.redirected_to_id)


async def render_statuses(services: Services) -> int:
    """Scheduled: speak-ready audio of every appeal status that changed since the last run
    (the first run: the last ``RENDER_FIRST_DAYS`` days), so a caller asking for it hears it
    at once. The text depends only on the appeal, its executor and the agency, so the
    cache by text hash keeps it until one of them changes. Returns how many were rendered."""
    since = services.marks.get("appeal-statuses",
                               services.clock() - timedelta(days=RENDER_FIRST_DAYS))
    async with services.sessions() as session:
        appeals = list(await session.scalars(
            select(Appeal).where(Appeal.updated_at > since)
            .order_by(Appeal.updated_at).limit(RENDER_BATCH)))
        texts = []
        for appeal in appeals:
            texts.append(appeal_status_text(
                services.prompts, appeal, executor=await executor_of(session, appeal),
                agency=await agency_of(session, appeal), tz=services.calendar.tz))
    for text in texts:
        await services.prompts.prepare(text)
    if appeals:
        services.marks["appeal-statuses"] = appeals[-1].updated_at
    return len(texts)
