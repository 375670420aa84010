"""The working calendar's own days on top of the federal one (issue 28): regional holidays,
one-off closures (an emergency day off) and shortened days. :class:`ivr.calendar.WorkCalendar`
applies them; the IVR tells callers about them."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..calendar import DayRule
from ..db.models import CalendarDay
from .menu import Change, SetupError

KINDS = {
    "holiday": "региональный праздник",
    "closure": "внеплановый выходной",
    "short": "сокращённый день",
}


def _fields(row: CalendarDay) -> dict[str, Any]:
    return {"day": row.day.isoformat(), "kind": row.kind,
            "closes_at": row.closes_at.strftime("%H:%M") if row.closes_at else None,
            "note": row.note}


async def rules(session: AsyncSession) -> dict[date, DayRule]:
    rows = await session.scalars(select(CalendarDay))
    return {r.day: DayRule(r.kind, r.closes_at, r.note) for r in rows}


async def listed(session: AsyncSession, since: date) -> list[CalendarDay]:
    return list(await session.scalars(select(CalendarDay).where(CalendarDay.day >= since)
                                      .order_by(CalendarDay.day)))


def _checked(kind: str, closes_at: time | None, note: str) -> tuple[time | None, str]:
    if kind not in KINDS:
        raise SetupError("Вид дня выберите из списка: региональный праздник, внеплановый "
                         "выходной или сокращённый день.", "calendar_kind_invalid")
    if kind == "short" and closes_at is None:
        raise SetupError("Для сокращённого дня укажите, до которого часа работает линия.",
                         "calendar_closes_missing")
    note = " ".join(note.split())
    if len(note) > 200:
        raise SetupError("Пояснение: не длиннее 200 знаков.", "calendar_note_long")
    if kind == "closure" and not note:
        raise SetupError("Для внепланового выходного укажите причину: её услышат звонящие.",
                         "calendar_note_missing")
    return (closes_at if kind == "short" else None), note


async def save_day(session: AsyncSession, day: date, kind: str, closes_at: time | None,
                   note: str) -> Change:
    closes_at, note = _checked(kind, closes_at, note)
    row = await session.scalar(select(CalendarDay).where(CalendarDay.day == day))
    before = _fields(row) if row else None
    if row is None:
        row = CalendarDay(day=day)
        session.add(row)
    row.kind, row.closes_at, row.note = kind, closes_at, note
    await session.flush()
    return before, _fields(row)


async def remove_day(session: AsyncSession, day: date) -> Change:
    row = await session.scalar(select(CalendarDay).where(CalendarDay.day == day))
    if row is None:
        raise SetupError(f"{day:%d.%m.%Y}: в календаре нет особого дня.", "calendar_day_unknown")
    before = _fields(row)
    await session.delete(row)
    await session.flush()
    return before, None
