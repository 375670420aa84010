"""The object-level rules of the route policies (``check=`` in :mod:`web.policy`).

Each takes the request and the :class:`~web.policy.Actor` the route's roles let in, and
raises :class:`~web.errors.PolicyDenied` (or :class:`~web.errors.NotFound`) when the
regulations say this employee may not touch this object:

- an appeal is routed, assigned, redirected, answered and completed only by its own
  department, or by a supervisor; the executor named to the citizen is the employee who
  signs, or one the department head picks from the department (R-A8);
- a call's journal (R-H6) is written by the operators who spoke on that call, or by a
  supervisor;
- an operator sees the card of the call they are on, and of the citizen on that call the
  appeals and the history; other citizens' records are for appeal staff by role;
- a knowledge-base section is changed by its own department: its head and the editors the
  head named (R-K1); anyone may mark an article «изменились сведения».
- a call's recordings are heard by the overseers (supervisor, administrator) and by the
  employees who spoke on the call (issue 30).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from aiohttp import web
from sqlalchemy import exists, or_, select

from ivr.db.models import (
    Appeal,
    Booking,
    Call,
    CallbackAttempt,
    CallLeg,
    CallRecording,
    CitizenPhone,
    KbArticle,
    KbSection,
    Role,
    Staff,
    Transfer,
    TransferOutcome,
)
from ivr.phone import normalise
from ivr.services import kb

from .app_keys import SERVICES
from .errors import NotFound, PolicyDenied
from .policy import APPEAL_STAFF, Actor


def _route_id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _int(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


# --- appeals ---------------------------------------------------------------------------------

async def _appeal(request: web.Request) -> Appeal:
    async with request.app[SERVICES].sessions() as session:
        appeal = await session.get(Appeal, _route_id(request))
    if appeal is None:
        raise NotFound("Обращение не найдено.", "appeal_not_found")
    return appeal


async def appeal_department(request: web.Request, actor: Actor) -> None:
    """Its own department or a supervisor. An appeal not yet routed (no department) is
    routed by a department head, who takes it into their department, or a supervisor."""
    appeal = await _appeal(request)
    if actor.overseer:
        return
    if appeal.department_id is None:
        if actor.role is Role.DEPARTMENT_HEAD:
            return
        raise PolicyDenied("Обращение ещё не распределено: его направляет руководитель "
                           "подразделения.", "appeal_not_routed")
    if appeal.department_id != actor.department_id:
        raise PolicyDenied("Обращение рассматривает другое подразделение.",
                           "appeal_other_department")


def executor_id(form: Mapping[str, object], actor: Actor) -> int:
    """The executor a form names: ``executor_id``, or the employee who sends it."""
    return _int(form.get("executor_id")) or actor.staff_id


async def appeal_executor(request: web.Request, actor: Actor) -> None:
    """:func:`appeal_department`, and R-A8: the executor is the employee who signs, or one
    the department head picks from their department; a supervisor picks anyone."""
    await appeal_department(request, actor)
    chosen = executor_id(await request.post(), actor)
    if chosen == actor.staff_id or actor.overseer:
        return
    if actor.role is Role.DEPARTMENT_HEAD:
        async with request.app[SERVICES].sessions() as session:
            department = await session.scalar(select(Staff.department_id).where(
                Staff.id == chosen))
        if department is None or department == actor.department_id:
            return   # an unknown employee: the service says so
    raise PolicyDenied("Исполнителем может быть сотрудник, который подписывает ответ, или "
                       "сотрудник подразделения, которого выбрал его руководитель.",
                       "appeal_executor")


# --- the call an employee is on ----------------------------------------------------------------

async def my_call(request: web.Request, actor: Actor,
                  ringing: bool = False) -> dict[str, str] | None:
    """The call the employee's phone is on now, as Asterisk told the panel's hub
    (``linkedid``, ``caller``); after a panel restart, their open leg in the records.
    ``ringing``: a queue call ringing their phone counts too (the card pops before the
    answer)."""
    from .workspace import HUB

    svc = request.app[SERVICES]
    async with svc.sessions() as session:
        extension = await session.scalar(select(Staff.extension).where(
            Staff.id == actor.staff_id))
        hub = request.app.get(HUB)
        if extension and hub is not None and extension in hub.current:
            return hub.current[extension]
        if ringing and extension and hub is not None and extension in hub.ringing:
            return hub.ringing[extension]
        found = (await session.execute(
            select(Call.linkedid, Call.caller_number).join(CallLeg, CallLeg.call_id == Call.id)
            .where(CallLeg.operator_id == actor.staff_id, CallLeg.ended_at.is_(None))
            .order_by(CallLeg.answered_at.desc()).limit(1))).first()
    return {"linkedid": found[0], "caller": found[1]} if found else None


async def on_the_call(request: web.Request, actor: Actor) -> None:
    """The citizen's card: the employee on that call (``?linkedid=``), or a supervisor."""
    if actor.overseer:
        return
    linkedid = request.query.get("linkedid", "")
    current = await my_call(request, actor, ringing=True)
    if linkedid and current is not None and current.get("linkedid") == linkedid:
        return
    raise PolicyDenied("Карточка гражданина открывается сотруднику, который сейчас "
                       "разговаривает с ним.", "card_not_your_call")


async def talking_on_the_call(request: web.Request, actor: Actor) -> None:
    """Ending a conversation (to the rating, R-H8): only the employee talking on that call
    (form ``linkedid``) right now; a supervisor has no part in it."""
    linkedid = str((await request.post()).get("linkedid", ""))
    current = await my_call(request, actor)
    if linkedid and current is not None and current.get("linkedid") == linkedid:
        return
    raise PolicyDenied("Завершить разговор может только сотрудник, который сейчас "
                       "разговаривает с гражданином.", "survey_not_your_call")


async def _spoke(request: web.Request, actor: Actor, linkedid: str) -> bool:
    async with request.app[SERVICES].sessions() as session:
        return bool(await session.scalar(select(exists().where(
            Call.linkedid == linkedid,
            or_(Call.operator_id == actor.staff_id,
                exists().where(CallLeg.call_id == Call.id,
                               CallLeg.operator_id == actor.staff_id),
                exists().where(Transfer.call_id == Call.id,
                               Transfer.to_staff_id == actor.staff_id,
                               Transfer.outcome == TransferOutcome.COMPLETED))))))


async def spoke_on_the_call(request: web.Request, actor: Actor) -> None:
    """R-H6: the journal of the call (form ``linkedid``) is written by an employee who
    answered it or took it by transfer, or by a supervisor (``?linkedid=`` for the form)."""
    if actor.overseer:
        return
    linkedid = (request.query.get("linkedid", "") if request.method == "GET"
                else str((await request.post()).get("linkedid", "")))
    current = await my_call(request, actor)
    if linkedid and current is not None and current.get("linkedid") == linkedid:
        return
    if linkedid and not await _spoke(request, actor, linkedid):
        # The leg may still be in this process's recorder batch.
        with contextlib.suppress(TimeoutError):
            await request.app[SERVICES].recorder.sync(timeout=2)
    if linkedid and await _spoke(request, actor, linkedid):
        return
    raise PolicyDenied("Журнал звонка ведут сотрудники, которые разговаривали с гражданином, "
                       "и руководитель контакт-центра.", "journal_not_your_call")


# --- a citizen's records ---------------------------------------------------------------------

async def _caller_is(request: web.Request, actor: Actor, citizen_id: int | None) -> bool:
    """Is this citizen the caller on the employee's current call?"""
    current = await my_call(request, actor)
    number = normalise(current.get("caller", "")) if current else ""
    if citizen_id is None or not number:
        return False
    async with request.app[SERVICES].sessions() as session:
        return bool(await session.scalar(select(exists().where(
            CitizenPhone.citizen_id == citizen_id, CitizenPhone.phone == number))))


async def booking_of_the_caller(request: web.Request, actor: Actor) -> None:
    """Cancelling a booking from the card (R-P4): an operator, only a booking of the
    citizen on their call; appeal staff (specialists, heads, overseers) any, as in the
    reception register."""
    if actor.role in APPEAL_STAFF:
        return
    text = str((await request.post()).get("booking_id", "")).strip()
    if not text.isdigit() or len(text) > 9:
        return   # the handler says the booking is not named
    async with request.app[SERVICES].sessions() as session:
        citizen_id = await session.scalar(select(Booking.citizen_id).where(
            Booking.id == int(text)))
    if citizen_id is not None and await _caller_is(request, actor, citizen_id):
        return
    raise PolicyDenied("Отменить запись на приём из карточки можно только гражданину, "
                       "с которым вы сейчас разговариваете.", "booking_not_your_caller")


async def booking_keeper(request: web.Request, actor: Actor) -> None:
    """The reception register's cancel and attendance marks (R-P4): appeal staff any
    booking; an operator only cancels, and only a booking they made or one of the citizen
    on their call."""
    if actor.role in APPEAL_STAFF:
        return
    async with request.app[SERVICES].sessions() as session:
        found = (await session.execute(select(Booking.booked_by_id, Booking.citizen_id).where(
            Booking.id == int(request.match_info["id"])))).first()
    if found is None:
        return   # the handler says there is no such booking
    if request.match_info.get("action") == "cancel" and (
            found.booked_by_id == actor.staff_id
            or await _caller_is(request, actor, found.citizen_id)):
        return
    raise PolicyDenied("Отменить запись на приём оператор может, только если сам её сделал "
                       "или говорит сейчас с этим гражданином; явку отмечают сотрудники "
                       "приёма.", "booking_not_yours")


async def appeal_reader(request: web.Request, actor: Actor) -> None:
    """An appeal's card: appeal staff by role; an operator, the appeals of the citizen on
    their call."""
    appeal = await _appeal(request)
    if actor.role in APPEAL_STAFF or await _caller_is(request, actor, appeal.citizen_id):
        return
    raise PolicyDenied("Обращения граждан доступны сотрудникам, которые их рассматривают; "
                       "оператору — обращения гражданина, с которым он разговаривает.",
                       "appeal_not_your_caller")


async def citizen_reader(request: web.Request, actor: Actor) -> None:
    """A citizen's five-year history (R-A9): appeal staff by role; an operator, of the
    citizen on their call."""
    if actor.role in APPEAL_STAFF or await _caller_is(request, actor, _route_id(request)):
        return
    raise PolicyDenied("История обращений доступна сотрудникам, которые рассматривают "
                       "обращения; оператору — гражданина, с которым он разговаривает.",
                       "citizen_not_your_caller")


# --- the knowledge base (R-K1) ---------------------------------------------------------------

async def own_kb_section(request: web.Request, actor: Actor) -> None:
    """``/panel/kb/sections/{id}`` and ``/panel/kb/articles/{id}``: changed by the
    section's department (its head, the editors the head named); editors are named by
    that head; «изменились сведения» by anyone."""
    form = await request.post()
    async with request.app[SERVICES].sessions() as session:
        if "/articles/" in request.path:
            if form.get("action") == "changed":
                return
            section_id = await session.scalar(select(KbArticle.section_id).where(
                KbArticle.id == _route_id(request)))
        else:
            section_id = await session.scalar(select(KbSection.id).where(
                KbSection.id == _route_id(request)))
        if section_id is None:
            raise NotFound("Раздел или статья не найдены.", "kb_not_found")
        if "editor_id" in form:
            head_of = await session.scalar(select(KbSection.id).where(
                KbSection.id == section_id, KbSection.department_id == actor.department_id))
            if actor.role is Role.DEPARTMENT_HEAD and head_of is not None:
                return
            raise PolicyDenied("Редакторов раздела назначает руководитель его подразделения.",
                               "kb_editor_not_head")
        if section_id in await kb.editable_sections(session, actor.staff_id):
            return
    raise PolicyDenied("Раздел ведёт другое подразделение: изменять его могут только его "
                       "руководитель и назначенные им редакторы.", "kb_other_department")


# --- call recordings (issue 30) ----------------------------------------------------------------

async def _callback_caller(request: web.Request, actor: Actor, linkedid: str) -> bool:
    """The employee who made the callback whose call this linkedid is."""
    async with request.app[SERVICES].sessions() as session:
        return bool(await session.scalar(select(exists().where(
            CallbackAttempt.linkedid == linkedid, CallbackAttempt.staff_id == actor.staff_id))))


async def may_hear_call(request: web.Request, actor: Actor, linkedid: str) -> bool:
    """A call's recordings: the overseers (supervisor, administrator; as for live
    listening), and the employees who spoke on the call (answered, took it by transfer,
    made the callback). A department head hears only the calls they spoke on."""
    return actor.overseer or (bool(linkedid) and (
        await _spoke(request, actor, linkedid) or await _callback_caller(request, actor, linkedid)))


async def recording_listener(request: web.Request, actor: Actor) -> None:
    """``/panel/recordings/{id}/…``: :func:`may_hear_call` of the recording's call."""
    async with request.app[SERVICES].sessions() as session:
        linkedid = await session.scalar(select(CallRecording.linkedid).where(
            CallRecording.id == _route_id(request)))
    if linkedid is None:
        raise NotFound("Запись разговора не найдена.", "recording_not_found")
    if not await may_hear_call(request, actor, linkedid):
        raise PolicyDenied("Запись разговора доступна руководителю и сотрудникам, которые "
                           "разговаривали с гражданином.", "recording_not_your_call")


async def call_recordings_reader(request: web.Request, actor: Actor) -> None:
    """``/panel/recordings?call=<linkedid>``: that call's recordings, by the same rule; the
    list without a call shows each employee only what they may hear."""
    linkedid = request.query.get("call", "")
    if linkedid and not await may_hear_call(request, actor, linkedid):
        raise PolicyDenied("Запись разговора доступна руководителю и сотрудникам, которые "
                           "разговаривали с гражданином.", "recording_not_your_call")
