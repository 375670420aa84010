"""Callback requests (R-H5): windows offered to the caller and the record of the request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..calendar import WorkCalendar
from ..db.models import Callback, CallbackSource, CallbackStatus, CallbackWindow
from ..phone import normalise
from .calls import call_id_for


@dataclass(frozen=True)
class Window:
    start: datetime  # aware, organisation's zone
    end: datetime


def offered_windows(calendar: WorkCalendar, now: datetime, days: int) -> list[Window]:
    """The open periods (split by lunch) of the next ``days`` working days, not today:
    a request taken now is prepared and called back from the next working day on."""
    today = calendar.today(now)
    windows: list[Window] = []
    seen_days: set[object] = set()
    for period in calendar.upcoming_periods(now, days=30):
        day = period.start.date()
        if day == today:
            continue
        seen_days.add(day)
        if len(seen_days) > days:
            break
        windows.append(Window(period.start, period.end))
    return windows


def question_key(text: str) -> str:
    return " ".join(text.lower().split())[:200]


async def create_callback(
    sessions: async_sessionmaker[AsyncSession], *, phone: str, windows: list[Window],
    source: CallbackSource, linkedid: str | None = None, topic: str | None = None,
    question: str = "",
) -> int | None:
    """The new callback's id, or None when an open one for this number and question exists
    (never doubled)."""
    async with sessions() as session:
        try:
            async with session.begin():
                call_id = await call_id_for(session, linkedid) if linkedid else None
                callback = Callback(
                    phone=normalise(phone), call_id=call_id, source=source, topic=topic,
                    question=question, question_key=question_key(question),
                    status=CallbackStatus.READY,
                    next_attempt_at=windows[0].start if windows else None,
                    windows=[CallbackWindow(starts_at=w.start, ends_at=w.end) for w in windows],
                )
                session.add(callback)
                await session.flush()
                return callback.id
        except IntegrityError:
            return None
