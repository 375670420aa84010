"""The integration API's read side (token auth, keyset pages: ``?after_id=N&limit=M``, the
next page starts after the last id returned): calls with their journal and rating, ratings,
callbacks, appeals, reception slots and bookings. Every read of personal data is
audit-logged under the token's employee. ``GET /api/v1/openapi.json`` describes it all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from ivr.db.models import (
    Appeal,
    Booking,
    Call,
    Callback,
    Rating,
)
from ivr.services.delivery import needs_of

from . import reception_params
from .admin_ivr import OPENAPI_PATHS as IVR_SETUP_PATHS
from .api_admin import OPENAPI_PATHS as ADMIN_PATHS
from .app_keys import SERVICES
from .auth import audit
from .errors import Invalid
from .policy import APPEAL_STAFF, HEADS, STAFF, api, public

MAX_LIMIT = 500


class BadQuery(Invalid):
    """A query parameter that is not what the API documents (400)."""

    error_id = "bad_query"


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        raise BadQuery(f"{name}: целое число")
    return int(raw)


def _time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadQuery(f"{name}: дата и время ISO 8601 с часовым поясом") from None
    if value.tzinfo is None:
        raise BadQuery(f"{name}: укажите часовой пояс, например 2026-11-25T09:00:00+03:00")
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def _page(request: web.Request, query: Select[Any], id_column: Any,
                what: str) -> list[Any]:
    svc = request.app[SERVICES]
    after, limit = _int(request, "after_id", 0), min(_int(request, "limit", 100), MAX_LIMIT)
    query = query.where(id_column > after).order_by(id_column).limit(max(limit, 1))
    async with svc.sessions() as session:
        rows = list((await session.scalars(query)).all())
    await audit(svc, request["api_staff_id"], "view", what, "", f"API: {request.path_qs}",
                request.remote or "")
    return rows


@api(*HEADS, audit="call_list")
async def calls(request: web.Request) -> web.Response:
    query = select(Call).options(selectinload(Call.rating), selectinload(Call.transfers),
                                 selectinload(Call.journal))
    if (since := _time(request, "since")) is not None:
        query = query.where(Call.started_at >= since)
    if (until := _time(request, "until")) is not None:
        query = query.where(Call.started_at < until)
    rows = await _page(request, query, Call.id, "call_list")
    return web.json_response({"items": [{
        "id": c.id, "linkedid": c.linkedid, "caller": c.caller_number,
        "dialed": c.dialed_number, "started_at": _iso(c.started_at),
        "answered_at": _iso(c.answered_at), "ended_at": _iso(c.ended_at),
        "ivr_path": c.ivr_path, "topic": c.topic, "queue": c.queue,
        "wait_seconds": c.wait_seconds, "operator_id": c.operator_id,
        "outcome": c.outcome.value, "hangup_by": c.hangup_by,
        # One entry per operator who spoke on the call (R-H6), first written first.
        "journal": [{
            "topic": j.topic, "question": j.question, "answer": j.answer,
            "outcome": j.outcome.value, "article_id": j.article_id,
            "agency_id": j.agency_id, "by": j.operator_id, "at": _iso(j.written_at)}
            for j in c.journal],
        "transfers": [{"seq": t.seq, "kind": t.kind.value, "from": t.from_staff_id,
                       "to": t.to_staff_id, "outcome": t.outcome.value} for t in c.transfers],
        "rating": None if c.rating is None else {
            "answer_received": c.rating.answer_received,
            "quality": c.rating.quality.value if c.rating.quality else None},
    } for c in rows]})


@api(*HEADS, audit="rating_list")
async def ratings(request: web.Request) -> web.Response:
    query = select(Rating)
    if (since := _time(request, "since")) is not None:
        query = query.where(Rating.rated_at >= since)
    rows = await _page(request, query, Rating.id, "rating_list")
    return web.json_response({"items": [{
        "id": r.id, "call_id": r.call_id, "operator_id": r.operator_id,
        "answer_received": r.answer_received,
        "quality": r.quality.value if r.quality else None, "status": r.status.value,
        "rated_at": _iso(r.rated_at)} for r in rows]})


@api(*HEADS, audit="callback_list")
async def callbacks(request: web.Request) -> web.Response:
    query = select(Callback).options(selectinload(Callback.windows))
    if status := request.query.get("status"):
        query = query.where(Callback.status == status)
    rows = await _page(request, query, Callback.id, "callback_list")
    return web.json_response({"items": [{
        "id": c.id, "phone": c.phone, "source": c.source.value, "topic": c.topic,
        "question": c.question, "status": c.status.value, "assignee_id": c.assignee_id,
        "promised_date": c.promised_date.isoformat() if c.promised_date else None,
        "next_attempt_at": _iso(c.next_attempt_at),
        "windows": [[_iso(w.starts_at), _iso(w.ends_at)] for w in c.windows]}
        for c in rows]})


def _appeal(a: Appeal) -> dict[str, Any]:
    return {"id": a.id, "reg_number": a.reg_number, "registered_on": a.registered_on.isoformat(),
            "channel": a.channel.value, "citizen_id": a.citizen_id, "topic": a.topic,
            "status": a.status.value, "urgent": a.urgent,
            "due_date": a.due_date.isoformat() if a.due_date else None,
            "executor_id": a.executor_id,
            "outcome": a.outcome.value if a.outcome else None,
            "answered_at": _iso(a.answered_at), "completed_at": _iso(a.completed_at)}


@api(*APPEAL_STAFF, audit="appeal_list")
async def appeals(request: web.Request) -> web.Response:
    query = select(Appeal)
    if status := request.query.get("status"):
        query = query.where(Appeal.status == status)
    if number := request.query.get("reg_number"):
        query = query.where(Appeal.reg_number == number)
    rows = await _page(request, query, Appeal.id, "appeal_list")
    return web.json_response({"items": [_appeal(a) for a in rows]})


@api(*STAFF)
async def free_slots(request: web.Request) -> web.Response:
    """Free slots, of one official and a period when asked (R-P2): ``official_id``,
    ``date`` or ``date_from``/``date_to``; a malformed parameter is 400, an unknown
    official 422."""
    svc = request.app[SERVICES]
    query = reception_params.parse(request.query)
    limit = min(_int(request, "limit", 100), MAX_LIMIT)
    async with svc.sessions() as session:
        slots = await reception_params.find(session, svc.calendar, svc.clock(), query,
                                            limit=limit or None)
    return web.json_response({"items": [{
        "id": s.id, "official_id": s.official_id,
        "official": reception_params.official_name(s.official),
        "starts_at": _iso(s.starts_at), "ends_at": _iso(s.ends_at)} for s in slots]})


@api(*STAFF, audit="booking_list")
async def bookings(request: web.Request) -> web.Response:
    query = select(Booking).options(selectinload(Booking.slot))
    rows = await _page(request, query, Booking.id, "booking_list")
    return web.json_response({"items": [{
        "id": b.id, "slot_id": b.slot_id, "starts_at": _iso(b.slot.starts_at),
        "citizen_id": b.citizen_id, "topic": b.topic, "status": b.status.value,
        "booked_via": b.booked_via, "needs": [n.value for n in needs_of(b)],
        "accessibility_needs": b.accessibility_needs,
        "remind_day_before": b.remind_day_before,
        "remind_two_hours_before": b.remind_two_hours_before,
        "reminder_channel": b.reminder_channel.value if b.reminder_channel else None,
        "cancelled_via": b.cancelled_via} for b in rows]})


def _list(summary: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    params = [{"name": "after_id", "in": "query", "schema": {"type": "integer"},
               "description": "keyset: the last id of the previous page"},
              {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500}},
              *(extra or [])]
    return {"get": {"summary": summary, "parameters": params,
                    "responses": {"200": {"description": "{\"items\": [...]}"},
                                  "400": {"description": "bad query"},
                                  "401": {"description": "no or bad token"}}}}


def _q(name: str, kind: str = "string", fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "query", "schema": schema}


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Горячая линия: API для интеграций", "version": "1"},
    "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    "security": [{"token": []}],
    "paths": {
        "/api/v1/calls": _list("Звонки с журналом, переводами и оценкой",
                               [_q("since", fmt="date-time"), _q("until", fmt="date-time")]),
        "/api/v1/ratings": _list("Оценки звонков (R-H8)", [_q("since", fmt="date-time")]),
        "/api/v1/callbacks": _list("Обратные звонки (R-H5)", [_q("status")]),
        "/api/v1/appeals": {
            **_list("Обращения граждан", [_q("status"), _q("reg_number")]),
            "post": {"summary": "Зарегистрировать обращение (R-A1)",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "required": ["reg_number", "registered_on",
                                                        "channel"],
                         "properties": {k: {"type": "string"} for k in (
                             "reg_number", "registered_on", "channel", "surname",
                             "first_name", "patronymic", "phone", "email", "topic", "text",
                             "materials", "notify_channel", "extra_channel",
                             "postal_address")}}}}},
                     "responses": {"201": {"description": "{\"id\": n}"},
                                   "400": {"description": "ошибка в полях"},
                                   "409": {"description": "номер уже зарегистрирован"},
                                   "422": {"description": "тема не из классификатора, нет "
                                                          "адреса для выбранного канала, "
                                                          "номер не набирается"}}}},
        "/api/v1/appeals/import": {"post": {
            "summary": "CSV из СЭДД: все строки или ни одной",
            "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}},
            "responses": {"200": {"description": "{\"imported\": n}"},
                          "422": {"description": "{\"errors\": [\"строка 3: …\"]}"}}}},
        "/api/v1/receptions/slots": {"get": {"summary": "Свободное время личного приёма",
                                             "parameters": [
                                                 _q("official_id", "integer"),
                                                 _q("date", fmt="date"),
                                                 _q("date_from", fmt="date"),
                                                 _q("date_to", fmt="date"),
                                                 _q("limit", "integer")],
                                             "responses": {
                                                 "200": {"description": "items"},
                                                 "400": {"description": "bad query"},
                                                 "422": {"description": "no such official"}}}},
        "/api/v1/receptions/bookings": _list("Записи на личный приём"),
        "/api/v1/outbox": {"get": {"summary": "Уведомления для почты и ЕПГУ",
                                   "parameters": [_q("channel"), _q("limit", "integer")],
                                   "responses": {"200": {"description": "items"}}}},
        "/api/v1/outbox/{id}": {"post": {
            "summary": "Отметить доставку уведомления",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "properties": {"delivered": {"type": "boolean"},
                                                 "error": {"type": "string"}}}}}},
            "responses": {"200": {"description": "ok"}, "409": {"description": "не в очереди"}}}},
        "/api/v1/outbox/{id}/letter": {"get": {
            "summary": "Письмо для печати (A4, HTML) по уведомлению для почты (R-A2)",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "text/html"},
                          "404": {"description": "нет такого письма"}}}},
        "/api/v1/kb/search": {"get": {"summary": "Поиск по базе знаний (русская морфология)",
                                      "parameters": [_q("q")],
                                      "responses": {"200": {"description": "items"}}}},
        "/api/v1/kb/articles": {"post": {
            "summary": "Новая статья в разделе своего подразделения (R-K1)",
            "responses": {"201": {"description": "{\"id\": n}"},
                          "403": {"description": "раздел другого подразделения"}}}},
        "/api/v1/kb/articles/{id}": {"put": {
            "summary": "Новая версия статьи своего подразделения",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "{\"id\": n}"},
                          "403": {"description": "раздел другого подразделения"}}}},
        **IVR_SETUP_PATHS,
        **ADMIN_PATHS,
    },
}


@public
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/api/v1/calls", calls)
    app.router.add_get("/api/v1/ratings", ratings)
    app.router.add_get("/api/v1/callbacks", callbacks)
    app.router.add_get("/api/v1/appeals", appeals)
    app.router.add_get("/api/v1/receptions/slots", free_slots)
    app.router.add_get("/api/v1/receptions/bookings", bookings)

