"""The operator's workspace (issue 5; R-H3–R-H7): status in Asterisk, the screen-pop of
every call that reaches them, the journal, transfers, callbacks, the knowledge base beside
the call; the callback worklist.

Screen-pop: the panel has its own AMI link (:class:`OperatorHub`); ``AgentConnect`` for a
queue member, or the transfer gate's ``HotlineTransferred`` for a colleague, names the
operator's extension, and the event goes at once to that operator's open pages over
Server-Sent Events (``/panel/live``). The page then loads the citizen's
card (``/panel/workspace/card``): no reload, well within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web
from markupsafe import Markup
from multidict import MultiDictProxy
from panoramisk.message import Message
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import selectinload

from ivr.agent_states import (
    STATE_NAMES,
    WRAPUP_REASON,
    AgentStates,
    Seen,
    event_time,
    member_state,
)
from ivr.ami import AMIClient, AMIError
from ivr.db.models import (
    Agency,
    Appeal,
    Booking,
    Call,
    Callback,
    CallbackSource,
    CallbackStatus,
    Channel,
    Citizen,
    CitizenPhone,
    JournalOutcome,
    Rating,
    ReceptionSlot,
    Staff,
    TransferKind,
)
from ivr.dialling import DiallingPolicy, NumberRefused
from ivr.phone import normalise
from ivr.services import agent_day, journal, kb, menu, receptions, survey
from ivr.services.callbacks import (
    CallbackRejected,
    Window,
    check_deadline,
    choose_windows,
    create_callback,
    offered_windows,
)
from ivr.services.container import Services
from ivr.services.live_menu import MenuSetup
from ivr.services.ratings import extension_of
from ivr.services.supervision import local_day_range
from ivr.services.transfers import (
    MAX_TRANSFERS,
    TransferError,
    active_staff,
    count_transfers,
    request_transfer,
    transfer_from_panel,
    transfer_note,
)
from ivr.settings import Settings

from . import auth, reception_params, scopes
from .app_keys import SERVICES
from .callbacks import CALLBACK_NAMES
from .errors import Conflict, Invalid, NotFound, Unprocessable
from .policy import STAFF, actor, panel
from .records import _render, _svc, current_staff, phone_display

JOURNAL_NAMES = {
    JournalOutcome.ANSWERED: "дан ответ", JournalOutcome.TRANSFERRED: "переведён",
    JournalOutcome.CALLBACK: "обратный звонок", JournalOutcome.REFERRED_TO_AGENCY:
    "направлен в другое ведомство", JournalOutcome.NOT_IN_COMPETENCE: "вне компетенции",
}
# Wrap-up has its own button («Обработка»), so it is not a pause reason as well.
PAUSE_REASONS = ("перерыв", "обучение", "работа с документами")
STATES = ("ready", "pause", "wrapup", "offline")
QUALITY_NAMES = {"satisfied": "удовлетворён", "partly": "частично",
                 "not_satisfied": "не удовлетворён"}


log = logging.getLogger(__name__)
AUTO_WRAPUP_REASON = WRAPUP_REASON


class OperatorHub:
    """Calls reaching operators, fanned out to their open panel pages: the ring
    (``AgentCalled``: the card pops before answering), the conversation, its end, the
    operator's state in the queues; and the automatic wrap-up: after a queue call the
    operator is paused (``AUTO_WRAPUP_REASON``) until the call's journal is saved or
    ``wrapup_seconds`` pass, then ready again. A journal saved during the call means no
    wrap-up at all."""

    def __init__(self, ami: AMIClient | None,
                 settings: Callable[[], Settings] | None = None) -> None:
        self.ami = ami
        self.current: dict[str, dict[str, str]] = {}
        self.ringing: dict[str, dict[str, str]] = {}
        self.wrapup_until: dict[str, datetime] = {}
        self.journaled: set[tuple[str, str]] = set()   # (extension, linkedid) saved mid-call
        self.transfers: dict[str, str] = {}   # colleague's extension → the sender's
        self._listeners: dict[str, set[asyncio.Queue[dict[str, str]]]] = defaultdict(set)
        self._settings = settings
        self._wrapups: dict[str, asyncio.Task[None]] = {}
        self.states = AgentStates(ami, self._on_state)
        if ami is not None:
            for name, handler in {
                "AgentCalled": self._on_called, "AgentRingNoAnswer": self._on_no_answer,
                "QueueCallerAbandon": self._on_abandon, "AgentConnect": self._on_connect,
                "QueueCallerLeave": self._on_caller_leave, "Hangup": self._on_hangup,
                "AgentComplete": self._on_complete, "UserEvent": self._on_user_event,
            }.items():
                ami.subscribe(name, handler)

    def listen(self, extension: str) -> asyncio.Queue[dict[str, str]]:
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue(maxsize=50)
        self._listeners[extension].add(queue)
        return queue

    def leave(self, extension: str, queue: asyncio.Queue[dict[str, str]]) -> None:
        self._listeners[extension].discard(queue)

    def publish(self, extension: str, item: dict[str, str]) -> None:
        for queue in list(self._listeners.get(extension, ())):
            with contextlib.suppress(asyncio.QueueFull):   # a stalled page misses nothing new
                queue.put_nowait(item)

    def _on_state(self, extension: str, seen: Seen) -> None:
        self.publish(extension, {"type": "state", "state": seen.state.value,
                                 "label": seen.label, "since": seen.at.isoformat()})

    def _call_item(self, event: Message, kind: str) -> dict[str, str]:
        caller = normalise(str(event.get("CallerIDNum", "")))
        return {"type": kind, "linkedid": str(event.get("Linkedid", "")),
                "caller": caller, "caller_display": phone_display(caller),
                "queue": str(event.get("Queue", "")),
                "channel": str(event.get("DestChannel", "")),
                "since": event_time(event).isoformat()}

    def _on_called(self, event: Message) -> None:
        """The operator's phone rings: their card pops now, not after answering."""
        extension = extension_of(str(event.get("Interface", "")))
        if extension:
            item = self.ringing[extension] = self._call_item(event, "ringing")
            self.publish(extension, item)

    def _on_no_answer(self, event: Message) -> None:
        extension = extension_of(str(event.get("Interface", "")))
        if extension and self.ringing.pop(extension, None) is not None:
            self.publish(extension, {"type": "missed",
                                     "linkedid": str(event.get("Linkedid", ""))})

    def _stop_ringing(self, linkedid: str, answered_by: str = "") -> None:
        """Every phone still ringing for this call stops counting as on it: with
        ``ringall`` the operators who were rung but did not answer must not open the
        caller's card afterwards (the card's rule reads ``ringing``)."""
        for extension, item in list(self.ringing.items()):
            if linkedid and item.get("linkedid") == linkedid:
                del self.ringing[extension]
                if extension != answered_by:
                    self.publish(extension, {"type": "missed", "linkedid": linkedid})

    def _on_abandon(self, event: Message) -> None:
        self._stop_ringing(str(event.get("Linkedid", "")))

    def _on_caller_leave(self, event: Message) -> None:
        """The caller left the queue: answered, hung up, or timed out."""
        self._stop_ringing(str(event.get("Linkedid", "")))

    def _on_hangup(self, event: Message) -> None:
        # Only the caller's own channel (the call's first: its Uniqueid is the linkedid); a
        # rung phone that hangs up alone leaves the others ringing.
        linkedid = str(event.get("Linkedid", ""))
        if linkedid and str(event.get("Uniqueid", "")) == linkedid:
            self._stop_ringing(linkedid)

    def _on_connect(self, event: Message) -> None:
        extension = extension_of(str(event.get("Interface", "")))
        self._stop_ringing(str(event.get("Linkedid", "")), answered_by=extension or "")
        if not extension:
            return
        self.ringing.pop(extension, None)
        # A journal saved on an earlier call whose end went unheard spares nothing now.
        self.journaled = {j for j in self.journaled if j[0] != extension}
        item = self.current[extension] = self._call_item(event, "call")
        self.publish(extension, item)

    async def close(self, _app: web.Application | None = None) -> None:
        """On shutdown: every open live stream ends (no page holds the server up)."""
        for extension in list(self._listeners):
            self.publish(extension, {"type": "bye"})
        for extension in list(self._wrapups):
            self.stop_wrapup(extension)

    def _on_user_event(self, event: Message) -> None:
        """A call transferred to a colleague (the gate's whisper): their screen-pop, and
        the sender learns it went through; the end of their part of it (a hang-up handler
        the whisper left on their channel); a colleague who did not answer (the gate)."""
        name = str(event.get("UserEvent", ""))
        extension = str(event.get("Extension", ""))
        if name == "HotlineTransferFailed":
            self._transfer_outcome(str(event.get("Target", "")), "failed")
            return
        if not extension or name not in ("HotlineTransferred", "HotlineTransferEnded"):
            return
        if name == "HotlineTransferEnded":
            self._ended(extension, str(event.get("Linkedid", "")))
            return
        caller = normalise(str(event.get("ConnectedLineNum", "")))
        item = {"type": "call", "linkedid": str(event.get("Linkedid", "")),
                "caller": caller, "caller_display": phone_display(caller),
                "queue": "", "channel": str(event.get("Transferee", "")),
                "since": event_time(event).isoformat()}
        self.current[extension] = item
        self.publish(extension, item)
        self._transfer_outcome(extension, "answered")

    def _transfer_outcome(self, target: str, outcome: str) -> None:
        sender = self.transfers.pop(target, None)
        if sender:
            self.publish(sender, {"type": "transfer", "outcome": outcome, "target": target})

    def _on_complete(self, event: Message) -> None:
        extension = extension_of(str(event.get("Interface", "")))
        if extension:
            self._ended(extension, str(event.get("Linkedid", "")))

    def _ended(self, extension: str, linkedid: str) -> None:
        current = self.current.get(extension)
        # Without a linkedid (Asterisk builds AgentComplete without the caller's fields
        # when the caller's channel is gone first) it ends the call the operator is on: a
        # member has one queue call at a time (ringinuse = no).
        if current is not None and linkedid and current.get("linkedid") not in ("", linkedid):
            return   # an older call's late report: the operator is already on the next one
        self.current.pop(extension, None)
        linkedid = linkedid or (current or {}).get("linkedid", "")
        self.publish(extension, {"type": "ended", "linkedid": linkedid})
        if (extension, linkedid) in self.journaled:   # the journal is written: no wrap-up
            self.journaled.discard((extension, linkedid))
            return
        if self._settings and self._settings().panel.wrapup_seconds and self.ami is not None:
            self.stop_wrapup(extension)
            task = asyncio.get_running_loop().create_task(self._wrapup(extension))
            self._wrapups[extension] = task
            task.add_done_callback(functools.partial(self._wrapup_done, extension))

    def journal_saved(self, extension: str, linkedid: str) -> None:
        """The operator's journal for ``linkedid`` is saved: if they are still on that call,
        its end brings no wrap-up."""
        if self.current.get(extension, {}).get("linkedid") == linkedid:
            self.journaled.add((extension, linkedid))

    def _interface(self, extension: str) -> str:
        assert self._settings is not None
        return self._settings().asterisk.operator_dial.format(extension=extension)

    async def _wrapup(self, extension: str) -> None:
        assert self.ami is not None and self._settings is not None
        seconds = self._settings().panel.wrapup_seconds
        try:
            await self.ami.action({"Action": "QueuePause", "Interface": self._interface(
                extension), "Paused": "true", "Reason": AUTO_WRAPUP_REASON}, as_list=False)
            until = self.wrapup_until[extension] = datetime.now(UTC) + timedelta(
                seconds=seconds)
            self.publish(extension, {"type": "wrapup", "seconds": str(seconds),
                                     "until": until.isoformat()})
            await asyncio.sleep(seconds)
            await self.resume_after_wrapup(extension)
        except AMIError as exc:
            log.warning("automatic wrap-up of %s: %s", extension, exc)

    def _wrapup_done(self, extension: str, task: asyncio.Task[None]) -> None:
        if self._wrapups.get(extension) is task:
            del self._wrapups[extension]
            self.wrapup_until.pop(extension, None)

    def stop_wrapup(self, extension: str) -> None:
        """The operator chose a state: this process's timer no longer applies."""
        task = self._wrapups.pop(extension, None)
        self.wrapup_until.pop(extension, None)
        if task is not None:
            task.cancel()

    async def resume_after_wrapup(self, extension: str) -> bool:
        """Ready again, if still in the automatic wrap-up: Asterisk is asked, so a state the
        operator chose meanwhile (maybe through another panel process) is never undone."""
        if self.ami is None or self._settings is None:
            return False
        interface = self._interface(extension)
        status = await self.ami.action({"Action": "QueueStatus", "Member": interface},
                                       as_list=True)
        if not any(m.get("Event") == "QueueMember" and str(m.get("Paused")) == "1"
                   and m.get("PausedReason") == AUTO_WRAPUP_REASON for m in status):
            return False
        await self.ami.action({"Action": "QueuePause", "Interface": interface,
                               "Paused": "false"}, as_list=False)
        self.publish(extension, {"type": "ready"})
        return True


HUB = web.AppKey("operator_hub", OperatorHub)


def _hub(request: web.Request) -> OperatorHub:
    return request.app[HUB]


# --- the page, the live stream, the status -------------------------------------------------

@panel(*STAFF)
async def workspace(request: web.Request) -> web.Response:
    me = await current_staff(request)
    svc = _svc(request)
    hub = _hub(request)
    now = svc.clock()
    start, end = local_day_range(svc.calendar.today(now), svc.calendar.tz)
    async with svc.sessions() as session:   # R-H6: my answered calls still without my entry
        missing = await journal.without_entry(
            session, me.id, now - timedelta(days=MISSING_DAYS), limit=MISSING_SHOWN)
        my_day = next(iter(await agent_day.days(session, start, end, now, staff_id=me.id)),
                      None)
    extension = me.extension or ""
    return _render(request, "workspace.html", {
        "staff": me, "reasons": PAUSE_REASONS, "error": request.query.get("error", ""),
        "current": hub.current.get(extension) or hub.ringing.get(extension),
        "missing": missing, "state": await _state_now(request, me, my_day),
        "wrapup_until": hub.wrapup_until.get(extension), "day": my_day,
        "duration": agent_day.duration, "state_names": STATE_NAMES,
        "topic_titles": {t.code: t.title for t in (await svc.menu.fresh(svc)).ivr.topics}})


async def _state_now(request: web.Request, me: Staff,
                     day: agent_day.OperatorDay | None) -> Seen | None:
    """The operator's state as Asterisk has it now (not what the page last said), and since
    when, from the facts kept (or this process's own view of the events)."""
    hub, svc = _hub(request), _svc(request)
    if not me.extension or hub.ami is None or not hub.ami.connected.is_set():
        return None
    try:
        state, reason = await member_state(
            hub.ami, svc.settings.asterisk.operator_dial.format(extension=me.extension))
    except AMIError:
        return None
    seen = hub.states.last.get(me.extension)
    if seen is not None and (seen.state, seen.reason) == (state, reason):
        return seen
    since = day.since if day is not None and day.state is state else None
    return Seen(state, reason, since or svc.clock())


# The workspace lists the calls of this many days left without the operator's entry.
MISSING_DAYS, MISSING_SHOWN = 7, 10


@panel(*STAFF)
async def live(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the operator's calls as they arrive and end."""
    me = await current_staff(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    if not me.extension:
        await response.write(b"event: error\ndata: {}\n\n")
        return response
    hub = _hub(request)
    queue = hub.listen(me.extension)
    try:
        if me.extension in hub.current:
            queue.put_nowait(hub.current[me.extension])
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), 15)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if item["type"] == "bye":
                break
            data = json.dumps(item, ensure_ascii=False)
            await response.write(f"event: {item['type']}\ndata: {data}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.leave(me.extension, queue)
    return response


async def operator_queues(request: web.Request, staff_id: int) -> dict[str, int]:
    """The queues the operator serves, with the penalty of each: their skills (issue 28).
    An operator without any skill serves the menu's queues (a fresh install, the demo)."""
    svc = _svc(request)
    ivr = (await svc.menu.fresh(svc)).ivr
    async with svc.sessions() as session:
        mine = await menu.skills(session, staff_id)
    if mine:
        return mine
    return dict.fromkeys(sorted({ivr.general_queue,
                                 *(t.queue for t in ivr.topics if t.action == "queue")}), 0)


async def _enter_queues(request: web.Request, me: Staff, interface: str) -> None:
    """Into the operator's own queues with their penalties, out of every other one (a
    skill taken away since the last «Готов»)."""
    svc, ami = _svc(request), _hub(request).ami
    assert ami is not None
    mine = await operator_queues(request, me.id)
    every = (await svc.menu.fresh(svc)).queues
    for queue in every:
        if queue.name not in mine:
            await ami.action({"Action": "QueueRemove", "Queue": queue.name,
                              "Interface": interface}, as_list=False, check=False)
    for name, penalty in mine.items():
        # Already a member: Asterisk says so, and that is fine.
        await ami.action({"Action": "QueueAdd", "Queue": name, "Interface": interface,
                          "MemberName": me.extension, "Penalty": str(penalty),
                          "Paused": "true"}, as_list=False, check=False)


def _back_with_error(message: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/panel/workspace?error=" + quote(message))


def status_choice(state: str, reason: str) -> tuple[str, str]:
    """The operator's state and the pause reason Asterisk gets: only values from the fixed
    lists ever reach AMI, whatever the form holds."""
    if state not in STATES:
        raise _back_with_error("Неизвестное состояние: выберите «Готов», «Пауза», "
                               "«Поствызывная обработка» или «Выйти из очередей».")
    if state == "pause":
        reason = reason or PAUSE_REASONS[0]
        if reason not in PAUSE_REASONS:
            raise _back_with_error("Причину паузы выберите из списка: "
                                   + ", ".join(PAUSE_REASONS) + ".")
        return state, reason
    return state, {"wrapup": "поствызывная обработка"}.get(state, "")


@panel(*STAFF, audit="staff")
async def set_status(request: web.Request) -> web.StreamResponse:
    """Ready (in the operator's own queues, unpaused), pause with a reason, wrap-up (paused while
    finishing the journal), or offline (out of the queues) — in Asterisk itself."""
    svc = _svc(request)
    me = await current_staff(request)
    form = await request.post()
    state, reason = status_choice(str(form.get("state", "")), str(form.get("reason", "")))
    ami = _hub(request).ami
    if not me.extension or ami is None:
        raise web.HTTPSeeOther("/panel/workspace?error=" + "нет телефона или связи с Asterisk")
    interface = svc.settings.asterisk.operator_dial.format(extension=me.extension)
    _hub(request).stop_wrapup(me.extension)
    try:
        if state == "offline":
            for queue in (await svc.menu.fresh(svc)).queues:
                await ami.action({"Action": "QueueRemove", "Queue": queue.name,
                                  "Interface": interface}, as_list=False, check=False)
        else:
            await _enter_queues(request, me, interface)
            await ami.action({"Action": "QueuePause", "Interface": interface,
                              "Paused": "false" if state == "ready" else "true",
                              "Reason": reason}, as_list=False)
    except AMIError as exc:
        raise web.HTTPSeeOther(f"/panel/workspace?error=Asterisk: {exc}") from None
    await auth.audit(svc, me.id, "status", "staff", me.id, state, request.remote or "")
    raise web.HTTPSeeOther("/panel/workspace")


# --- the citizen's card -----------------------------------------------------------------------

def greeting_line(request: web.Request, me: Staff) -> str:
    """R-H3: the full name of the ministry, the operator's own name and position; the
    knowledge base's ``script.operator_greeting`` ({org}, {name}, {position}) when kept."""
    svc = _svc(request)
    template = svc.scripts.get(kb.OPERATOR_GREETING_KEY) or kb.DEFAULT_OPERATOR_GREETING
    name = " ".join(p for p in (me.first_name, me.patronymic) if p)
    return kb.fill_greeting(template, {"org": svc.settings.organisation.full_name,
                                       "position": me.position, "name": name})


def operator_limits(request: web.Request) -> str:
    """R-H9: what the operator does not do for the caller, from the knowledge base
    (``script.operator_limits``) when kept there."""
    return _svc(request).scripts.get(kb.OPERATOR_LIMITS_KEY) or kb.OPERATOR_LIMITS


# The card's statements, built once: SQLAlchemy keeps each one's cache key instead of
# computing it for every card.
CARD_CALL = select(Call).where(Call.linkedid == bindparam("linkedid"))
CARD_CITIZEN = select(Citizen).join(CitizenPhone).where(
    CitizenPhone.phone == bindparam("number"))
CARD_EARLIER = (select(Call, Rating).outerjoin(Rating, Rating.call_id == Call.id)
                .where(Call.caller_number == bindparam("number"),
                       Call.linkedid != bindparam("linkedid"))
                .order_by(Call.started_at.desc()).limit(10)
                .options(selectinload(Call.journal)))
CARD_APPEALS = (select(Appeal, Staff).outerjoin(Staff, Staff.id == Appeal.executor_id)
                .where(Appeal.citizen_id == bindparam("citizen"))
                .order_by(Appeal.registered_on.desc()).limit(20))
CARD_BOOKINGS = (select(Booking).join(ReceptionSlot)
                 .where(Booking.citizen_id == bindparam("citizen"))
                 .order_by(ReceptionSlot.starts_at.desc()).limit(20)
                 .options(receptions.BOOKING_DETAILS))
# The caller's open callbacks, and every one promised during this call (whatever its number).
CARD_CALLBACKS = select(Callback).where(
    or_(Callback.phone == bindparam("number"), Callback.call_id == bindparam("call_id")),
    Callback.status.in_((CallbackStatus.WAITING_INFO, CallbackStatus.READY,
                         CallbackStatus.CALLING))).order_by(Callback.id.desc())


async def _caller(request: web.Request) -> str:
    """The number of a call not yet in the records: as Asterisk told the hub; only a
    supervisor looks up a number of their choosing (``?caller=``)."""
    me = actor(request)
    if me.overseer:
        return normalise(request.query.get("caller", ""))
    current = await scopes.my_call(request, me, ringing=True)
    return normalise(current.get("caller", "")) if current else ""


@panel(*STAFF, check=scopes.on_the_call, audit="citizen_card")
async def card(request: web.Request) -> web.Response:
    svc = _svc(request)
    directory = request.app[DIRECTORY]
    staff = await directory.staff(svc)
    my_id = auth.current(request).staff_id
    me = next((s for s in staff if s.id == my_id), None) or await current_staff(request)
    linkedid = request.query.get("linkedid", "")
    # The screen-pop comes within a moment of the caller's last key: the call's facts may
    # still be in this process's recorder batch (``hotline serve`` runs every part in one
    # process); wait for them, briefly, so the card shows the IVR path and topic.
    with contextlib.suppress(TimeoutError):
        await svc.recorder.sync(timeout=2)
    shown = await _caller(request)
    async with svc.sessions() as session:
        call = await session.scalar(CARD_CALL, {"linkedid": linkedid}) if linkedid else None
        number = call.caller_number if call else shown
        citizen = await session.scalar(CARD_CITIZEN, {"number": number}) if number else None
        earlier = list((await session.execute(
            CARD_EARLIER, {"number": number, "linkedid": linkedid})).all()) if number else []
        appeals_: list[tuple[Appeal, Staff | None]] = []
        bookings: list[Booking] = []
        if citizen is not None:
            appeals_ = [(a, s) for a, s in (await session.execute(
                CARD_APPEALS, {"citizen": citizen.id})).all()]
            bookings = list((await session.scalars(
                CARD_BOOKINGS, {"citizen": citizen.id})).all())
        callbacks = list(await session.scalars(CARD_CALLBACKS, {
            "number": number or "-", "call_id": call.id if call else -1}))
        used = await count_transfers(session, call.id) if call else 0
    await auth.audit(svc, me.id, "view", "citizen_card", citizen.id if citizen else number,
                     f"call {linkedid}", request.remote or "")
    setup = await svc.menu.fresh(svc)
    return _render(request, "card.html", {
        "call": call, "number": number, "citizen": citizen, "earlier": earlier,
        "appeals": appeals_, "bookings": bookings, "callbacks": callbacks, "used": used,
        "max_transfers": MAX_TRANSFERS, "agencies": directory.agency_options,
        "transfer_options": directory.transfer_options(
            me.id, await presence(_hub(request).ami, svc.settings)),
        "assignee_options": directory.assignee_options(me.id),
        "linkedid": linkedid, "greeting": greeting_line(request, me),
        "limits": operator_limits(request),
        "topics": setup.ivr.topics, "journal_names": JOURNAL_NAMES,
        "quality_names": QUALITY_NAMES, **_callback_choices(svc), **_titles(setup, call),
        "call_outcome_names": CALL_OUTCOME_NAMES, "now": svc.clock()})


CALL_OUTCOME_NAMES = {"in_progress": "идёт", "self_service": "ответ в голосовом меню",
                      "answered": "дан ответ", "abandoned": "не дождался ответа",
                      "ivr_abandoned": "прервал в голосовом меню",
                      "callback_requested": "заказан обратный звонок",
                      "after_hours": "в нерабочее время", "failed": "сбой"}


def _titles(setup: MenuSetup, call: Call | None) -> dict[str, object]:
    """Topic and queue titles for people, and the menu path as the titles of its keys."""
    topics = setup.ivr.topics
    by_key = {t.digit: t.title for t in topics}
    path = [by_key.get(key, f"клавиша {key}") for key in (call.ivr_path.split(">")
                                                          if call and call.ivr_path else [])]
    return {"topic_titles": {t.code: t.title for t in topics}, "path_titles": path,
            "queue_titles": {q.name: q.title for q in setup.queues}}


def _callback_choices(svc: Services) -> dict[str, object]:
    """The callback form's windows (R-H5) and the range of the deadline told to the caller."""
    now = svc.clock()
    today = svc.calendar.today(now)
    return {"callback_windows": offered_windows(svc.calendar, now, svc.settings.ivr.callback_days),
            "deadline_min": today, "callback_names": CALLBACK_NAMES,
            "deadline_max": svc.calendar.add_working_days(
                today, svc.settings.callbacks.deadline_max_working_days)}


# --- journal, transfer, callback, KB beside the call -------------------------------------

async def _call_id(request: web.Request, linkedid: str) -> int:
    async with _svc(request).sessions() as session:
        call_id = await session.scalar(select(Call.id).where(Call.linkedid == linkedid))
    if call_id is None:
        raise Invalid("Звонок ещё не записан: повторите через секунду.", "call_not_recorded")
    return int(call_id)


def _int(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


@panel(*STAFF, check=scopes.spoke_on_the_call, audit="call")
async def fill_journal(request: web.Request) -> web.Response:
    """R-H6: the journal form for an answered call left without the operator's entry
    (linked from the workspace's list)."""
    svc = _svc(request)
    me = await current_staff(request)
    linkedid = request.query.get("linkedid", "")
    async with svc.sessions() as session:
        call = await session.scalar(CARD_CALL, {"linkedid": linkedid})
    if call is None:
        raise NotFound("Звонок не найден.", "call_not_found")
    directory = request.app[DIRECTORY]
    await directory.staff(svc)   # renders the agency options when stale
    await auth.audit(svc, me.id, "view", "call", call.id, "journal form", request.remote or "")
    topics = (await svc.menu.fresh(svc)).ivr.topics
    return _render(request, "journal_fill.html", {
        "call": call, "linkedid": linkedid, "topics": topics,
        "topic_titles": {t.code: t.title for t in topics},
        "journal_names": JOURNAL_NAMES, "agencies": directory.agency_options})


@panel(*STAFF, check=scopes.spoke_on_the_call, audit="call", json=True)
async def save_journal(request: web.Request) -> web.Response:
    svc = _svc(request)
    me = await current_staff(request)
    form = await request.post()
    call_id = await _call_id(request, str(form.get("linkedid", "")))
    try:
        outcome = JournalOutcome(str(form.get("outcome", "")))
    except ValueError:
        raise Invalid("Выберите, чем закончился разговор.", "journal_outcome") from None
    entry = journal.Entry(topic=str(form.get("topic", "")),
                          question=str(form.get("question", "")), outcome=outcome,
                          answer=str(form.get("answer", "")),
                          article_id=_int(form.get("article_id")),
                          agency_id=_int(form.get("agency_id")))
    try:
        await journal.save_entry(svc.sessions, call_id=call_id, staff_id=me.id, entry=entry,
                                 at=svc.clock())
    except journal.JournalError as exc:
        raise Invalid(str(exc), "journal_invalid") from None
    await auth.audit(svc, me.id, "journal", "call", call_id, outcome.value,
                     request.remote or "")
    resumed = False
    if me.extension:   # the journal ends the automatic wrap-up, or spares it
        _hub(request).journal_saved(me.extension, str(form.get("linkedid", "")))
        _hub(request).stop_wrapup(me.extension)
        with contextlib.suppress(AMIError):
            resumed = await _hub(request).resume_after_wrapup(me.extension)
    return web.json_response({"ok": "Запись в журнале сохранена." + (
        " Вы снова принимаете звонки." if resumed else "")})


async def _transfer_request(request: web.Request, me: Staff) -> tuple[str, str, str, str]:
    """The call (linkedid, the operator's channel) is the operator's own current one, from
    the OperatorHub; the target a known, active colleague; the note one clean line.
    Anything else is refused (422) before AMI is touched."""
    form = await request.post()
    current = _hub(request).current.get(me.extension or "")
    if current is None or not current.get("channel"):
        raise Conflict("Перевод невозможен: вы сейчас не разговариваете с гражданином.",
                       "transfer_no_call")
    extension = str(form.get("extension", ""))
    try:
        note = transfer_note(str(form.get("note", "")))
    except TransferError as exc:
        raise Unprocessable(f"Перевод не выполнен: {exc}.", "transfer_note") from None
    async with _svc(request).sessions() as session:
        target = await active_staff(session, extension)
    if target is None:
        raise Unprocessable("Перевод невозможен: такого номера нет в справочнике "
                            "сотрудников.", "transfer_unknown_target")
    if target.id == me.id:
        raise Unprocessable("Перевод невозможен: это ваш собственный номер.",
                            "transfer_to_self")
    return current["linkedid"], current["channel"], extension, note


@panel(*STAFF, audit="call", json=True)
async def transfer(request: web.Request) -> web.Response:
    """The panel's transfer: refused here already at the third (the same rule as the
    dialplan's gate, which checks again)."""
    svc = _svc(request)
    me = await current_staff(request)
    linkedid, channel, extension, note = await _transfer_request(request, me)
    call_id = await _call_id(request, linkedid)
    async with svc.sessions() as session:
        used = await count_transfers(session, call_id)
    if used >= MAX_TRANSFERS:
        # Recorded as the gate records it: a refused third, on the supervisor's list.
        await request_transfer(svc.sessions, linkedid=linkedid, target_extension=extension,
                               sender_channel=channel, kind=TransferKind.BLIND,
                               note=note, at=svc.clock())
        await auth.audit(svc, me.id, "transfer_refused", "call", call_id, extension,
                         request.remote or "")
        return web.json_response({"error": f"Перевод невозможен: звонок уже переведён "
                                           f"{MAX_TRANSFERS} раза (не более двух переводов).",
                                  "used": used}, status=409)
    hub = _hub(request)
    if hub.ami is None:
        return web.json_response({"error": "Нет связи с Asterisk."}, status=503)
    if (await presence(hub.ami, svc.settings)).get(extension) == UNREACHABLE:
        # Asked before the caller is moved: the call stays with the operator, uncounted.
        await auth.audit(svc, me.id, "transfer_unreachable", "call", call_id, extension,
                         request.remote or "")
        return web.json_response({"error": "Перевод не выполнен: телефон коллеги недоступен. "
                                           "Разговор остаётся у вас, перевод не засчитан.",
                                  "used": used}, status=409)
    try:
        await transfer_from_panel(hub.ami, channel, extension, note=note)
    except (TransferError, AMIError) as exc:
        return web.json_response({"error": f"Перевод не выполнен: {exc}"}, status=409)
    if me.extension:
        hub.transfers[extension] = me.extension   # the colleague's answer or not comes back
    await auth.audit(svc, me.id, "transfer", "call", call_id, extension, request.remote or "")
    return web.json_response({"ok": "Звоним коллеге: дождитесь ответа.", "used": used + 1})


PRESENCE_TIMEOUT = 2.0   # the card does not wait longer for the colleagues' presence
# DeviceStateList's states, for people; a device Asterisk cannot reach is "unreachable".
UNREACHABLE = "недоступен"
PRESENCE_NAMES = {"NOT_INUSE": "свободен", "INUSE": "разговаривает", "BUSY": "разговаривает",
                  "ONHOLD": "разговаривает", "RINGINUSE": "разговаривает",
                  "RINGING": "звонит телефон", "UNAVAILABLE": UNREACHABLE,
                  "INVALID": UNREACHABLE}


async def presence(ami: AMIClient | None, settings: Settings) -> dict[str, str]:
    """Each colleague's phone as Asterisk sees it now (extension → label); empty when
    Asterisk cannot be asked (the transfer then goes ahead, and its gate decides)."""
    if ami is None or not ami.connected.is_set():
        return {}
    try:
        devices = await ami.action({"Action": "DeviceStateList"}, as_list=True,
                                   timeout=PRESENCE_TIMEOUT)
    except AMIError:
        return {}
    prefix = settings.asterisk.operator_dial.split("{extension}")[0]
    found = {}
    for event in devices:
        device, state = str(event.get("Device", "")), str(event.get("State", ""))
        if device.startswith(prefix) and state in PRESENCE_NAMES:
            found[device[len(prefix):].split("@")[0]] = PRESENCE_NAMES[state]
    return found


@panel(*STAFF, check=scopes.talking_on_the_call, audit="call", json=True)
async def to_survey(request: web.Request) -> web.Response:
    """R-H8: the operator ends the conversation and the caller goes on to the rating. The
    channel is the operator's current call from the OperatorHub, never from the form."""
    svc = _svc(request)
    me = await current_staff(request)
    linkedid = str((await request.post()).get("linkedid", ""))
    current = _hub(request).current.get(me.extension or "")
    if current is None or current.get("linkedid") != linkedid or not current.get("channel"):
        raise Conflict("Разговор уже завершён.", "survey_no_call")
    ami = _hub(request).ami
    if ami is None:
        return web.json_response({"error": "Нет связи с Asterisk."}, status=503)
    try:
        await survey.to_survey(ami, current["channel"])
    except (survey.SurveyError, AMIError) as exc:
        return web.json_response({"error": f"Не удалось перевести на оценку: {exc}."},
                                 status=409)
    await auth.audit(svc, me.id, "to_survey", "call", linkedid, "", request.remote or "")
    return web.json_response({"ok": "Гражданин переведён на оценку качества."})


@panel(*STAFF, audit="callback", json=True)
async def promise_callback(request: web.Request) -> web.Response:
    """R-H5: the operator promises a callback: the number, the question, the answer's
    deadline told to the caller, the windows the caller chose, who prepares the answer;
    "the department prepares the answer" leaves it waiting (not dialled) until it is ready."""
    svc = _svc(request)
    me = await current_staff(request)
    form = await request.post()
    phone, deadline, windows = _callback_form(svc, form)
    callback_id = await create_callback(
        svc.sessions, phone=phone, windows=windows, source=CallbackSource.OPERATOR,
        policy=DiallingPolicy.from_settings(svc.settings),
        linkedid=str(form.get("linkedid", "")) or None,
        topic=str(form.get("topic", "")) or None, question=str(form.get("question", "")),
        promised_date=deadline, waiting_info=form.get("waiting_info") == "1")
    if callback_id is None:
        return web.json_response({"error": "Такая заявка уже принята."}, status=409)
    assignee = _int(form.get("assignee_id")) or me.id
    async with svc.sessions() as session, session.begin():
        callback = await session.get(Callback, callback_id)
        who = await session.get(Staff, assignee)
        assert callback is not None
        callback.created_by_id = me.id
        if who is not None:
            callback.assignee_id, callback.department_id = who.id, who.department_id
    await auth.audit(svc, me.id, "create", "callback", callback_id, phone,
                     request.remote or "")
    first = svc.calendar.local(windows[0].start)
    return web.json_response({"ok": f"Обратный звонок запланирован: ответ до "
                                    f"{deadline:%d.%m.%Y}, звонок с {first:%d.%m %H:%M}"})


def _callback_form(svc: Services, form: MultiDictProxy[Any]) -> tuple[str, date, list[Window]]:
    """The number through the dialling policy, the deadline and the chosen windows checked
    (:func:`~ivr.services.callbacks.check_deadline`, ``choose_windows``)."""
    now = svc.clock()
    try:
        phone = DiallingPolicy.from_settings(svc.settings).decide(str(form.get("phone", "")))
    except NumberRefused as exc:
        raise Unprocessable(f"Обратный звонок невозможен. {exc}", exc.error_id) from None
    try:
        deadline = check_deadline(svc.calendar, now, _date(form.get("deadline")),
                                  svc.settings.callbacks.deadline_max_working_days)
        offered = offered_windows(svc.calendar, now, svc.settings.ivr.callback_days)
        windows = choose_windows(offered, [str(k) for k in form.getall("window", [])])
    except CallbackRejected as exc:
        raise Unprocessable(str(exc), exc.error_id) from None
    return phone, deadline, windows


def _date(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value or "").strip())
    except ValueError:
        return None


# --- reception booking beside the call (R-P1–R-P5) ---------------------------------------

@panel(*STAFF, json=True)
async def free_slots(request: web.Request) -> web.Response:
    """Free reception times for the card's booking form, of the official and the dates
    asked for (R-P2; read when the operator asks for them: the card itself stays light)."""
    svc = _svc(request)
    query = reception_params.parse(request.query)
    async with svc.sessions() as session:
        slots = await reception_params.find(session, svc.calendar, svc.clock(), query)
        officials = await receptions.officials(session)
    return web.json_response({"items": [
        {"id": slot.id, "label": f"{svc.calendar.local(slot.starts_at):%d.%m.%Y %H:%M} — "
                                 f"{reception_params.official_name(slot.official)}"}
        for slot in slots], "officials": [
        {"id": o.id, "label": reception_params.official_name(o)} for o in officials]})


@panel(*STAFF, audit="booking", json=True)
async def book_reception(request: web.Request) -> web.Response:
    """Book the caller for a personal reception from the card. A caller not yet known gets
    a citizen record with the name given and this number."""
    svc = _svc(request)
    me = auth.current(request)
    posted = await request.post()
    form = {k: str(v).strip() for k, v in posted.items()}
    choices = reception_params.booking_choices(form, [str(v) for v in posted.getall("need", [])])
    slot_id = _int(form.get("slot_id"))
    if not form.get("phone") or slot_id is None:
        return web.json_response({"error": "Укажите номер телефона и время приёма."},
                                 status=400)
    phone = reception_params.citizen_phone(form["phone"])
    if choices.reminder_channel == Channel.PHONE:
        try:   # the reminder is a call to this number
            phone = DiallingPolicy.from_settings(svc.settings).decide(form["phone"])
        except NumberRefused as exc:
            raise Unprocessable(f"Напоминание звонком невозможно. {exc}",
                                exc.error_id) from None
    async with svc.sessions() as session, session.begin():
        citizen_id, created = await reception_params.booking_citizen(session, phone, form)
    if created:
        await auth.audit(svc, me.staff_id, "create", "citizen", citizen_id, "card",
                         request.remote or "")
    try:
        booking_id = await receptions.book(
            svc.sessions, svc.settings, svc.calendar, receptions.BookingRequest(
                slot_id=slot_id, citizen_id=citizen_id, topic=form.get("topic", ""),
                booked_via="hotline", booked_by_id=me.staff_id, needs=choices.needs,
                accessibility_needs=choices.other_needs,
                reminder_channel=choices.reminder_channel,
                remind_day_before=choices.remind_day_before,
                remind_two_hours_before=choices.remind_two_hours_before), svc.clock())
    except (receptions.SlotTaken, receptions.BookingError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=409)
    await auth.audit(svc, me.staff_id, "create", "booking", booking_id, "card",
                     request.remote or "")
    async with svc.sessions() as session:
        slot = await session.get(ReceptionSlot, slot_id)
        sent = await receptions.delivery_summary(session, svc.settings, booking_id)
    assert slot is not None
    when = svc.calendar.local(slot.starts_at)
    # The operator reads out what the citizen will get, as the confirmation says it (R-P3).
    return web.json_response({"ok": " ".join([f"Записан на {when:%d.%m.%Y %H:%M}.", *sent]),
                              "id": booking_id, "delivery": sent})


@panel(*STAFF, check=scopes.booking_of_the_caller, audit="booking",
       refused="booking_refused", json=True)
async def cancel_reception(request: web.Request) -> web.Response:
    """Cancel the caller's booking from the card (R-P4): the time is free again at once."""
    svc = _svc(request)
    me = auth.current(request)
    booking_id = _int((await request.post()).get("booking_id"))
    if booking_id is None:
        return web.json_response({"error": "Не указана запись."}, status=400)
    async with svc.sessions() as session, session.begin():
        done = await receptions.cancel(session, booking_id,
                                       via=receptions.CANCELLED_VIA_PANEL, now=svc.clock())
    if not done:
        return web.json_response({"error": "Эта запись уже отменена или прошла."}, status=409)
    await auth.audit(svc, me.staff_id, "cancel", "booking", booking_id, "card",
                     request.remote or "")
    return web.json_response({"ok": "Запись отменена."})


@panel(*STAFF, json=True)
async def kb_beside(request: web.Request) -> web.Response:
    """Articles and, for questions outside the ministry's competence (R-H7), the agency
    directory's entries."""
    query = request.query.get("q", "")
    async with _svc(request).sessions() as session:
        found = await kb.search(session, query, limit=8)
        bodies = await kb.agencies(session, query, limit=3) if query.strip() else []
    return web.json_response({"items": [
        *({"id": a.id, "title": a.title, "body": a.body[:600]} for a in found),
        *({"id": g.id, "agency": True, "title": g.name,
           "body": " · ".join(x for x in (g.competence, g.phone, g.address, g.website) if x)}
          for g in bodies)]})


WORKLIST = (CallbackStatus.WAITING_INFO, CallbackStatus.READY, CallbackStatus.CALLING,
            CallbackStatus.FAILED)


@panel(*STAFF, audit="callback_list")
async def callbacks_page(request: web.Request) -> web.Response:
    """The callback worklist: mine, my department's, overdue (past the deadline told to the
    caller, or failed). A call made but no answer recorded stays on it until it is."""
    svc = _svc(request)
    me = await current_staff(request)
    which = request.query.get("which", "mine")
    today = svc.calendar.today(svc.clock())
    query = (select(Callback).options(selectinload(Callback.windows))
             .where(or_(Callback.status.in_(WORKLIST), (Callback.status == CallbackStatus.DONE)
                        & Callback.answer_text.is_(None)))
             .order_by(Callback.promised_date.is_(None), Callback.promised_date,
                       Callback.next_attempt_at)
             .limit(200))
    if which == "mine":
        query = query.where(Callback.assignee_id == me.id)
    elif which == "department":
        query = query.where(Callback.department_id == me.department_id)
    elif which == "overdue":
        query = query.where(or_(Callback.status == CallbackStatus.FAILED,
                                Callback.promised_date < today))
    async with svc.sessions() as session:
        rows = list((await session.scalars(query)).all())
    await auth.audit(svc, me.id, "view", "callback_list", which, str(len(rows)),
                     request.remote or "")
    return _render(request, "callbacks.html", {
        "rows": rows, "which": which, "me_id": me.id, "today": today,
        "callback_names": CALLBACK_NAMES, "note": CALLBACK_NOTES.get(
            request.query.get("note", ""), ""),
        "refusal": DiallingPolicy.from_settings(svc.settings).refusal})


CALLBACK_NOTES = {"taken": "Обратный звонок назначен вам.",
                  "ready": "Ответ готов: звонок будет сделан в удобное гражданину время.",
                  "calling": "Звоним: снимите трубку своего телефона.",
                  "done": "Ответ записан, обратный звонок закрыт."}


class Directory:
    """The card's dialogs' colleagues (by department) and agencies: the same for every card,
    read at most once every ``ttl`` seconds per process (a change shows within a minute)."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._read_at = -ttl
        self._staff: list[Staff] = []
        self._lock = asyncio.Lock()
        # The dialogs' <option>s, rendered once per read, not for every card: (staff id,
        # HTML) so the operator's own line can be left out.
        self._transfer: list[tuple[int, str, str]] = []   # (staff id, extension, label)
        self._assignee: list[tuple[int, str]] = []
        self.agency_options = Markup()

    def transfer_options(self, me: int, presence: dict[str, str]) -> Markup:
        """The colleagues, each with their phone's presence; the unreachable last."""
        rows = sorted((row for row in self._transfer if row[0] != me),
                      key=lambda row: presence.get(row[1]) == UNREACHABLE)
        return Markup("".join(Markup('<option value="{}">{}{}</option>').format(
            extension, label, f" — {presence[extension]}" if extension in presence else "")
            for _, extension, label in rows))

    def assignee_options(self, me: int) -> Markup:
        return _without(self._assignee, me)

    def _render(self, staff: list[Staff], agencies: list[Agency]) -> None:
        self._transfer = [(s.id, s.extension or "", f"{s.department.short_name}: "
                           f"{s.initials_name}, {s.position}"
                           + (f" ({s.competence})" if s.competence else "")) for s in staff]
        self._assignee = [(s.id, Markup('<option value="{}">{}</option>').format(
            s.id, s.initials_name)) for s in staff]
        self.agency_options = Markup("".join(
            Markup('<option value="{}">{}</option>').format(a.id, a.name) for a in agencies))

    async def staff(self, svc: Services) -> list[Staff]:
        """The colleagues with a phone; the option lists are as fresh as this."""
        if time.monotonic() - self._read_at < self.ttl:
            return self._staff
        async with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                async with svc.sessions() as session:
                    staff = list((await session.scalars(
                        select(Staff).where(Staff.active, Staff.extension.is_not(None))
                        .options(selectinload(Staff.department))
                        .order_by(Staff.department_id, Staff.surname))).all())
                    agencies = list((await session.scalars(
                        select(Agency).order_by(Agency.name))).all())
                self._render(staff, agencies)
                self._staff, self._read_at = staff, time.monotonic()
        return self._staff


def _without(options: list[tuple[int, str]], me: int) -> Markup:
    return Markup("".join(html for staff_id, html in options if staff_id != me))


DIRECTORY = web.AppKey("directory", Directory)


def setup(app: web.Application, ami: AMIClient | None) -> None:
    app[DIRECTORY] = Directory()
    app[HUB] = hub = OperatorHub(ami, lambda: app[SERVICES].settings)
    app.on_shutdown.append(hub.close)
    app.router.add_get("/panel/workspace", workspace)
    app.router.add_get("/panel/live", live)
    app.router.add_post("/panel/workspace/status", set_status)
    app.router.add_get("/panel/workspace/card", card)
    app.router.add_post("/panel/workspace/journal", save_journal)
    app.router.add_get("/panel/workspace/journal/fill", fill_journal)
    app.router.add_post("/panel/workspace/transfer", transfer)
    app.router.add_post("/panel/workspace/survey", to_survey)
    app.router.add_post("/panel/workspace/callback", promise_callback)
    app.router.add_get("/panel/workspace/slots", free_slots)
    app.router.add_post("/panel/workspace/book", book_reception)
    app.router.add_post("/panel/workspace/cancel-booking", cancel_reception)
    app.router.add_get("/panel/workspace/kb", kb_beside)
    app.router.add_get("/panel/callbacks", callbacks_page)

