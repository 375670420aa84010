"""The phone in the workspace (issue 29, WebRTC; docs/webrtc.md).

The page's phone (``web/static/js/phone.js``, JsSIP) registers the operator's own extension
over SIP-over-WebSocket with Asterisk. Its SIP password is handed by
``GET /panel/phone/credentials`` to the logged-in operator whose extension it is, as a
no-store JSON answer read by the script: it is never in the page source, and the script
keeps it in memory only. Every hand-out is audited.

Transfers from the page never bypass the gate (R-H4): a blind one is the panel's own
transfer route, an attended one the featuremap's ``*2`` keyed on the call, which Asterisk
sends through ``[hotline-transfer]``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import select

from ivr.db.models import OperatorPhone, Staff
from ivr.services.container import Services
from ivr.settings import Settings

from . import auth, headers
from .app_keys import SERVICES
from .policy import STAFF, panel
from .records import _svc, current_staff

# The browser's SIP registration lasts this long (seconds) and is renewed before it ends.
REGISTER_EXPIRES = 300
NO_STORE = {"Cache-Control": "no-store"}
UNAVAILABLE = {
    "phone_not_webrtc": "Телефон в браузере для вашего номера не настроен: обратитесь к "
                        "администратору.",
    "phone_no_password": "Пароль телефона ещё не создан: попросите администратора создать "
                         "его в вашей карточке сотрудника (кнопка «Новый пароль телефона»).",
}


def ws_url(settings: Settings) -> str:
    """Where the browser reaches Asterisk's SIP WebSocket."""
    return settings.panel.phone_ws_url or f"ws://{settings.asterisk.http_bind}/ws"


def ws_origin(url: str) -> str:
    """The scheme and host of ``url``: what the page's CSP must let it connect to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _password(svc: Services, me: Staff) -> tuple[str, str]:
    """(the phone's SIP password, '') or ('', why this employee has no phone in the page)."""
    if not me.extension or me.extension not in svc.settings.asterisk.webrtc_extensions:
        return "", "phone_not_webrtc"
    async with svc.sessions() as session:
        password = await session.scalar(select(OperatorPhone.sip_password).where(
            OperatorPhone.extension == me.extension))
    return (password, "") if password else ("", "phone_no_password")


@panel(*STAFF, audit="operator_phone", json=True)
async def credentials(request: web.Request) -> web.Response:
    """This employee's own phone, for the page's SIP client; nobody else's, ever. Any
    employee with an extension listed in ``asterisk.webrtc_extensions`` has one: operators
    and the colleagues calls are transferred to. No phone is an answer, not an error."""
    svc = _svc(request)
    me = await current_staff(request)
    password, missing = await _password(svc, me)
    if missing:
        return web.json_response({"available": False, "id": missing,
                                  "reason": UNAVAILABLE[missing]}, headers=NO_STORE)
    await auth.audit(svc, me.id, "view", "operator_phone", me.extension,
                     "пароль SIP выдан телефону в браузере", request.remote or "")
    url = ws_url(svc.settings)
    return web.json_response({
        "available": True,
        "extension": me.extension,
        "password": password,
        "uri": f"sip:{me.extension}@{urlsplit(url).hostname}",
        "ws_url": url,
        "display_name": me.initials_name,
        "register_expires": REGISTER_EXPIRES,
    }, headers=NO_STORE)


def _connect_sources(app: web.Application) -> tuple[str, ...]:
    return (ws_origin(ws_url(app[SERVICES].settings)),)


def setup(app: web.Application) -> None:
    app[headers.CONNECT_SOURCES] = _connect_sources
    app.router.add_get("/panel/phone/credentials", credentials)
