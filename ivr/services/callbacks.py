"""Callbacks (R-H5): windows offered to the caller, the request, and calling back —
claiming due callbacks, one attempt at a time, never twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from ..calendar import WorkCalendar
from ..db.models import (
    Callback,
    CallbackAttempt,
    CallbackSource,
    CallbackStatus,
    CallbackWindow,
    Staff,
)
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


# --- calling back (R-H5) ------------------------------------------------------------------

# How an attempt ended → what it is called in callback_attempts.outcome.
ANSWERED = "answered"
STAFF_NO_ANSWER = "staff_no_answer"
DIAL_OUTCOMES = {"ANSWER": ANSWERED, "BUSY": "busy", "NOANSWER": "no_answer"}


@dataclass(frozen=True)
class Due:
    """A callback claimed for one attempt."""

    callback_id: int
    attempt_id: int
    phone: str
    topic: str | None
    question: str
    assignee_extension: str | None


def _window_at(callback: Callback, now: datetime) -> CallbackWindow | None:
    return next((w for w in callback.windows if w.starts_at <= now < w.ends_at), None)


def _next_window_start(callback: Callback, after: datetime) -> datetime | None:
    return min((w.starts_at for w in callback.windows if w.starts_at > after), default=None)


async def claim_due(
    sessions: async_sessionmaker[AsyncSession], now: datetime, *, limit: int = 20,
    stale_after: timedelta = timedelta(minutes=15),
) -> list[Due]:
    """Claim the callbacks due now for one attempt each, and open their attempts.

    Never doubled: on PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``, so a second
    scheduler skips what the first is claiming; on every backend the claim itself is a
    conditional update (``status = ready``) that only one of two racing claims can win.
    A callback outside its windows waits for the next one; past the last, it has failed.
    An attempt left "calling" (a restart mid-call) is closed after ``stale_after``.
    """
    claimed: list[Due] = []
    async with sessions() as session, session.begin():
        await _close_stale(session, now - stale_after, now)
        rows = (await session.scalars(
            select(Callback).options(selectinload(Callback.windows))
            .where(Callback.status == CallbackStatus.READY, Callback.next_attempt_at <= now)
            .order_by(Callback.next_attempt_at).limit(limit)
            .with_for_update(skip_locked=True, of=Callback))).all()
        for callback in rows:
            if _window_at(callback, now) is None:
                nxt = _next_window_start(callback, now)
                if nxt is None:
                    callback.status = CallbackStatus.FAILED  # every window has passed
                callback.next_attempt_at = nxt
                continue
            won = await session.execute(
                update(Callback).where(Callback.id == callback.id,
                                       Callback.status == CallbackStatus.READY)
                .values(status=CallbackStatus.CALLING)
                .execution_options(synchronize_session=False))
            if won.rowcount != 1:  # type: ignore[attr-defined]
                continue
            attempt = CallbackAttempt(callback_id=callback.id, started_at=now,
                                      staff_id=callback.assignee_id)
            session.add(attempt)
            await session.flush()
            extension = (await session.scalar(select(Staff.extension).where(
                Staff.id == callback.assignee_id)) if callback.assignee_id else None)
            claimed.append(Due(callback.id, attempt.id, callback.phone, callback.topic,
                               callback.question, extension))
    return claimed


async def _close_stale(session: AsyncSession, before: datetime, now: datetime) -> None:
    stale = (await session.scalars(select(CallbackAttempt).where(
        CallbackAttempt.outcome.is_(None), CallbackAttempt.started_at < before))).all()
    for attempt in stale:
        attempt.outcome, attempt.ended_at = "failed", now
        await session.execute(update(Callback).where(
            Callback.id == attempt.callback_id, Callback.status == CallbackStatus.CALLING,
        ).values(status=CallbackStatus.READY, next_attempt_at=now))


async def attempt_linked(
    sessions: async_sessionmaker[AsyncSession], attempt_id: int, linkedid: str
) -> Due | None:
    """The staff answered: tie the attempt to the conversation's call id."""
    async with sessions() as session, session.begin():
        attempt = await session.get(CallbackAttempt, attempt_id)
        if attempt is None:
            return None
        attempt.linkedid = linkedid
        callback = await session.get(Callback, attempt.callback_id)
        assert callback is not None
        return Due(callback.id, attempt.id, callback.phone, callback.topic, callback.question,
                   None)


async def finish_attempt(
    sessions: async_sessionmaker[AsyncSession], attempt_id: int, outcome: str, now: datetime,
    *, max_attempts: int, retry: timedelta,
) -> tuple[CallbackStatus, str] | None:
    """Record how an attempt ended (once: a repeat changes nothing) and what comes next:
    done after a conversation; otherwise another attempt ``retry`` later inside a window,
    or failed after ``max_attempts`` or the last window. Returns the callback's new status
    and the citizen's number; None when the attempt was already finished."""
    async with sessions() as session, session.begin():
        attempt = await session.get(CallbackAttempt, attempt_id)
        if attempt is None or attempt.outcome is not None:
            return None
        attempt.outcome, attempt.ended_at = outcome, now
        callback = await session.scalar(select(Callback).options(
            selectinload(Callback.windows), selectinload(Callback.attempts))
            .where(Callback.id == attempt.callback_id))
        assert callback is not None
        if outcome == ANSWERED:
            callback.status, callback.next_attempt_at = CallbackStatus.DONE, None
        elif len(callback.attempts) >= max_attempts:
            callback.status, callback.next_attempt_at = CallbackStatus.FAILED, None
        else:
            at = now + retry
            if not any(w.starts_at <= at < w.ends_at for w in callback.windows):
                at = _next_window_start(callback, at)  # type: ignore[assignment]
            callback.status = CallbackStatus.READY if at else CallbackStatus.FAILED
            callback.next_attempt_at = at
        return callback.status, callback.phone
