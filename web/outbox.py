"""Letters by post (R-A2): a notice whose channel is the post waits in the outbox as a
print-ready A4 letter — the citizen's name and postal address, the date, the text. The
panel lists the waiting letters with «Печать» (``/panel/outbox``); the post room's system
takes the same letter from the API (``GET /api/v1/outbox/{id}/letter``). Every view of a
letter (personal data) is audit-logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from ivr.db.models import Channel, Citizen, Notification
from ivr.services import notices

from . import auth
from .app_keys import SERVICES
from .errors import NotFound
from .policy import APPEAL_STAFF, actor, panel


@dataclass(frozen=True)
class PrintedLetter:
    notice: Notification
    recipient: str
    paragraphs: list[str]
    day: date


async def letter_of(request: web.Request, notice_id: int) -> PrintedLetter:
    """The post copy ``notice_id`` as a letter to print; 404 for any other copy."""
    svc = request.app[SERVICES]
    async with svc.sessions() as session:
        notice = await session.get(Notification, notice_id)
        if notice is None or notice.channel != Channel.POST:
            raise NotFound("Письма нет.", "letter_not_found")
        citizen = (await session.get(Citizen, notice.citizen_id)
                   if notice.citizen_id else None)
    recipient = " ".join(p for p in (citizen.surname, citizen.first_name,
                                     citizen.patronymic) if p) if citizen else ""
    paragraphs = [p.strip() for p in notice.body.split("\n\n") if p.strip()]
    return PrintedLetter(notice, recipient, paragraphs,
                         notice.created_at.astimezone(svc.calendar.tz).date())


def render_letter(request: web.Request, letter: PrintedLetter) -> web.Response:
    org = request.app[SERVICES].settings.organisation
    return aiohttp_jinja2.render_template("letter.html", request, {
        "org": org, "letter": letter, "notice": letter.notice})


@panel(*APPEAL_STAFF, audit="notification")
async def outbox_page(request: web.Request) -> web.Response:
    """The post copies waiting to be printed and sent, oldest first."""
    svc = request.app[SERVICES]
    async with svc.sessions() as session:
        waiting = await notices.outbox(session, Channel.POST, limit=200)
        names = {c.id: f"{c.surname} {c.first_name} {c.patronymic}".strip()
                 for c in await session.scalars(select(Citizen).where(
                     Citizen.id.in_({n.citizen_id for n in waiting if n.citizen_id})))}
    me = auth.current(request)
    await auth.audit(svc, me.staff_id, "view", "notification", "",
                     f"письма к отправке: {len(waiting)}", request.remote or "")
    return aiohttp_jinja2.render_template("outbox.html", request, {
        "org": svc.settings.organisation, "me": me, "csrf": me.csrf, "waiting": waiting,
        "names": names, "tz": svc.calendar.tz})


@panel(*APPEAL_STAFF, audit="notification")
async def letter_page(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    letter = await letter_of(request, int(request.match_info["id"]))
    await auth.audit(svc, actor(request).staff_id, "view", "notification",
                     letter.notice.id, "письмо для печати", request.remote or "")
    return render_letter(request, letter)


def setup(app: web.Application) -> None:
    app.router.add_get("/panel/outbox", outbox_page)
    app.router.add_get(r"/panel/outbox/{id:\d{1,9}}/letter", letter_page)
