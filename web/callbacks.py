"""The callback worklist's actions (R-H5): take a callback, say the department's answer is
ready, call the citizen now through one's own phone, mark it done with the answer given.

Who may: a callback is taken by anyone of its department (or anyone, while nobody has it);
it is called, made ready and closed by the employee it is assigned to. Supervisors may do
all of it. Every action is audited; a refusal is audited by the policy middleware.
"""

from __future__ import annotations

from aiohttp import web

from ivr.ami import AMIClient
from ivr.db.models import Callback, CallbackStatus, Staff
from ivr.dialer import CallbackDialer
from ivr.dialling import DiallingPolicy
from ivr.services import callbacks
from ivr.services.container import Services

from . import auth
from .app_keys import SERVICES
from .errors import Conflict, Invalid, NotFound, PolicyDenied, Unprocessable
from .policy import STAFF, Actor, panel
from .records import _svc, current_staff

CALLBACK_NAMES = {
    CallbackStatus.WAITING_INFO: "ждёт ответа подразделения",
    CallbackStatus.READY: "ждёт звонка",
    CallbackStatus.CALLING: "идёт звонок",
    CallbackStatus.DONE: "звонок состоялся",
    CallbackStatus.FAILED: "не дозвонились",
    CallbackStatus.CANCELLED: "отменён",
}
ANSWER_MAX = 4000


class PanelDialer:
    """"Call now" takes the scheduler's path (:class:`~ivr.dialer.CallbackDialer`) on the
    panel's own AMI link; made on first use, once per application."""

    def __init__(self, ami: AMIClient | None) -> None:
        self.ami = ami
        self._dialer: CallbackDialer | None = None

    def get(self, services: Services) -> CallbackDialer | None:
        if self._dialer is None and self.ami is not None:
            self._dialer = CallbackDialer(services, self.ami)
        return self._dialer


DIALER = web.AppKey("callback_dialer", PanelDialer)


async def _callback(request: web.Request) -> Callback:
    async with request.app[SERVICES].sessions() as session:
        found = await session.get(Callback, int(request.match_info["id"]))
    if found is None:
        raise NotFound("Обратный звонок не найден.", "callback_not_found")
    return found


async def callback_department(request: web.Request, actor: Actor) -> None:
    """Taken by anyone while nobody has it; then by the assignee's department."""
    found = await _callback(request)
    if actor.overseer or found.assignee_id is None or found.department_id == actor.department_id:
        return
    raise PolicyDenied("Этот обратный звонок ведёт другое подразделение.",
                       "callback_other_department")


async def callback_assignee(request: web.Request, actor: Actor) -> None:
    """Called, made ready and closed by the employee it is assigned to."""
    found = await _callback(request)
    if actor.overseer or found.assignee_id == actor.staff_id:
        return
    raise PolicyDenied("Этот обратный звонок назначен другому сотруднику: сначала возьмите "
                       "его себе.", "callback_not_yours")


def _back(request: web.Request, note: str) -> web.HTTPSeeOther:
    which = request.query.get("which", "")
    which = which if which in ("mine", "department", "overdue") else "mine"
    return web.HTTPSeeOther(f"/panel/callbacks?which={which}&note={note}")


async def _audit(request: web.Request, me: Staff, action: str, details: str = "") -> None:
    await auth.audit(_svc(request), me.id, action, "callback", request.match_info["id"],
                     details, request.remote or "")


@panel(*STAFF, check=callback_department, audit="callback")
async def take(request: web.Request) -> web.StreamResponse:
    me = await current_staff(request)
    if not await callbacks.take(_svc(request).sessions, int(request.match_info["id"]), me):
        raise Conflict("Обратный звонок уже закрыт.", "callback_closed")
    await _audit(request, me, "take")
    raise _back(request, "taken")


@panel(*STAFF, check=callback_assignee, audit="callback")
async def answer_ready(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    me = await current_staff(request)
    if not await callbacks.answer_ready(svc.sessions, int(request.match_info["id"]),
                                        svc.clock()):
        raise Conflict("Обратный звонок не ждёт ответа подразделения.", "callback_not_waiting")
    await _audit(request, me, "answer_ready")
    raise _back(request, "ready")


@panel(*STAFF, check=callback_assignee, audit="callback")
async def call_now(request: web.Request) -> web.StreamResponse:
    """The employee's phone rings; once they answer, the citizen is dialled with the
    hotline number as caller ID (the ``callback-staff`` flow)."""
    svc = _svc(request)
    me = await current_staff(request)
    found = await _callback(request)
    refusal = DiallingPolicy.from_settings(svc.settings).refusal(found.phone)
    if refusal:
        raise Unprocessable(f"Номер не набирается: {refusal}", "number_refused")
    if not me.extension:
        raise Invalid("У вас нет внутреннего номера: позвонить из панели нельзя.",
                      "no_extension")
    dialer = request.app[DIALER].get(svc)
    if dialer is None:
        raise Conflict("Нет связи с Asterisk.", "no_ami")
    due = await callbacks.claim_now(svc.sessions, found.id, me, svc.clock())
    if due is None:
        raise Conflict("Этому гражданину уже звонят или звонок закрыт.", "callback_busy")
    await dialer.call_now(due)
    await _audit(request, me, "call", f"attempt {due.attempt_id}")
    raise _back(request, "calling")


@panel(*STAFF, check=callback_assignee, audit="callback")
async def done(request: web.Request) -> web.StreamResponse:
    me = await current_staff(request)
    answer = str((await request.post()).get("answer", "")).strip()
    if not answer:
        raise Invalid("Запишите, какой ответ дан гражданину.", "no_answer_text")
    if len(answer) > ANSWER_MAX:
        raise Invalid(f"Ответ длиннее {ANSWER_MAX} знаков.", "answer_too_long")
    if not await callbacks.mark_done(_svc(request).sessions, int(request.match_info["id"]),
                                     answer):
        raise Conflict("Ответ по этому обратному звонку уже записан.", "callback_closed")
    await _audit(request, me, "done")
    raise _back(request, "done")


def setup(app: web.Application, ami: AMIClient | None) -> None:
    app[DIALER] = PanelDialer(ami)
    app.router.add_post(r"/panel/callbacks/{id:\d{1,9}}/take", take)
    app.router.add_post(r"/panel/callbacks/{id:\d{1,9}}/ready", answer_ready)
    app.router.add_post(r"/panel/callbacks/{id:\d{1,9}}/call", call_now)
    app.router.add_post(r"/panel/callbacks/{id:\d{1,9}}/done", done)
