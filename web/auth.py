"""Staff login, server-side sessions, CSRF and the audit log of the panel (issue 5, R-X2).

- Passwords: argon2id (argon2-cffi), re-hashed on login when the parameters change.
- Sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure when the panel is
  served over TLS); only its SHA-256 is stored (``web_sessions``), with an expiry; logout
  revokes it. A stolen database does not give a usable cookie.
- CSRF: every session has its own token; every POST under ``/panel`` and ``/logout`` must
  carry it (form field ``_csrf`` or header ``X-CSRF-Token``) or is refused with 403.
- Failed logins are slowed (a growing pause) and, after ``LOCK_AFTER`` in a row, the account
  is locked for ``LOCK_MINUTES``; both the failures and the lock are audit-logged.
- :func:`audit` writes who viewed or changed what, when, from where.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from sqlalchemy import bindparam, select, update

from ivr.db.models import Role, Staff, WebSession
from ivr.passwords import hash_password, needs_rehash, verify
from ivr.recorder import Audited
from ivr.services.container import Services

from .app_keys import SERVICES

COOKIE = "hotline_session"
SESSION_HOURS = 10          # a working day; then log in again
LOCK_AFTER = 5
LOCK_MINUTES = 15
CSRF_FIELD = "_csrf"
PUBLIC_PREFIXES = ("/login", "/survey/", "/reception/cancel/", "/api/", "/healthz", "/static/")
# Verifying against this when the login is unknown takes as long as a real check.
_DUMMY_HASH = hash_password("no such user")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Current:
    """The logged-in employee of a request."""

    staff_id: int
    login: str
    name: str
    role: Role
    department_id: int
    csrf: str
    session_id: int


CURRENT = "hotline_current"


class LoginError(Exception):
    """Phrased for the login page; never tells whether the login exists."""


async def audit(svc: Services, who: int | None, action: str, object_type: str,
                object_id: object = "", details: str = "", remote: str = "") -> None:
    """Into the audit log, through the call recorder: batched with everything else the
    process writes, kept in the spool while the database is away, never lost."""
    svc.recorder.put(Audited("", svc.clock(), who, action[:40], object_type[:40],
                             str(object_id)[:60], details[:2000], remote[:60]))


async def log_in(svc: Services, login: str, password: str, remote: str) -> tuple[str, Staff]:
    """A new session's cookie token and the employee; :class:`LoginError` otherwise."""
    now = svc.clock()
    login = login.strip()
    token = ""
    locked = False
    async with svc.sessions() as session, session.begin():
        staff = await session.scalar(select(Staff).where(Staff.login == login)
                                     .with_for_update())
        if staff is None or not staff.active or not staff.password_hash:
            verify(_DUMMY_HASH, password)
            staff = None
        elif staff.locked_until is not None and staff.locked_until > now:
            raise LoginError("Учётная запись временно заблокирована после неудачных попыток "
                             "входа. Попробуйте позже или обратитесь к администратору.")
        elif verify(staff.password_hash, password):
            staff.failed_logins, staff.locked_until = 0, None
            if needs_rehash(staff.password_hash):
                staff.password_hash = hash_password(password)
            token = secrets.token_urlsafe(32)
            session.add(WebSession(token_hash=_token_hash(token), staff_id=staff.id,
                                   csrf_token=secrets.token_urlsafe(32), created_at=now,
                                   expires_at=now + timedelta(hours=SESSION_HOURS)))
        else:
            staff.failed_logins += 1
            if staff.failed_logins >= LOCK_AFTER:
                staff.locked_until = now + timedelta(minutes=LOCK_MINUTES)
                locked = True
    if token and staff is not None:
        await audit(svc, staff.id, "login", "staff", staff.id, "", remote)
        return token, staff
    await audit(svc, staff.id if staff else None, "login_failed", "staff", login[:60],
                "учётная запись заблокирована" if locked else "", remote)
    # Slowed: each failure in a row costs a longer pause.
    await asyncio.sleep(login_delay(staff.failed_logins if staff else 1))
    raise LoginError("Неверное имя пользователя или пароль.")


SLOWDOWN_SECONDS = 0.25


def login_delay(failures_in_a_row: int) -> float:
    """Each failure in a row costs a longer pause: 0.25 s, 0.5 s, 1 s, 2 s, then 4 s."""
    return min(SLOWDOWN_SECONDS * 2 ** (failures_in_a_row - 1), 16 * SLOWDOWN_SECONDS)


async def log_out(svc: Services, current: Current) -> None:
    async with svc.sessions() as session, session.begin():
        await session.execute(update(WebSession).where(WebSession.id == current.session_id)
                              .values(revoked_at=svc.clock()))
    await audit(svc, current.staff_id, "logout", "staff", current.staff_id)


# Built once: SQLAlchemy then keeps the statement's cache key instead of computing it on
# every request.
_CURRENT = (
    select(WebSession.id, WebSession.csrf_token, Staff.id, Staff.login, Staff.surname,
           Staff.first_name, Staff.role, Staff.department_id)
    .join(Staff, Staff.id == WebSession.staff_id)
    .where(WebSession.token_hash == bindparam("token_hash"),
           WebSession.revoked_at.is_(None), WebSession.expires_at > bindparam("now"),
           Staff.active))


async def _current(svc: Services, token: str) -> Current | None:
    """The session's employee, in one query (every panel request asks)."""
    async with svc.sessions() as session:
        found = (await session.execute(
            _CURRENT, {"token_hash": _token_hash(token), "now": svc.clock()})).first()
    if found is None:
        return None
    session_id, csrf, staff_id, login, surname, first_name, role, department_id = found
    return Current(staff_id, login, f"{surname} {first_name}", role, department_id, csrf,
                   session_id)


def set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    svc = request.app[SERVICES]
    secure = request.secure or svc.settings.panel.public_url.startswith("https://")
    response.set_cookie(COOKIE, token, max_age=SESSION_HOURS * 3600, httponly=True,
                        secure=secure, samesite="Strict", path="/")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_public(path: str) -> bool:
    return path == "/" or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Loads the employee; panel pages need one; every panel POST needs the CSRF token."""
    svc = request.app[SERVICES]
    token = request.cookies.get(COOKIE, "")
    current = await _current(svc, token) if token else None
    if current is not None:
        request[CURRENT] = current
    if _is_public(request.path):
        return await handler(request)
    if current is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(f"/login?next={request.path_qs}")
        raise web.HTTPForbidden(text="Сеанс истёк: войдите снова.")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        sent = request.headers.get("X-CSRF-Token", "")
        if not sent and request.content_type in ("application/x-www-form-urlencoded",
                                                 "multipart/form-data"):
            sent = str((await request.post()).get(CSRF_FIELD, ""))
        if not sent or not hmac.compare_digest(sent, current.csrf):
            await audit(svc, current.staff_id, "csrf_refused", "request", request.path,
                        remote=request.remote or "")
            raise web.HTTPForbidden(text="Запрос отклонён: нет проверочного кода формы "
                                         "(CSRF). Обновите страницу и повторите.")
    return await handler(request)


def current(request: web.Request) -> Current:
    return request[CURRENT]  # type: ignore[no-any-return]


def require(request: web.Request, roles: Iterable[Role]) -> Current:
    me = current(request)
    if me.role not in tuple(roles):
        raise web.HTTPForbidden(text="Недостаточно прав для этого действия.")
    return me
