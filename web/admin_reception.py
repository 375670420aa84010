"""Administration of personal reception (issue 28, R-P1), part of the administration
pages (:mod:`web.admin`): officials (the minister, deputies, department heads,
specialists), their weekly schedules and places, slots, and the days they do not receive
— the booked citizens' receptions cancelled and each of them told by their channel."""

from __future__ import annotations

from datetime import date, time

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.db.models import ExceptionKind, Staff
from ivr.services import admin, receptions
from ivr.services import reception_admin as ra

from . import auth
from .admin import ADMINS, Form, _form, _id, _in_transaction, _int, _page, _status
from .errors import NotFound
from .policy import actor, panel
from .records import _svc


async def _officials(request: web.Request, error: str = "", form: Form | None = None,
                     status: int = 200) -> web.Response:
    async with _svc(request).sessions() as session:
        officials = await ra.all_officials(session)
        staff = (await session.scalars(select(Staff).where(Staff.active).order_by(
            Staff.surname, Staff.first_name))).all()
    return _page(request, "admin_officials.html", {
        "officials": officials, "staff": staff, "kinds": ra.KIND_NAMES, "error": error,
        "form": form or {}}, status)


@panel(*ADMINS, audit="official")
async def officials_page(request: web.Request) -> web.Response:
    return await _officials(request)


def official_details(form: Form) -> ra.OfficialDetails:
    return ra.OfficialDetails(_int(form.get("staff_id", ""), "Сотрудник"),
                              form.get("title", ""), form.get("kind", ""),
                              form.get("place", ""), form.get("directions", ""))


@panel(*ADMINS, audit="official")
async def official_add(request: web.Request) -> web.Response:
    form, me = await _form(request), auth.current(request)
    try:
        official = await _in_transaction(request, lambda s: ra.save_official(
            s, None, official_details(form), who=me.staff_id))
    except admin.AdminError as exc:
        return await _officials(request, str(exc), form, _status(exc))
    raise web.HTTPSeeOther(f"/panel/admin/officials/{official.id}?done=saved")


@panel(*ADMINS, audit="official")
async def slots_post(request: web.Request) -> web.Response:
    """Slots for the next weeks now, rather than at the hourly job."""
    svc = _svc(request)
    made = await receptions.generate_slots(svc.sessions, svc.calendar,
                                           svc.calendar.today(svc.clock()),
                                           svc.settings.reception.days_ahead)
    me = auth.current(request)
    await auth.audit(svc, me.staff_id, "generate", "reception_slot", "",
                     f"создано слотов: {made}", request.remote or "")
    raise web.HTTPSeeOther(f"/panel/admin/officials?done=slots-{made}")


async def _official_card(request: web.Request, official_id: int, error: str = "",
                         form: Form | None = None, status: int = 200) -> web.Response:
    svc = _svc(request)
    async with svc.sessions() as session:
        try:
            official = await ra.official_by_id(session, official_id)
        except admin.AdminError:
            raise NotFound("Должностное лицо не найдено.", "official_not_found") from None
        view = await ra.official_view(session, official, svc.calendar.today(svc.clock()))
        staff = (await session.scalars(select(Staff).where(Staff.active).order_by(
            Staff.surname))).all()
    return _page(request, "admin_official.html", {
        "view": view, "staff": staff, "kinds": ra.KIND_NAMES, "weekdays": ra.WEEKDAYS,
        "exception_names": ra.EXCEPTION_NAMES, "schedule_text": ra.schedule_text,
        "error": error, "form": form or {}}, status)


@panel(*ADMINS, audit="official")
async def official_card(request: web.Request) -> web.Response:
    return await _official_card(request, _id(request))


def _time(value: str, what: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise admin.AdminError(f"{what}: время в виде ЧЧ:ММ.") from None


def _date(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise admin.AdminError(f"{what}: дата в виде ГГГГ-ММ-ДД.") from None


def schedule_of(form: Form) -> ra.ScheduleDetails:
    return ra.ScheduleDetails(_int(form.get("weekday", ""), "День недели"),
                              _time(form.get("starts", ""), "Начало"),
                              _time(form.get("ends", ""), "Конец"),
                              _int(form.get("slot_minutes", "30"), "Длительность"))


def exception_of(form: Form) -> ra.ExceptionDetails:
    try:
        kind = ExceptionKind(form.get("kind", ""))
    except ValueError:
        raise admin.AdminError("Выберите: отпуск или отмена приёма.") from None
    return ra.ExceptionDetails(kind, _date(form.get("starts_on", ""), "Первый день"),
                               _date(form.get("ends_on", "") or form.get("starts_on", ""),
                                     "Последний день"), form.get("reason", ""))


async def official_action(session: AsyncSession, request: web.Request, action: str,
                          official_id: int, form: Form) -> str:
    """One change of an official (shared with the API); what to tell the administrator."""
    svc, who = _svc(request), actor(request).staff_id
    official = await ra.official_by_id(session, official_id)
    if action == "edit":
        await ra.save_official(session, official_id, official_details(form), who=who)
    elif action in ("retire", "restore"):
        await ra.set_active(session, official, action == "restore", svc.clock(), who=who)
    elif action == "schedule":
        await ra.add_schedule(session, official, schedule_of(form), who=who)
    elif action == "unschedule":
        await ra.remove_schedule(session, official, _int(form.get("schedule_id", ""),
                                                         "Время приёма"),
                                 svc.calendar, svc.clock(), who=who)
    elif action == "exception":
        _, told = await ra.add_exception(session, svc.settings, svc.calendar, official,
                                         exception_of(form), svc.clock(), who=who)
        return f"notified-{told}"
    elif action == "unexception":
        await ra.remove_exception(session, official, _int(form.get("exception_id", ""),
                                                          "Исключение"), who=who)
    else:
        raise NotFound("Такого действия нет.", "admin_action_not_found")
    return "saved"


@panel(*ADMINS, audit="official")
async def official_post(request: web.Request) -> web.Response:
    """``edit``, ``retire``/``restore``, ``schedule``/``unschedule``,
    ``exception``/``unexception`` of one official."""
    form, official_id = await _form(request), _id(request)
    try:
        done = await _in_transaction(request, lambda s: official_action(
            s, request, request.match_info["action"], official_id, form))
    except admin.AdminError as exc:
        return await _official_card(request, official_id, str(exc), form, _status(exc))
    raise web.HTTPSeeOther(f"/panel/admin/officials/{official_id}?done={done}")


def setup(app: web.Application) -> None:
    app.router.add_get("/panel/admin/officials", officials_page)
    app.router.add_post("/panel/admin/officials", official_add)
    app.router.add_post("/panel/admin/slots", slots_post)
    app.router.add_get(r"/panel/admin/officials/{id:\d{1,9}}", official_card)
    app.router.add_post(r"/panel/admin/officials/{id:\d{1,9}}/{action:[a-z]+}",
                        official_post)
