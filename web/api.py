"""The integration API (token auth): appeal intake from the document-flow system (R-A1).

``Authorization: Bearer <token>``; tokens are made with ``hotline api-token create`` and
stored hashed (``api_tokens``). A token works until it expires or is revoked
(``hotline api-token revoke``), and only while its employee is active. Every accepted
registration is written to the audit log under the token's employee.

- ``POST /api/v1/appeals`` — one appeal, a JSON object with the CSV columns' names
  (see :mod:`ivr.services.intake`); 201 ``{"id": …}``, 409 on a duplicate number, 422 for
  a phone number the hotline does not dial (:mod:`ivr.dialling`).
- ``POST /api/v1/appeals/import`` — a CSV body; 200 ``{"imported": n}``, or 422 with
  ``{"errors": ["строка 3: …"]}`` and nothing imported.
- ``GET /api/v1/outbox?channel=post|state_portal`` — notices waiting for the post room or
  the state portal; a post copy carries ``letter_url``, its print-ready A4 letter
  (``GET /api/v1/outbox/{id}/letter``, HTML); ``POST /api/v1/outbox/{id}``
  ``{"delivered": true}`` (or false with ``"error"``) records what became of one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy import select

from ivr.db.models import ApiToken, ArticleKind, Channel, Staff
from ivr.dialling import DiallingPolicy
from ivr.services import intake, kb, notices
from ivr.services.accounts import token_hash

from . import outbox
from .app_keys import SERVICES
from .policy import APPEAL_STAFF, STAFF, api

MAX_CSV_BYTES = 20 * 1024 * 1024
# A token's request body (an appeal, an article); the CSV import raises it to MAX_CSV_BYTES.
API_BODY_BYTES = 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def token_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path == "/api/v1/openapi.json":
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return _error(401, "нужен заголовок Authorization: Bearer <токен>")
    svc = request.app[SERVICES]
    async with svc.sessions() as session:
        staff_id = await session.scalar(
            select(ApiToken.staff_id).join(Staff, Staff.id == ApiToken.staff_id).where(
                ApiToken.token_hash == token_hash(header[7:].strip()),
                ApiToken.revoked_at.is_(None), ApiToken.expires_at > svc.clock(),
                Staff.active))
    if staff_id is None:
        return _error(401, "токен не действителен: истёк, отозван или сотрудник отключён")
    request = request.clone(client_max_size=API_BODY_BYTES)
    request["api_staff_id"] = staff_id
    return await handler(request)


async def _audit(request: web.Request, action: str, object_id: str, details: str, *,
                 object_type: str = "appeal") -> None:
    from .auth import audit

    await audit(request.app[SERVICES], request["api_staff_id"], action, object_type,
                object_id, details, request.remote or "")


@api(*APPEAL_STAFF, audit="appeal")
async def create_appeal(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "тело запроса — не JSON")
    if not isinstance(body, dict):
        return _error(400, "ожидается JSON-объект")
    try:
        item = intake.parse(body, DiallingPolicy.from_settings(svc.settings))
        appeal_id = await intake.register(svc.sessions, svc.settings, svc.calendar, item,
                                          now=svc.clock())
    except intake.IntakeError as exc:
        status = 409 if "уже зарегистрировано" in str(exc) else exc.status
        return _error(status, str(exc))
    await _audit(request, "create", str(appeal_id), f"API: {item.reg_number}")
    return web.json_response({"id": appeal_id}, status=201)


@api(*APPEAL_STAFF, audit="appeal")
async def import_appeals(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    if request.content_length is not None and request.content_length > MAX_CSV_BYTES:
        return _error(413, "файл больше 20 МБ")
    # The one route that takes a big body: the application's limit is kilobytes.
    raw = await request.clone(client_max_size=MAX_CSV_BYTES).read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "файл не в кодировке UTF-8")
    report = await intake.import_csv(svc.sessions, svc.settings, svc.calendar, text,
                                     now=svc.clock())
    if not report.ok:
        return web.json_response({"imported": 0, "errors": report.errors}, status=422)
    await _audit(request, "import", "", f"API: CSV, {report.imported} обращений")
    return web.json_response({"imported": report.imported})


OUTBOX_CHANNELS = {"post": Channel.POST, "state_portal": Channel.STATE_PORTAL}


@api(*APPEAL_STAFF, audit="notification")
async def list_outbox(request: web.Request) -> web.Response:
    """Post and state-portal copies waiting for the external system (oldest first)."""
    svc = request.app[SERVICES]
    channel = OUTBOX_CHANNELS.get(request.query.get("channel", ""))
    if channel is None:
        return _error(400, "channel: post или state_portal")
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 500)
    except ValueError:
        return _error(400, "limit: число от 1 до 500")
    async with svc.sessions() as session:
        rows = await notices.outbox(session, channel, limit=limit)
    await _audit(request, "view", "", f"API: outbox {channel.value}, {len(rows)} уведомлений",
                 object_type="notification")
    return web.json_response({"items": [
        {"id": n.id, "kind": n.kind, "channel": n.channel.value, "address": n.address,
         "citizen_id": n.citizen_id, "appeal_id": n.appeal_id, "booking_id": n.booking_id,
         "subject": n.subject, "body": n.body, "queued_at": n.created_at.isoformat(),
         **({"letter_url": f"/api/v1/outbox/{n.id}/letter"} if channel == Channel.POST
            else {})}
        for n in rows]})


@api(*APPEAL_STAFF, audit="notification")
async def outbox_letter(request: web.Request) -> web.Response:
    """A post copy as the print-ready letter the post room prints (R-A2)."""
    letter = await outbox.letter_of(request, int(request.match_info["id"]))
    await _audit(request, "view", str(letter.notice.id), "API: письмо для печати",
                 object_type="notification")
    return outbox.render_letter(request, letter)


@api(*APPEAL_STAFF, audit="notification")
async def outbox_result(request: web.Request) -> web.Response:
    """``{"delivered": true}`` or ``{"delivered": false, "error": "…"}``, once per copy."""
    svc = request.app[SERVICES]
    try:
        notice_id = int(request.match_info["id"])
        body = await request.json()
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "ожидается JSON {\"delivered\": true|false, \"error\": \"…\"}")
    if not isinstance(body, dict) or not isinstance(body.get("delivered"), bool):
        return _error(400, "delivered: true или false")
    done = await notices.outbox_result(svc.sessions, notice_id, delivered=body["delivered"],
                                       error=str(body.get("error", "")), now=svc.clock())
    if not done:
        return _error(409, "уведомления нет в очереди на отправку")
    await _audit(request, "update", str(notice_id),
                 "API: доставлено" if body["delivered"] else "API: не доставлено",
                 object_type="notification")
    return web.json_response({"id": notice_id})


@api(*STAFF)
async def kb_search(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    async with svc.sessions() as session:
        found = await kb.search(session, request.query.get("q", ""), limit=20)
    return web.json_response({"items": [
        {"id": a.id, "section_id": a.section_id, "kind": a.kind.value, "title": a.title,
         "body": a.body, "version": a.version} for a in found]})


@api(*STAFF, audit="kb_article", refused="kb_refused")
async def kb_save(request: web.Request) -> web.Response:
    """``POST /api/v1/kb/articles`` (with ``section_id``) or ``PUT …/{id}``: as the token's
    employee, so only in a section of their own department (R-K1)."""
    svc = request.app[SERVICES]
    try:
        body = await request.json()
        given = kb.ArticleInput(kind=ArticleKind(body.get("kind", "faq")),
                                title=str(body["title"]), body=str(body["body"]))
        article_id = int(request.match_info["id"]) if "id" in request.match_info else None
        section_id = int(body.get("section_id") or 0)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, ValueError):
        return _error(400, "ожидается JSON {\"section_id\", \"kind\", \"title\", \"body\"}")
    try:
        saved = await kb.save_article(svc.sessions, svc.calendar,
                                      staff_id=request["api_staff_id"], section_id=section_id,
                                      given=given, now=svc.clock(), article_id=article_id)
    except kb.KbForbidden as exc:
        await _audit(request, "kb_refused", str(article_id or ""), str(exc),
                     object_type="kb_article")
        return _error(403, str(exc))
    except kb.KbError as exc:
        return _error(400, str(exc))
    await _audit(request, "update" if article_id else "create", str(saved), "API",
                 object_type="kb_article")
    return web.json_response({"id": saved}, status=200 if article_id else 201)


def setup(app: web.Application) -> None:
    app.middlewares.append(token_auth)
    app.router.add_post("/api/v1/appeals", create_appeal)
    app.router.add_post("/api/v1/appeals/import", import_appeals)
    app.router.add_get("/api/v1/outbox", list_outbox)
    app.router.add_post("/api/v1/outbox/{id}", outbox_result)
    app.router.add_get(r"/api/v1/outbox/{id:\d{1,9}}/letter", outbox_letter)
    app.router.add_get("/api/v1/kb/search", kb_search)
    app.router.add_post("/api/v1/kb/articles", kb_save)
    app.router.add_put(r"/api/v1/kb/articles/{id:\d{1,9}}", kb_save)
