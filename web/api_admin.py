"""Administration through the JSON API (issue 28), for an administrator's token: the same
changes as the panel's administration pages (:mod:`web.admin`), made by the same services
with the same checks and audit entries.

Bodies are JSON objects with the panel forms' field names; a refused change answers
``{"error": "<Russian message>", "id": "admin_refused"}`` with 400, or 409 when the value
is taken (a login, an extension, a department's name). A generated password is in the
answer this once.

- ``GET /api/v1/admin/staff``; ``POST …/staff`` (201 with ``password``);
  ``PUT …/staff/{id}``; ``POST …/staff/{id}/password|disable|phone``
- ``GET /api/v1/admin/departments``; ``POST …/departments``;
  ``POST …/departments/{id}/edit|section|editor``
- ``PUT /api/v1/admin/scripts/{key}`` ``{"text": "…"}``
- ``GET /api/v1/admin/officials``; ``POST …/officials``;
  ``POST …/officials/{id}/edit|retire|restore|schedule|unschedule|exception|unexception``
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.db.models import Role, Staff
from ivr.passwords import generate_password
from ivr.services import accounts, admin, kb
from ivr.services import reception_admin as ra
from ivr.settings import Settings

from . import admin as pages
from . import admin_reception as reception_pages
from . import auth
from .errors import Conflict, Invalid, NotFound
from .policy import actor, api
from .records import _svc

ADMINS = (Role.ADMINISTRATOR,)
T = TypeVar("T")


async def _body(request: web.Request) -> dict[str, str]:
    """The JSON object as the forms' fields: strings, numbers and booleans only."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("тело запроса — не JSON", "bad_json") from None
    if not isinstance(body, dict) or any(
            isinstance(v, (dict, list)) for v in body.values()):
        raise Invalid("ожидается JSON-объект с полями-значениями", "bad_json")
    return {str(k): ("1" if v is True else "0" if v is False else "" if v is None
                     else str(v).strip()) for k, v in body.items()}


async def _run(request: web.Request, job: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``job`` in one transaction; a refusal becomes the API's error answer."""
    try:
        async with _svc(request).sessions() as session, session.begin():
            return await job(session)
    except admin.AdminConflict as exc:
        raise Conflict(str(exc), "admin_refused") from None
    except (admin.AdminError, kb.KbError) as exc:
        raise Invalid(str(exc), "admin_refused") from None


def _staff_json(s: Staff) -> dict[str, object]:
    return {k: getattr(s, k) for k in ("id", "login", "surname", "first_name", "patronymic",
                                       "position", "department_id", "extension", "email",
                                       "active")} | {"role": s.role.value}


@api(*ADMINS, audit="staff")
async def staff_list(request: web.Request) -> web.Response:
    async with _svc(request).sessions() as session:
        rows = await admin.staff_list(session)
    # Employees' personal data (names, e-mails, phones): a view, audited as the card is.
    await auth.audit(_svc(request), actor(request).staff_id, "view", "staff", "",
                     f"список (API), {len(rows)}", request.remote or "")
    return web.json_response({"items": [_staff_json(s) for s in rows]})


@api(*ADMINS, audit="staff")
async def staff_add(request: web.Request) -> web.Response:
    body, who = await _body(request), actor(request).staff_id
    password = generate_password()
    hashed = await request.app[auth.LOGIN_GUARD].hasher.hash(password)
    staff = await _run(request, lambda s: admin.add_staff(
        s, _svc(request).settings, body.get("login", ""), _details(body), hashed, who=who))
    return web.json_response({**_staff_json(staff), "password": password}, status=201)


def _details(body: dict[str, str]) -> admin.StaffDetails:
    try:
        return pages.staff_details(body)
    except admin.AdminError as exc:
        raise Invalid(str(exc), "admin_refused") from None


@api(*ADMINS, audit="staff")
async def staff_edit(request: web.Request) -> web.Response:
    body, who, staff_id = await _body(request), actor(request).staff_id, _id(request)
    details = _details(body)

    async def job(session: AsyncSession) -> tuple[dict[str, object], str | None]:
        staff = await admin.staff_by_id(session, staff_id)
        old = staff.extension
        await admin.edit_staff(session, _svc(request).settings, staff, details, who=who)
        left = admin.operator_phone(_svc(request).settings, old)
        return _staff_json(staff), left if old != staff.extension else None

    saved, left = await _run(request, job)
    return web.json_response({**saved, **await _released(request, left)})


async def _released(request: web.Request, extension: str | None) -> dict[str, object]:
    """The phone the employee left: its new SIP password taken, out of the queues
    (``phone_released``: ``ok``, ``later`` — Asterisk reads the password after a render
    and a res_pjsip reload — or ``noami``: the queues could not be asked)."""
    if extension is None:
        return {}
    return {"phone_left": extension,
            "phone_released": await pages.release_phone(request, extension)}


@api(*ADMINS, audit="staff")
async def staff_action(request: web.Request) -> web.Response:
    """``password`` (a generated one, in the answer once), ``disable``, ``phone``."""
    action, staff_id, who = request.match_info["action"], _id(request), actor(request).staff_id
    now = _svc(request).clock()
    if action == "phone":
        try:
            extension, password, reloaded = await pages.regenerate_phone(request, staff_id)
        except admin.AdminError as exc:
            raise Invalid(str(exc), "admin_refused") from None
        return web.json_response({"extension": extension, "sip_password": password,
                                  "asterisk_reloaded": reloaded})
    if action == "disable":
        settings = _svc(request).settings
        ended, left = await _run(request, lambda s: _disable(s, settings, staff_id, now, who))
        return web.json_response({"id": staff_id, "sessions_ended": ended,
                                  **await _released(request, left)})
    if action != "password":
        raise NotFound("Такого действия нет.", "admin_action_not_found")
    password = generate_password()
    hashed = await request.app[auth.LOGIN_GUARD].hasher.hash(password)
    ended = await _run(request, lambda s: _password(s, staff_id, hashed, now, who))
    return web.json_response({"id": staff_id, "password": password, "sessions_ended": ended})


async def _disable(session: AsyncSession, settings: Settings, staff_id: int, now: datetime,
                   who: int) -> tuple[int, str | None]:
    staff = await admin.staff_by_id(session, staff_id)
    ended = await admin.disable_staff(session, settings, staff, now, who=who)
    return ended, admin.operator_phone(settings, staff.extension)


async def _password(session: AsyncSession, staff_id: int, hashed: str, now: datetime,
                    who: int) -> int:
    staff = await admin.staff_by_id(session, staff_id)
    return await accounts.set_password(session, staff, hashed, now, who=who)


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


@api(*ADMINS, audit="department")
async def departments(request: web.Request) -> web.Response:
    async with _svc(request).sessions() as session:
        views = await admin.departments(session)
    return web.json_response({"items": [{
        "id": v.department.id, "name": v.department.name,
        "short_name": v.department.short_name, "competence": v.department.competence,
        "heads": [h.id for h in v.heads], "editors": [e.id for e in v.editors],
        "section": {"id": v.section.id, "title": v.section.title} if v.section else None}
        for v in views]})


@api(*ADMINS, audit="department")
async def department_add(request: web.Request) -> web.Response:
    body, who = await _body(request), actor(request).staff_id
    department = await _run(request, lambda s: admin.save_department(
        s, None, pages.department_details(body), who=who))
    return web.json_response({"id": department.id}, status=201)


@api(*ADMINS, audit="department")
async def department_action(request: web.Request) -> web.Response:
    body, who = await _body(request), actor(request).staff_id
    await _run(request, lambda s: pages.department_action(
        s, request.match_info["action"], _id(request), body, who))
    return web.json_response({"id": _id(request)})


@api(*ADMINS, audit="script")
async def script_put(request: web.Request) -> web.Response:
    svc, body, who = _svc(request), await _body(request), actor(request).staff_id
    saved = await _run(request, lambda s: admin.save_script(
        s, svc.calendar, key=request.match_info["key"], text=body.get("text", ""),
        staff_id=who, now=svc.clock()))
    await kb.refresh_scripts(svc)
    return web.json_response({"article_id": saved})


@api(*ADMINS, audit="official")
async def officials(request: web.Request) -> web.Response:
    svc = _svc(request)
    today = svc.calendar.today(svc.clock())
    async with svc.sessions() as session:
        views = [await ra.official_view(session, o, today)
                 for o in await ra.all_officials(session)]
    return web.json_response({"items": [{
        "id": v.official.id, "staff_id": v.official.staff_id, "title": v.official.title,
        "kind": v.official.kind, "place": v.official.place, "active": v.official.active,
        "schedules": [{"id": s.id, "weekday": s.weekday, "starts": f"{s.starts:%H:%M}",
                       "ends": f"{s.ends:%H:%M}", "slot_minutes": s.slot_minutes}
                      for s in v.schedules],
        "exceptions": [{"id": e.id, "kind": e.kind.value, "starts_on": str(e.starts_on),
                        "ends_on": str(e.ends_on), "reason": e.reason}
                       for e in v.exceptions]} for v in views]})


@api(*ADMINS, audit="official")
async def official_add(request: web.Request) -> web.Response:
    body, who = await _body(request), actor(request).staff_id
    official = await _run(request, lambda s: ra.save_official(
        s, None, reception_pages.official_details(body), who=who))
    return web.json_response({"id": official.id}, status=201)


@api(*ADMINS, audit="official")
async def official_action(request: web.Request) -> web.Response:
    body = await _body(request)
    done = await _run(request, lambda s: reception_pages.official_action(
        s, request, request.match_info["action"], _id(request), body))
    told = int(done.split("-")[1]) if done.startswith("notified-") else None
    return web.json_response({"id": _id(request), **(
        {"bookings_cancelled": told} if told is not None else {})})


def setup(app: web.Application) -> None:
    base, num, act = "/api/v1/admin", r"{id:\d{1,9}}", "{action:[a-z]+}"
    app.router.add_get(f"{base}/staff", staff_list)
    app.router.add_post(f"{base}/staff", staff_add)
    app.router.add_put(f"{base}/staff/{num}", staff_edit)
    app.router.add_post(f"{base}/staff/{num}/{act}", staff_action)
    app.router.add_get(f"{base}/departments", departments)
    app.router.add_post(f"{base}/departments", department_add)
    app.router.add_post(f"{base}/departments/{num}/{act}", department_action)
    app.router.add_put(f"{base}/scripts/{{key:script\\.[a-z_]+}}", script_put)
    app.router.add_get(f"{base}/officials", officials)
    app.router.add_post(f"{base}/officials", official_add)
    app.router.add_post(f"{base}/officials/{num}/{act}", official_action)


def _op(summary: str, *, path: tuple[str, ...] = (), body: bool = True,
        created: bool = False) -> dict[str, Any]:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "integer" if name == "id" else "string"}} for name in path]
    answers = {"201" if created else "200": {"description": "ok"},
               "400": {"description": "{\"error\": \"…\", \"id\": \"admin_refused\"}"},
               "403": {"description": "не администратор"},
               "409": {"description": "занято: логин, внутренний номер, название"}}
    found: dict[str, Any] = {"summary": summary, "parameters": params, "responses": answers}
    if body:
        found["requestBody"] = {"content": {"application/json": {"schema": {
            "type": "object"}}}}
    return found


# Described in /api/v1/openapi.json beside the read API.
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/admin/staff": {
        "get": _op("Сотрудники", body=False),
        "post": _op("Новый сотрудник; пароль в ответе один раз", created=True)},
    "/api/v1/admin/staff/{id}": {"put": _op("Изменить сотрудника", path=("id",))},
    "/api/v1/admin/staff/{id}/{action}": {"post": _op(
        "password | disable | phone", path=("id", "action"), body=False)},
    "/api/v1/admin/departments": {
        "get": _op("Подразделения, руководители, разделы, редакторы (R-K1)", body=False),
        "post": _op("Новое подразделение с разделом базы знаний", created=True)},
    "/api/v1/admin/departments/{id}/{action}": {"post": _op(
        "edit | section | editor", path=("id", "action"))},
    "/api/v1/admin/scripts/{key}": {"put": _op(
        "Текст скрипта (R-H3): {\"text\": \"…\"}", path=("key",))},
    "/api/v1/admin/officials": {
        "get": _op("Личный приём: должностные лица, расписания, исключения", body=False),
        "post": _op("Новое должностное лицо (R-P1)", created=True)},
    "/api/v1/admin/officials/{id}/{action}": {"post": _op(
        "edit | retire | restore | schedule | unschedule | exception | unexception",
        path=("id", "action"))},
}
