"""Callbacks (R-H5): windows offered to the caller, the request, and calling back —
claiming due callbacks, one attempt at a time, never twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

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
    Channel,
    Notification,
    NotificationStatus,
    Staff,
)
from ..dialling import DEFAULT, DiallingPolicy
from .calls import call_id_for


@dataclass(frozen=True)
class Window:
    start: datetime  # aware, organisation's zone
    end: datetime

    @property
    def key(self) -> str:
        """Names the window in a form: its end, which (unlike the start of today's window,
        cut to the present moment) stays the same while the form is open."""
        return f"{self.end:%Y-%m-%dT%H:%M}"


# Today's open period is offered while at least this much of it is left.
SAME_DAY_LEAD = timedelta(minutes=30)


def offered_windows(calendar: WorkCalendar, now: datetime, days: int) -> list[Window]:
    """What is left of today's open periods (from now on, while at least
    :data:`SAME_DAY_LEAD` of one remains), then the open periods (split by lunch) of the
    next ``days`` working days."""
    local_now = calendar.local(now).replace(second=0, microsecond=0)
    today = local_now.date()
    windows: list[Window] = []
    seen_days: set[object] = set()
    for period in calendar.upcoming_periods(now, days=30):
        day = period.start.date()
        if day == today:
            start = max(period.start, local_now)
            if period.end - start >= SAME_DAY_LEAD:
                windows.append(Window(start, period.end))
            continue
        seen_days.add(day)
        if len(seen_days) > days:
            break
        windows.append(Window(period.start, period.end))
    return windows


class CallbackRejected(ValueError):
    """The operator's callback form is not acceptable: a Russian message and a stable id."""

    def __init__(self, message: str, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


def check_deadline(calendar: WorkCalendar, now: datetime, deadline: date | None,
                   max_working_days: int) -> date:
    """The answer's deadline told to the caller (R-H5): today or later, a working day, at
    most ``max_working_days`` working days ahead."""
    if deadline is None:
        raise CallbackRejected("Укажите срок ответа, названный гражданину.", "no_deadline")
    today = calendar.today(now)
    if deadline < today:
        raise CallbackRejected("Срок ответа уже прошёл: укажите сегодняшнюю или более "
                               "позднюю дату.", "deadline_past")
    if not calendar.is_working_day(deadline):
        raise CallbackRejected("Срок ответа приходится на выходной или праздничный день: "
                               "укажите рабочий день.", "deadline_day_off")
    latest = calendar.add_working_days(today, max_working_days)
    if deadline > latest:
        raise CallbackRejected(f"Срок ответа — не позднее {latest:%d.%m.%Y} "
                               f"({max_working_days} рабочих дней).", "deadline_too_far")
    return deadline


def choose_windows(offered: list[Window], keys: list[str]) -> list[Window]:
    """The windows the caller chose, from those offered; at least one."""
    chosen = [w for w in offered if w.key in set(keys)]
    if not chosen or len(chosen) != len(set(keys)):
        raise CallbackRejected("Отметьте хотя бы одно удобное гражданину время звонка из "
                               "предложенных.", "no_window")
    return chosen


def question_key(text: str) -> str:
    return " ".join(text.lower().split())[:200]


async def create_callback(
    sessions: async_sessionmaker[AsyncSession], *, phone: str, windows: list[Window],
    source: CallbackSource, policy: DiallingPolicy = DEFAULT, linkedid: str | None = None,
    topic: str | None = None, question: str = "", promised_date: date | None = None,
    waiting_info: bool = False,
) -> int | None:
    """The new callback's id, or None when an open one for this number and question exists
    (never doubled). A number the dialling policy refuses raises
    :class:`~ivr.dialling.NumberRefused`: it is never taken, so never dialled.
    ``waiting_info``: a department prepares the answer first; the dialer leaves the
    callback alone until the answer is ready (:func:`answer_ready`)."""
    number = policy.decide(phone)
    status = CallbackStatus.WAITING_INFO if waiting_info else CallbackStatus.READY
    async with sessions() as session:
        try:
            async with session.begin():
                call_id = await call_id_for(session, linkedid) if linkedid else None
                callback = Callback(
                    phone=number, call_id=call_id, source=source, topic=topic,
                    question=question, question_key=question_key(question),
                    status=status, promised_date=promised_date,
                    next_attempt_at=windows[0].start if windows and not waiting_info
                    else None,
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
# The dialling policy refused the number at the last gate: no attempt will ever be made.
NUMBER_REFUSED = "number_refused"
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
        if callback.status in CLOSED:
            pass  # marked done from the worklist meanwhile: an attempt never reopens it
        elif outcome == ANSWERED:
            callback.status, callback.next_attempt_at = CallbackStatus.DONE, None
        elif outcome == NUMBER_REFUSED or len(callback.attempts) >= max_attempts:
            callback.status, callback.next_attempt_at = CallbackStatus.FAILED, None
        else:
            at = now + retry
            if not any(w.starts_at <= at < w.ends_at for w in callback.windows):
                at = _next_window_start(callback, at)  # type: ignore[assignment]
            callback.status = CallbackStatus.READY if at else CallbackStatus.FAILED
            callback.next_attempt_at = at
        return callback.status, callback.phone


# --- the worklist (R-H5): take, answer ready, call now, done -----------------------------

CLOSED = (CallbackStatus.DONE, CallbackStatus.CANCELLED)
# "Call now" starts from any open callback that is not being called already.
CALLABLE = (CallbackStatus.READY, CallbackStatus.WAITING_INFO, CallbackStatus.FAILED)


async def take(sessions: async_sessionmaker[AsyncSession], callback_id: int,
               staff: Staff) -> bool:
    """Assign an open callback to ``staff`` (and their department)."""
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(Callback).where(Callback.id == callback_id, Callback.status.not_in(CLOSED))
            .values(assignee_id=staff.id, department_id=staff.department_id))
        return bool(done.rowcount)  # type: ignore[attr-defined]


async def answer_ready(sessions: async_sessionmaker[AsyncSession], callback_id: int,
                       now: datetime) -> bool:
    """The department's answer is ready: the callback is dialled from now on, inside its
    windows (at once when one is open now)."""
    async with sessions() as session, session.begin():
        callback = await session.scalar(select(Callback).options(
            selectinload(Callback.windows)).where(Callback.id == callback_id))
        if callback is None or callback.status != CallbackStatus.WAITING_INFO:
            return False
        callback.status = CallbackStatus.READY
        callback.next_attempt_at = now if _window_at(callback, now) else \
            _next_window_start(callback, now)
        return True


async def claim_now(sessions: async_sessionmaker[AsyncSession], callback_id: int,
                    staff: Staff, now: datetime) -> Due | None:
    """Open an attempt by ``staff`` at once, outside the schedule ("call now"); None when
    the callback is closed or being called."""
    async with sessions() as session, session.begin():
        won = await session.execute(
            update(Callback).where(Callback.id == callback_id, Callback.status.in_(CALLABLE))
            .values(status=CallbackStatus.CALLING)
            .execution_options(synchronize_session=False))
        if won.rowcount != 1:  # type: ignore[attr-defined]
            return None
        callback = await session.get(Callback, callback_id)
        assert callback is not None
        attempt = CallbackAttempt(callback_id=callback_id, started_at=now, staff_id=staff.id)
        session.add(attempt)
        await session.flush()
        return Due(callback.id, attempt.id, callback.phone, callback.topic,
                   callback.question, staff.extension)


async def mark_done(sessions: async_sessionmaker[AsyncSession], callback_id: int,
                    answer: str) -> bool:
    """The answer given to the citizen; the callback is done. Once: an answer recorded
    is not overwritten."""
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(Callback).where(Callback.id == callback_id,
                                   Callback.status != CallbackStatus.CANCELLED,
                                   Callback.answer_text.is_(None))
            .values(status=CallbackStatus.DONE, answer_text=answer, next_attempt_at=None))
        return bool(done.rowcount)  # type: ignore[attr-defined]


REMINDER_KIND = "callback_due"


async def remind_due(sessions: async_sessionmaker[AsyncSession], calendar: WorkCalendar,
                     now: datetime) -> int:
    """E-mail the assignee of each callback still waiting for the department's answer on
    or past its deadline (R-H5), once per deadline, during working hours; the notice
    sender (:mod:`ivr.notifier`) delivers it. The number of reminders queued."""
    if not calendar.is_open(now):
        return 0
    today = calendar.today(now)
    queued = 0
    async with sessions() as session, session.begin():
        rows = (await session.execute(
            select(Callback, Staff.email).join(Staff, Staff.id == Callback.assignee_id)
            .where(Callback.status == CallbackStatus.WAITING_INFO,
                   Callback.promised_date <= today, Staff.email.is_not(None)))).all()
        for callback, email in rows:
            key = f"callback:{callback.id}:due:{callback.promised_date}:email"
            if await session.scalar(select(Notification.id).where(
                    Notification.dedup_key == key)) is not None:
                continue
            session.add(Notification(
                dedup_key=key, kind=REMINDER_KIND, channel=Channel.EMAIL, address=email,
                subject=f"Обратный звонок № {callback.id}: срок ответа "
                        f"{callback.promised_date:%d.%m.%Y}",
                body=_reminder_text(callback), status=NotificationStatus.PENDING,
                next_attempt_at=now))
            queued += 1
    return queued


def _reminder_text(callback: Callback) -> str:
    return (f"Гражданину обещан ответ до {callback.promised_date:%d.%m.%Y}, обратный звонок "
            f"№ {callback.id} ждёт ответа подразделения.\n"
            f"Вопрос: {callback.question or 'не записан'}\n\n"
            "Когда ответ будет готов, отметьте «Ответ готов» или позвоните гражданину сами: "
            "панель → «Обратные звонки».")
