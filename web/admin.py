"""Administration pages (issue 28), for administrators only: employees (details, role,
department, phone extension, e-mail; disabling; a new password and a new phone password,
each shown once), departments with their knowledge-base sections, heads and editors
(R-K1), the scripts the hotline speaks (R-H3); personal reception (R-P1) is in
:mod:`web.admin_reception`, on the same pieces.

Every change is made by :mod:`ivr.services.admin` / :mod:`ivr.services.reception_admin`
in one transaction with its audit entry (who, before, after); a refused one is shown on
the same page with the reason, and a non-administrator's attempt is refused and audited
by the policy middleware.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.db.models import Department, Role, Staff
from ivr.passwords import generate_password
from ivr.services import accounts, admin, kb, phones
from ivr.settings import Settings

from . import auth
from .errors import NotFound
from .policy import actor, panel
from .records import _render, _svc

ADMINS = (Role.ADMINISTRATOR,)
T = TypeVar("T")
Form = Mapping[str, str]
TABS = (("/panel/admin/staff", "Сотрудники"),
        ("/panel/admin/departments", "Подразделения и разделы"),
        ("/panel/admin/scripts", "Скрипты"), ("/panel/admin/officials", "Личный приём"))


async def _form(request: web.Request) -> dict[str, str]:
    return {k: str(v).strip() for k, v in (await request.post()).items() if k != "_csrf"}


async def _in_transaction(request: web.Request,
                          job: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with _svc(request).sessions() as session, session.begin():
        return await job(session)


DONE = {"saved": "Сохранено.",
        "disabled": "Сотрудник отключён: его сеансы завершены, токены API не действуют.",
        "moved": "Сохранено. У сотрудника другой внутренний номер.",
        "notified": "Исключение сохранено. Отменено записей (граждане уведомлены): {n}.",
        "slots": "Создано новых слотов приёма: {n}."}


def _done(code: str) -> str:
    """The ``?done=`` message after a change (``slots-12`` → «… 12.»)."""
    name, _, number = code.partition("-")
    return DONE.get(name, "").format(n=int(number) if number.isdecimal() else 0)


# What became of the phone an employee left (``?phone=`` after disabling or a new
# extension): the password always replaced; whether Asterisk has it and the queues let go.
PHONE_NOTES = {
    "ok": "Пароль прежнего телефона заменён, Asterisk уже получил его; телефон выведен из "
          "всех очередей.",
    "later": "Пароль прежнего телефона заменён; телефонная станция получит его позже — "
             "передайте это в ИТ-службу (для ИТ: «hotline asterisk render» и перезагрузка "
             "модуля res_pjsip). Телефон выведен из всех очередей.",
    "noami": "Пароль прежнего телефона заменён, но вывести телефон из очередей не удалось: "
             "нет связи с Asterisk. Он выйдет из них при перезапуске Asterisk.",
}


def _page(request: web.Request, template: str, context: dict[str, Any],
          status: int = 200) -> web.Response:
    done = " ".join(filter(None, (_done(request.query.get("done", "")),
                                  PHONE_NOTES.get(request.query.get("phone", ""), ""))))
    return _render(request, template, {"tabs": TABS, "path": request.path, "error": "",
                                       "form": {}, "done": done, **context}, status)


def _status(exc: admin.AdminError) -> int:
    return 409 if isinstance(exc, admin.AdminConflict) else 400


def _int(value: str, what: str) -> int:
    if not value.isdecimal() or len(value) > 9:
        raise admin.AdminError(f"{what}: выберите из списка.")
    return int(value)


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _shown_once(request: web.Request, heading: str, rows: list[tuple[str, str]],
                back: str) -> web.Response:
    return _page(request, "admin_secret.html", {"heading": heading, "rows": rows,
                                                "back": back})


# --- staff -----------------------------------------------------------------------------------

def staff_details(form: Form) -> admin.StaffDetails:
    try:
        role = Role(form.get("role", ""))
    except ValueError:
        raise admin.AdminError("Выберите роль из списка.") from None
    return admin.StaffDetails(
        surname=form.get("surname", ""), first_name=form.get("first_name", ""), role=role,
        department=str(_int(form.get("department_id", ""), "Подразделение")),
        patronymic=form.get("patronymic", ""), position=form.get("position", ""),
        extension=form.get("extension") or None, email=form.get("email") or None)


async def _staff_list(request: web.Request, error: str = "", form: Form | None = None,
                      status: int = 200) -> web.Response:
    async with _svc(request).sessions() as session:
        staff = await admin.staff_list(session)
        departments = (await session.scalars(select(Department).order_by(
            Department.name))).all()
    return _page(request, "admin_staff.html", {
        "staff": staff, "departments": departments, "roles": admin.ROLE_NAMES,
        "phones": _svc(request).settings.asterisk.operator_extensions, "error": error,
        "form": form or {}}, status)


@panel(*ADMINS, audit="staff")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/panel/admin/staff")


@panel(*ADMINS, audit="staff")
async def staff_page(request: web.Request) -> web.Response:
    # Employees' personal data (names, e-mails, phones): a view, audited as the card is.
    await auth.audit(_svc(request), actor(request).staff_id, "view", "staff", "", "список",
                     request.remote or "")
    return await _staff_list(request)


@panel(*ADMINS, audit="staff")
async def staff_add(request: web.Request) -> web.Response:
    """A new employee; the generated password is shown this once."""
    form = await _form(request)
    password = generate_password()
    hashed = await request.app[auth.LOGIN_GUARD].hasher.hash(password)
    me = auth.current(request)
    try:
        details = staff_details(form)
        staff = await _in_transaction(request, lambda s: admin.add_staff(
            s, _svc(request).settings, form.get("login", ""), details, hashed,
            who=me.staff_id))
    except admin.AdminError as exc:
        return await _staff_list(request, str(exc), form, _status(exc))
    return _shown_once(request, "Сотрудник добавлен", [("Логин", staff.login),
                       ("Пароль", password)], f"/panel/admin/staff/{staff.id}")


async def _staff_card(request: web.Request, staff_id: int, error: str = "",
                      status: int = 200) -> web.Response:
    async with _svc(request).sessions() as session:
        try:
            staff = await admin.staff_by_id(session, staff_id)
        except admin.AdminError:
            raise NotFound("Сотрудник не найден.", "staff_not_found") from None
        departments = (await session.scalars(select(Department).order_by(
            Department.name))).all()
    me = auth.current(request)
    await auth.audit(_svc(request), me.staff_id, "view", "staff", staff.id, "карточка",
                     request.remote or "")
    return _page(request, "admin_staff_card.html", {
        "staff": staff, "departments": departments, "roles": admin.ROLE_NAMES,
        "phones": _svc(request).settings.asterisk.operator_extensions, "error": error},
        status)


@panel(*ADMINS, audit="staff")
async def staff_card(request: web.Request) -> web.Response:
    return await _staff_card(request, _id(request))


async def _edit(request: web.Request, staff_id: int, form: Form) -> web.Response:
    svc, who = _svc(request), actor(request).staff_id
    details = staff_details(form)
    left = await _in_transaction(request, lambda s: _edit_in(s, svc.settings, staff_id,
                                                             details, who))
    if left is None:
        raise web.HTTPSeeOther(f"/panel/admin/staff/{staff_id}?done=saved")
    note = await release_phone(request, left)
    raise web.HTTPSeeOther(f"/panel/admin/staff/{staff_id}?done=moved&phone={note}")


async def _edit_in(session: AsyncSession, settings: Settings, staff_id: int,
                   details: admin.StaffDetails, who: int) -> str | None:
    """The change; the phone the employee left, when it was one of the operators'."""
    staff = await admin.staff_by_id(session, staff_id)
    old = staff.extension
    await admin.edit_staff(session, settings, staff, details, who=who)
    return admin.operator_phone(settings, old) if old != staff.extension else None


async def release_phone(request: web.Request, extension: str) -> str:
    """After the change is committed: the running development Asterisk reads the phone's
    new password, and the phone leaves every queue (its open registration would still take
    queue calls otherwise). A :data:`PHONE_NOTES` key. Shared with the API."""
    from ivr.asterisk_dev import DevAsterisk

    from .workspace import HUB

    svc = _svc(request)
    interface = svc.settings.asterisk.operator_dial.format(extension=extension)
    queues = [queue.name for queue in (await svc.menu.fresh(svc)).queues]
    left = await phones.leave_queues(request.app[HUB].ami, interface, queues)
    reloaded = await asyncio.to_thread(DevAsterisk(svc.settings).reload_phones)
    return "noami" if not left else "ok" if reloaded else "later"


async def _password(request: web.Request, staff_id: int, form: Form) -> web.Response:
    """A generated password, shown this once; their open sessions end."""
    svc, who = _svc(request), actor(request).staff_id
    password = generate_password()
    hashed = await request.app[auth.LOGIN_GUARD].hasher.hash(password)

    async def job(session: AsyncSession) -> Staff:
        staff = await admin.staff_by_id(session, staff_id)
        await accounts.set_password(session, staff, hashed, svc.clock(), who=who)
        return staff

    staff = await _in_transaction(request, job)
    return _shown_once(request, "Новый пароль", [("Логин", staff.login),
                       ("Пароль", password)], f"/panel/admin/staff/{staff_id}")


async def _disable(request: web.Request, staff_id: int, form: Form) -> web.Response:
    """No more logins: their sessions end at once, their API tokens stop working."""
    svc, who = _svc(request), actor(request).staff_id

    async def job(session: AsyncSession) -> str | None:
        staff = await admin.staff_by_id(session, staff_id)
        await admin.disable_staff(session, svc.settings, staff, svc.clock(), who=who)
        return admin.operator_phone(svc.settings, staff.extension)

    left = await _in_transaction(request, job)
    tail = f"&phone={await release_phone(request, left)}" if left else ""
    raise web.HTTPSeeOther(f"/panel/admin/staff/{staff_id}?done=disabled{tail}")


async def regenerate_phone(request: web.Request, staff_id: int) -> tuple[str, str, bool]:
    """A new SIP password for the employee's phone: (extension, password, whether the
    running development Asterisk has it already; an installed one reads it after
    ``hotline asterisk render`` and a res_pjsip reload). Shared with the API."""
    from ivr.asterisk_dev import DevAsterisk

    svc, who = _svc(request), actor(request).staff_id

    async def job(session: AsyncSession) -> tuple[str, str]:
        staff = await admin.staff_by_id(session, staff_id)
        if not staff.extension:
            raise admin.AdminError("У сотрудника нет внутреннего номера.")
        try:
            return staff.extension, await phones.regenerate(session, svc.settings,
                                                            staff.extension, who=who)
        except phones.PhoneError as exc:
            raise admin.AdminError(str(exc)) from None

    extension, password = await _in_transaction(request, job)
    return extension, password, await asyncio.to_thread(
        DevAsterisk(svc.settings).reload_phones)


async def _phone(request: web.Request, staff_id: int, form: Form) -> web.Response:
    extension, password, reloaded = await regenerate_phone(request, staff_id)
    note = ("Телефон уже работает с новым паролем." if reloaded else
            "Пароль сохранён, но телефонная станция получит его позже: передайте это "
            "в ИТ-службу (для ИТ: «hotline asterisk render» и перезагрузка модуля res_pjsip).")
    return _shown_once(request, "Новый пароль телефона", [
        ("Внутренний номер", extension), ("Пароль SIP", password), ("Телефонная станция", note)],
        f"/panel/admin/staff/{staff_id}")


STAFF_ACTIONS: dict[str, Callable[[web.Request, int, Form], Awaitable[web.Response]]] = {
    "edit": _edit, "password": _password, "disable": _disable, "phone": _phone}


@panel(*ADMINS, audit="staff")
async def staff_post(request: web.Request) -> web.Response:
    """``edit``, ``password``, ``disable``, ``phone`` of one employee."""
    action, staff_id = request.match_info["action"], _id(request)
    if action not in STAFF_ACTIONS:
        raise NotFound("Такого действия нет.", "admin_action_not_found")
    form = await _form(request)
    try:
        return await STAFF_ACTIONS[action](request, staff_id, form)
    except admin.AdminError as exc:
        return await _staff_card(request, staff_id, str(exc), _status(exc))


# --- departments, sections, editors (R-K1) -----------------------------------------------

async def _departments(request: web.Request, error: str = "", form: Form | None = None,
                       status: int = 200) -> web.Response:
    async with _svc(request).sessions() as session:
        views = await admin.departments(session)
    return _page(request, "admin_departments.html", {"views": views, "error": error,
                                                     "form": form or {}}, status)


@panel(*ADMINS, audit="department")
async def departments_page(request: web.Request) -> web.Response:
    return await _departments(request)


def department_details(form: Form) -> admin.DepartmentDetails:
    return admin.DepartmentDetails(form.get("name", ""), form.get("short_name", ""),
                                   form.get("competence", ""))


@panel(*ADMINS, audit="department")
async def department_add(request: web.Request) -> web.Response:
    form, me = await _form(request), auth.current(request)
    try:
        await _in_transaction(request, lambda s: admin.save_department(
            s, None, department_details(form), who=me.staff_id))
    except admin.AdminError as exc:
        return await _departments(request, str(exc), form, _status(exc))
    raise web.HTTPSeeOther("/panel/admin/departments?done=saved")


async def department_action(session: AsyncSession, action: str, department_id: int,
                            form: Form, who: int) -> None:
    """One change of a department (shared with the API)."""
    if action == "edit":
        await admin.save_department(session, department_id, department_details(form), who=who)
    elif action == "section":
        await admin.save_section(session, department_id, form.get("title", ""), who=who)
    elif action == "editor":
        section = await admin.section_of(session, department_id)
        await admin.set_section_editor(session, section.id,
                                       _int(form.get("staff_id", ""), "Сотрудник"),
                                       form.get("editor") == "1", who=who)
    else:
        raise NotFound("Такого действия нет.", "admin_action_not_found")


@panel(*ADMINS, audit="department")
async def department_post(request: web.Request) -> web.Response:
    """``edit`` the department, its ``section`` (made or renamed), an ``editor`` named or
    removed."""
    form, me = await _form(request), auth.current(request)
    try:
        await _in_transaction(request, lambda s: department_action(
            s, request.match_info["action"], _id(request), form, me.staff_id))
    except admin.AdminError as exc:
        return await _departments(request, str(exc), form, _status(exc))
    raise web.HTTPSeeOther(f"/panel/admin/departments?done=saved#department-{_id(request)}")


# --- scripts (R-H3) --------------------------------------------------------------------------

async def _scripts(request: web.Request, error: str = "", form: Form | None = None,
                   status: int = 200) -> web.Response:
    async with _svc(request).sessions() as session:
        found = await admin.scripts(session)
    return _page(request, "admin_scripts.html", {
        "scripts": found, "names": admin.SCRIPTS, "error": error, "form": form or {}}, status)


@panel(*ADMINS, audit="script")
async def scripts_page(request: web.Request) -> web.Response:
    return await _scripts(request)


@panel(*ADMINS, audit="script")
async def script_post(request: web.Request) -> web.Response:
    """Saved as the knowledge-base article with its key and rendered here at once; the
    other serving processes render it within ``tts.scripts_refresh_seconds``."""
    svc, me, form = _svc(request), auth.current(request), await _form(request)
    try:
        await _in_transaction(request, lambda s: admin.save_script(
            s, svc.calendar, key=form.get("key", ""), text=form.get("text", ""),
            staff_id=me.staff_id, now=svc.clock()))
    except (admin.AdminError, kb.KbError) as exc:
        return await _scripts(request, str(exc), form, 400)
    await kb.refresh_scripts(svc)
    raise web.HTTPSeeOther("/panel/admin/scripts?done=saved")


def setup(app: web.Application) -> None:
    from . import admin_reception  # imports this module: its pages share these pieces

    app.router.add_get("/panel/admin", home)
    app.router.add_get("/panel/admin/staff", staff_page)
    app.router.add_post("/panel/admin/staff", staff_add)
    app.router.add_get(r"/panel/admin/staff/{id:\d{1,9}}", staff_card)
    app.router.add_post(r"/panel/admin/staff/{id:\d{1,9}}/{action:[a-z]+}", staff_post)
    app.router.add_get("/panel/admin/departments", departments_page)
    app.router.add_post("/panel/admin/departments", department_add)
    app.router.add_post(r"/panel/admin/departments/{id:\d{1,9}}/{action:[a-z]+}",
                        department_post)
    app.router.add_get("/panel/admin/scripts", scripts_page)
    app.router.add_post("/panel/admin/scripts", script_post)
    admin_reception.setup(app)
