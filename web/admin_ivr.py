"""«Меню и очереди» for administrators (issue 28): queues, the topic menu, which operator
serves which queue (skills), the working calendar's own days — as panel pages and as the
JSON API. Every change goes through :func:`ivr.ivr_setup.apply_change`: audited with
before/after, live for callers at once, Asterisk's queues reloaded."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, time
from typing import Any
from urllib.parse import quote

from aiohttp import web
from itsdangerous import Signer
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import Role, Staff
from ivr.ivr_setup import Applied, Step, Who, apply_change
from ivr.services import menu, work_days
from ivr.services.menu import QueueSpec, SetupError, TopicInput
from ivr.settings import Topic

from .errors import Conflict, Invalid
from .policy import actor, api, panel
from .records import _render, _svc

ADMINS = (Role.ADMINISTRATOR,)
PAGES = {"menu": "/panel/admin/ivr", "skills": "/panel/admin/ivr/skills",
         "calendar": "/panel/admin/ivr/calendar"}


@dataclass
class _Link:
    ami: AMIClient | None


AMI = web.AppKey("admin_ivr_ami", _Link)


# --- what a form or a JSON body asks for ----------------------------------------------------

def _int(fields: Mapping[str, str], key: str, what: str) -> int:
    try:
        return int(fields.get(key, "").strip())
    except ValueError:
        raise SetupError(f"{what}: нужно целое число.") from None


def _queue_step(name: str, fields: Mapping[str, str], exists: bool | None = None) -> Step:
    seconds = _int(fields, "service_level_seconds", "Норматив ответа")
    return lambda s: menu.save_queue(s, name, fields.get("title", ""),
                                     fields.get("strategy", ""), seconds, exists=exists)


def _topic_input(digit: str, fields: Mapping[str, str]) -> TopicInput:
    return TopicInput(digit, fields.get("code", "").strip(), fields.get("title", ""),
                      fields.get("action", "queue"), fields.get("queue", ""),
                      fields.get("agency", ""))


def _topic_step(digit: str, fields: Mapping[str, str], old_digit: str) -> Step:
    given = _topic_input(digit, fields)
    return lambda s: menu.save_topic(s, given, old_digit=old_digit)


def _skill_step(staff_id: int, queue: str, penalty: str) -> Step:
    value = None if not penalty.strip() else _int({"p": penalty}, "p", "Приоритет")
    return lambda s: menu.set_skill(s, staff_id, queue, value)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise SetupError("Дата: ГГГГ-ММ-ДД.", "calendar_day_invalid") from None


def _day_step(day: date, fields: Mapping[str, str]) -> Step:
    raw = fields.get("closes_at", "").strip()
    try:
        closes = time.fromisoformat(raw) if raw else None
    except ValueError:
        raise SetupError("Время окончания работы: ЧЧ:ММ.", "calendar_time_invalid") from None
    return lambda s: work_days.save_day(s, day, fields.get("kind", ""), closes,
                                        fields.get("note", ""))


async def _apply(request: web.Request, object_type: str, object_id: str, step: Step,
                 queues: bool = False) -> Applied:
    svc = _svc(request)
    who = Who(actor(request).staff_id, request.remote or "")
    return await apply_change(svc, request.app[AMI].ami, who, object_type=object_type,
                              object_id=object_id, step=step, queues=queues)


# --- panel pages -----------------------------------------------------------------------------

def _signer(request: web.Request, kind: str) -> Signer:
    return Signer(_svc(request).settings.panel.secret, salt=f"admin-ivr-{kind}")


def _mark(request: web.Request, kind: str, text: str) -> str:
    return _signer(request, kind).get_signature(text).decode()


def _note_query(request: web.Request, kind: str, text: str) -> str:
    """``?done=…`` / ``?warning=…`` after a change, signed: the page shows only a text
    this panel wrote, never one a crafted link carries."""
    return f"{kind}={quote(text)}&{kind}_mark={_mark(request, kind, text)}"


def _notes(request: web.Request) -> dict[str, str]:
    found = {}
    for kind in ("done", "warning"):
        text, mark = request.query.get(kind, ""), request.query.get(f"{kind}_mark", "")
        found[kind] = text if text and _signer(request, kind).verify_signature(
            text, mark) else ""
    return found


def _editing(queues: Sequence[QueueSpec], topics: Sequence[Topic],
             query: Mapping[str, str]) -> dict[str, Any]:
    """``?queue=name`` / ``?topic=digit``: that one's form, filled with what it holds."""
    for q in queues:
        if q.name == query.get("queue"):
            return {"form": {**asdict(q), "editing": q.name}, "unfold": "queue-edit"}
    for t in topics:
        if t.digit == query.get("topic"):
            return {"form": {**t.model_dump(), "old_digit": t.digit}, "unfold": "topic"}
    return {}


async def _menu(request: web.Request) -> dict[str, Any]:
    svc = _svc(request)
    setup = await svc.menu.fresh(svc)
    return {"queues": setup.queues, "topics": setup.ivr.topics,
            "general_queue": svc.settings.ivr.general_queue, "strategies": menu.STRATEGIES,
            "actions": menu.ACTIONS, "section": "menu",
            **_editing(setup.queues, setup.ivr.topics, request.query)}


async def _skills(request: web.Request) -> dict[str, Any]:
    svc = _svc(request)
    setup = await svc.menu.fresh(svc)
    async with svc.sessions() as session:
        operators = list(await session.scalars(select(Staff).where(
            Staff.role == Role.OPERATOR, Staff.active, Staff.extension.is_not(None))
            .order_by(Staff.surname)))
        skills = await menu.all_skills(session)
    return {"queues": setup.queues, "operators": operators, "skills": skills,
            "section": "skills"}


async def _calendar(request: web.Request) -> dict[str, Any]:
    svc = _svc(request)
    async with svc.sessions() as session:
        days = await work_days.listed(session, svc.calendar.today(svc.clock()))
    return {"days": days, "kinds": work_days.KINDS, "section": "calendar"}


VIEWS = {"menu": ("admin_ivr_menu.html", _menu), "skills": ("admin_ivr_skills.html", _skills),
         "calendar": ("admin_ivr_calendar.html", _calendar)}


async def _show(request: web.Request, page: str, status: int = 200,
                **extra: Any) -> web.Response:
    """The page; after a refusal with the reason and the form as it was typed, unfolded."""
    template, build = VIEWS[page]
    context = {"error": "", "form": {}, "unfold": "", "confirm": None, **_notes(request),
               **await build(request), **extra}
    return _render(request, template, context, status)


@panel(*ADMINS)
async def menu_page(request: web.Request) -> web.Response:
    return await _show(request, "menu")


@panel(*ADMINS)
async def skills_page(request: web.Request) -> web.Response:
    return await _show(request, "skills")


@panel(*ADMINS)
async def calendar_page(request: web.Request) -> web.Response:
    return await _show(request, "calendar")


# What a change did, as the note after it says.
FIELD_NAMES = {"title": "название", "strategy": "распределение",
               "service_level_seconds": "норматив ответа (секунд)", "digit": "кнопка",
               "code": "служебный код", "action": "действие", "queue": "очередь",
               "agency": "ведомство", "penalty": "приоритет", "kind": "вид дня",
               "closes_at": "работаем до", "note": "пояснение"}
VALUE_NAMES = {"strategy": menu.STRATEGIES, "action": menu.ACTIONS, "kind": work_days.KINDS}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    said = []
    for key, label in FIELD_NAMES.items():
        old, new = before.get(key), after.get(key)
        if key in after and old != new:
            names = VALUE_NAMES.get(key, {})
            said.append(f"{label}: «{names.get(str(old), old or '—')}» → "
                        f"«{names.get(str(new), new or '—')}»")
    return "; ".join(said) or "ничего не изменилось"


def _dotted(day: str) -> str:
    """2026-12-31 (as the route and the audit hold it) → 31.12.2026."""
    return ".".join(reversed(day.split("-")))


def _done(what: str, applied: Applied) -> str:
    """«Изменено: очередь «Пенсии» — норматив ответа, с: «20» → «30».»"""
    shown = applied.after or applied.before or {}
    name = (f"{what} «{shown['title']}»" if "title" in shown
            else f"{what} {_dotted(shown['day'])}" if "day" in shown else what)
    if applied.before is None:
        return f"Добавлено: {name}."
    if applied.after is None:
        return f"Удалено: {name}."
    return f"Изменено: {name} — {_changes(applied.before, applied.after)}."


@dataclass(frozen=True)
class _Change:
    """One change from a panel form: where it goes back to, what the audit calls it, and
    how the form is shown again if it is refused."""

    page: str
    object_type: str
    object_id: str
    what: str
    form: Mapping[str, str]
    unfold: str = ""
    queues: bool = False


async def _panel_change(request: web.Request, change: _Change,
                        build: Callable[[], Step]) -> web.StreamResponse:
    """Apply and go back to the page with what was done; a refusal (of the form or of the
    rules) shows the page again with the reason and the form as it was typed."""
    try:
        applied = await _apply(request, change.object_type, change.object_id, build(),
                               change.queues)
    except SetupError as exc:
        return await _show(request, change.page, 409 if exc.conflict else 422,
                           error=str(exc), form=change.form, unfold=change.unfold)
    tail = "?" + _note_query(request, "done", _done(change.what, applied))
    if applied.warning:
        tail += "&" + _note_query(request, "warning", applied.warning)
    raise web.HTTPSeeOther(PAGES[change.page] + tail)


async def _confirmed(request: web.Request, page: str, question: str,
                     button: str = "Да, убрать") -> web.Response | None:
    """A removal asks first: without ``confirm=1`` the page comes back with the question
    and a button that sends it; None once confirmed."""
    if (await request.post()).get("confirm") == "1":
        return None
    return await _show(request, page, confirm={
        "question": question, "action": request.path, "button": button, "back": PAGES[page]})


async def _form(request: web.Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.post()).items() if k != "_csrf"}


@panel(*ADMINS, audit="ivr_queue")
async def queue_post(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    name = form.get("name", "").strip()
    return await _panel_change(request, _Change("menu", "ivr_queue", name, "очередь", form,
                                                "queue-new", queues=True),
                               lambda: _queue_step(name, form, exists=False))


@panel(*ADMINS, audit="ivr_queue")
async def queue_edit(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    form = {**await _form(request), "name": name, "editing": name}
    return await _panel_change(request, _Change("menu", "ivr_queue", name, "очередь", form,
                                                "queue-edit", queues=True),
                               lambda: _queue_step(name, form, exists=True))


def _remove_queue(request: web.Request, name: str) -> Step:
    general = _svc(request).settings.ivr.general_queue
    return lambda s: menu.remove_queue(s, name, general)


def _title_of(items: Any, key: str, value: str) -> str:
    return next((i.title for i in items if getattr(i, key) == value), value)


@panel(*ADMINS, audit="ivr_queue")
async def queue_delete(request: web.Request) -> web.StreamResponse:
    name, svc = request.match_info["name"], _svc(request)
    title = _title_of((await svc.menu.fresh(svc)).queues, "name", name)
    asked = await _confirmed(request, "menu", f"Удалить очередь «{title}»?",
                             "Да, удалить")
    return asked or await _panel_change(
        request, _Change("menu", "ivr_queue", name, "очередь", {}, queues=True),
        lambda: _remove_queue(request, name))


@panel(*ADMINS, audit="menu_topic")
async def topic_post(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    digit = form.get("digit", "").strip()
    return await _panel_change(request, _Change("menu", "menu_topic", digit, "пункт меню",
                                                form, "topic"),
                               lambda: _topic_step(digit, form, form.get("old_digit", "")))


@panel(*ADMINS, audit="menu_topic")
async def topic_delete(request: web.Request) -> web.StreamResponse:
    digit, svc = request.match_info["digit"], _svc(request)
    title = _title_of((await svc.menu.fresh(svc)).ivr.topics, "digit", digit)
    asked = await _confirmed(request, "menu", f"Убрать из меню пункт {digit} «{title}»? "
                             "Звонящие перестанут его слышать сразу.")
    return asked or await _panel_change(
        request, _Change("menu", "menu_topic", digit, "пункт меню", {}),
        lambda: lambda s: menu.remove_topic(s, digit))


@panel(*ADMINS, audit="queue_skill")
async def skill_post(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    queue = form.get("queue", "")
    return await _panel_change(
        request, _Change("skills", "queue_skill", f"{form.get('staff_id', '')}:{queue}",
                         "очередь оператора", form),
        lambda: _skill_step(_int(form, "staff_id", "Сотрудник"), queue,
                            form.get("penalty", "")))


@panel(*ADMINS, audit="calendar_day")
async def day_post(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    return await _panel_change(
        request, _Change("calendar", "calendar_day", form.get("day", ""), "особый день", form),
        lambda: _day_step(_day(form.get("day", "")), form))


@panel(*ADMINS, audit="calendar_day")
async def day_delete(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["day"]
    asked = await _confirmed(request, "calendar",
                             f"Убрать особый день {_dotted(raw)} из календаря?")
    return asked or await _panel_change(
        request, _Change("calendar", "calendar_day", raw, "особый день", {}),
        lambda: _remove_day(_day(raw)))


def _remove_day(day: date) -> Step:
    return lambda s: work_days.remove_day(s, day)


# --- the JSON API ----------------------------------------------------------------------------

def _as_dict(days: list[Any]) -> list[dict[str, Any]]:
    return [{"day": d.day.isoformat(), "kind": d.kind, "note": d.note,
             "closes_at": d.closes_at.strftime("%H:%M") if d.closes_at else None} for d in days]


@api(*ADMINS)
async def api_setup(request: web.Request) -> web.Response:
    svc = _svc(request)
    setup = await svc.menu.fresh(svc)
    async with svc.sessions() as session:
        skills = await menu.all_skills(session)
        days = await work_days.listed(session, date.min)
    return web.json_response({
        "queues": [asdict(q) for q in setup.queues],
        "topics": [t.model_dump() for t in setup.ivr.topics],
        "skills": {str(k): v for k, v in skills.items()}, "calendar": _as_dict(days)})


async def _body(request: web.Request) -> dict[str, str]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("Тело запроса — не JSON.", "not_json") from None
    if not isinstance(body, dict):
        raise Invalid("Ожидается JSON-объект.", "not_object")
    return {str(k): "" if v is None else str(v) for k, v in body.items()}


async def _api_change(request: web.Request, object_type: str, object_id: str,
                      build: Callable[[], Step], queues: bool = False) -> web.Response:
    try:
        applied = await _apply(request, object_type, object_id, build(), queues)
    except SetupError as exc:
        raise (Conflict if exc.conflict else Invalid)(str(exc), exc.error_id) from None
    return web.json_response({"before": applied.before, "after": applied.after,
                              "warning": applied.warning})


@api(*ADMINS, audit="ivr_queue")
async def api_queue_put(request: web.Request) -> web.Response:
    name, body = request.match_info["name"], await _body(request)
    return await _api_change(request, "ivr_queue", name, lambda: _queue_step(name, body), True)


@api(*ADMINS, audit="ivr_queue")
async def api_queue_delete(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return await _api_change(request, "ivr_queue", name, lambda: _remove_queue(request, name),
                             True)


@api(*ADMINS, audit="menu_topic")
async def api_topic_put(request: web.Request) -> web.Response:
    at, body = request.match_info["digit"], await _body(request)
    given = _topic_input(body.get("digit") or at, body)
    return await _api_change(request, "menu_topic", at,
                             lambda: lambda s: menu.put_topic(s, given, at))


@api(*ADMINS, audit="menu_topic")
async def api_topic_delete(request: web.Request) -> web.Response:
    digit = request.match_info["digit"]
    return await _api_change(request, "menu_topic", digit,
                             lambda: lambda s: menu.remove_topic(s, digit))


@api(*ADMINS, audit="queue_skill")
async def api_skill_put(request: web.Request) -> web.Response:
    staff_id, queue = int(request.match_info["staff_id"]), request.match_info["name"]
    penalty = "" if request.method == "DELETE" else (await _body(request)).get("penalty", "0")
    return await _api_change(request, "queue_skill", f"{staff_id}:{queue}",
                             lambda: _skill_step(staff_id, queue, penalty))


@api(*ADMINS, audit="calendar_day")
async def api_day_put(request: web.Request) -> web.Response:
    raw = request.match_info["day"]
    if request.method == "DELETE":
        return await _api_change(request, "calendar_day", raw, lambda: _remove_day(_day(raw)))
    body = await _body(request)
    return await _api_change(request, "calendar_day", raw, lambda: _day_step(_day(raw), body))


def setup(app: web.Application, ami: AMIClient | None) -> None:
    app[AMI] = _Link(ami)
    app.router.add_get("/panel/admin/ivr", menu_page)
    app.router.add_get("/panel/admin/ivr/skills", skills_page)
    app.router.add_get("/panel/admin/ivr/calendar", calendar_page)
    app.router.add_post("/panel/admin/ivr/queues", queue_post)
    app.router.add_post(r"/panel/admin/ivr/queues/{name:[a-z0-9_-]{1,40}}/edit", queue_edit)
    app.router.add_post(r"/panel/admin/ivr/queues/{name:[a-z0-9_-]{1,40}}/delete", queue_delete)
    app.router.add_post("/panel/admin/ivr/topics", topic_post)
    app.router.add_post(r"/panel/admin/ivr/topics/{digit:[1-9]}/delete", topic_delete)
    app.router.add_post("/panel/admin/ivr/skills", skill_post)
    app.router.add_post("/panel/admin/ivr/calendar", day_post)
    app.router.add_post(r"/panel/admin/ivr/calendar/{day:\d{4}-\d{2}-\d{2}}/delete", day_delete)
    app.router.add_get("/api/v1/ivr", api_setup)
    queue = r"/api/v1/ivr/queues/{name:[a-z0-9_-]{1,40}}"
    topic = r"/api/v1/ivr/topics/{digit:[1-9]}"
    app.router.add_put(queue, api_queue_put)
    app.router.add_delete(queue, api_queue_delete)
    app.router.add_put(topic, api_topic_put)
    app.router.add_delete(topic, api_topic_delete)
    skill = r"/api/v1/ivr/skills/{staff_id:\d{1,9}}/{name:[a-z0-9_-]{1,40}}"
    app.router.add_put(skill, api_skill_put)
    app.router.add_delete(skill, api_skill_put)
    day = r"/api/v1/ivr/calendar/{day:\d{4}-\d{2}-\d{2}}"
    app.router.add_put(day, api_day_put)
    app.router.add_delete(day, api_day_put)


def _path_param(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _put_delete(summary: str, params: list[dict[str, Any]],
                fields: tuple[str, ...]) -> dict[str, Any]:
    answers = {"200": {"description": "{\"before\": …, \"after\": …, \"warning\": \"\"}"},
               "400": {"description": "ошибка в полях"},
               "409": {"description": "занято или используется"}}
    body = {"content": {"application/json": {"schema": {
        "type": "object", "properties": {f: {"type": "string"} for f in fields}}}}}
    return {"put": {"summary": summary, "parameters": params, "requestBody": body,
                    "responses": answers},
            "delete": {"summary": summary + ": удалить", "parameters": params,
                       "responses": answers}}


# Described in /api/v1/openapi.json beside the read API.
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/ivr": {"get": {"summary": "Очереди, меню, навыки операторов, календарь",
                            "responses": {"200": {"description": "всё сразу"}}}},
    "/api/v1/ivr/queues/{name}": _put_delete(
        "Очередь Asterisk (администратор)", [_path_param("name")],
        ("title", "strategy", "service_level_seconds")),
    "/api/v1/ivr/topics/{digit}": _put_delete(
        "Пункт голосового меню (R-H1)", [_path_param("digit")],
        ("digit", "code", "title", "action", "queue", "agency")),
    "/api/v1/ivr/skills/{staff_id}/{name}": _put_delete(
        "Оператор обслуживает очередь", [_path_param("staff_id", "integer"),
                                         _path_param("name")], ("penalty",)),
    "/api/v1/ivr/calendar/{day}": _put_delete(
        "Особый день календаря", [_path_param("day")], ("kind", "closes_at", "note")),
}
