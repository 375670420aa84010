"""Staff login, server-side sessions, CSRF and the audit log of the panel (issue 5, R-X2).

- Passwords: argon2id (argon2-cffi), re-hashed on login when the parameters change.
- Sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure when the panel is
  served over TLS); only its SHA-256 is stored (``web_sessions``), with an expiry; logout
  revokes it. A stolen database does not give a usable cookie.
- CSRF: every session has its own token; every POST under ``/panel`` and ``/logout`` must
  carry it (form field ``_csrf`` or header ``X-CSRF-Token``) or is refused with 403.
- Failed logins are slowed (a growing pause) and, after ``LOCK_AFTER`` in a row, the account
  is locked for ``LOCK_MINUTES``; both the failures and the lock are audit-logged. Beyond
  that, failures are counted per remote address and per login over a window (settings
  ``panel.login_failures_per_*``); past either limit every attempt is refused unchecked
  (429, audit-logged), so neither guessing one password nor spraying many logins pays.
- Passwords are hashed and checked off the event loop, a few at a time (:class:`Hasher`).
- Request bodies: ``PUBLIC_BODY_BYTES`` for anyone (login, survey, cancel links), more for a
  logged-in employee (``PANEL_BODY_BYTES``); the API raises it per route.
- :func:`audit` writes who viewed or changed what, when, from where.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import bindparam, select, update

from ivr.db.models import Role, Staff, WebSession
from ivr.passwords import Hasher, hash_password, needs_rehash
from ivr.recorder import Audited
from ivr.services.accounts import token_hash
from ivr.services.container import Services
from ivr.settings import Panel

from .app_keys import SERVICES

COOKIE = "hotline_session"
SESSION_HOURS = 10          # a working day; then log in again
LOCK_AFTER = 5
LOCK_MINUTES = 15
CSRF_FIELD = "_csrf"
# /metrics: no session, its own policy (by address, web.metrics).
PUBLIC_PREFIXES = ("/login", "/survey/", "/reception/cancel/", "/api/", "/healthz", "/static/",
                   "/metrics")
# Verifying against this when the login is unknown takes as long as a real check.
_DUMMY_HASH = hash_password("no such user")
# Bodies anyone may send (the login form, a survey's answers) vs. a logged-in employee's
# forms (an appeal's answer, an article).
PUBLIC_BODY_BYTES = 16 * 1024
PANEL_BODY_BYTES = 1024 * 1024


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

    status = 401


class LoginThrottled(LoginError):
    status = 429


class LoginGuard:
    """One per panel process: failed logins by remote address and by login over a moving
    window, and the hashing slots. A limit reached refuses before any password is checked."""

    def __init__(self) -> None:
        self.hasher = Hasher()
        self._failures = MovingWindowRateLimiter(MemoryStorage())

    @staticmethod
    def _limits(panel: Panel) -> tuple[RateLimitItem, RateLimitItem]:
        window = panel.login_window_seconds
        return (RateLimitItemPerSecond(panel.login_failures_per_address, window),
                RateLimitItemPerSecond(panel.login_failures_per_login, window))

    async def reached(self, panel: Panel, remote: str, login: str) -> str:
        """Which limit is reached: "address", "login", or "" for neither."""
        by_address, by_login = self._limits(panel)
        if not await self._failures.test(by_address, "address", remote):
            return "address"
        if not await self._failures.test(by_login, "login", login.lower()):
            return "login"
        return ""

    async def failed(self, panel: Panel, remote: str, login: str) -> None:
        by_address, by_login = self._limits(panel)
        await self._failures.hit(by_address, "address", remote)
        await self._failures.hit(by_login, "login", login.lower())


LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)


async def audit(svc: Services, who: int | None, action: str, object_type: str,
                object_id: object = "", details: str = "", remote: str = "") -> None:
    """Into the audit log, through the call recorder: batched with everything else the
    process writes, kept in the spool while the database is away. Should the spool be
    full, the recorder refuses the entry and reports it in full in the log (CRITICAL)."""
    svc.recorder.put(Audited("", svc.clock(), who, action[:40], object_type[:40],
                             str(object_id)[:60], details[:2000], remote[:60]))


THROTTLED = ("Слишком много неудачных попыток входа {where}. Вход временно закрыт: "
             "попробуйте через {minutes} мин. или обратитесь к администратору.")
THROTTLED_WHERE = {"address": "с этого компьютера", "login": "под этим именем"}
THROTTLED_AUDIT = {"address": "предел неудачных входов с адреса",
                   "login": "предел неудачных входов под логином"}


async def log_in(svc: Services, guard: LoginGuard, login: str, password: str,
                 remote: str) -> tuple[str, Staff]:
    """A new session's cookie token and the employee; :class:`LoginError` otherwise."""
    panel = svc.settings.panel
    login = login.strip()[:100]
    limit = await guard.reached(panel, remote, login)
    if limit:
        await audit(svc, None, "login_throttled", "staff", login, THROTTLED_AUDIT[limit],
                    remote)
        raise LoginThrottled(THROTTLED.format(where=THROTTLED_WHERE[limit],
                                              minutes=-(-panel.login_window_seconds // 60)))
    async with svc.sessions() as session:
        staff = await session.scalar(select(Staff).where(Staff.login == login))
    if staff is None or not staff.active or not staff.password_hash:
        await guard.hasher.verify(_DUMMY_HASH, password)
        staff = None
    elif staff.locked_until is not None and staff.locked_until > svc.clock():
        await guard.failed(panel, remote, login)
        raise LoginError("Учётная запись временно заблокирована после неудачных попыток "
                         "входа. Попробуйте позже или обратитесь к администратору.")
    elif await guard.hasher.verify(staff.password_hash, password):
        token = await _open_session(svc, guard, staff, password)
        if token:
            await audit(svc, staff.id, "login", "staff", staff.id, "", remote)
            return token, staff
    await guard.failed(panel, remote, login)
    failures, locked = await _count_failure(svc, staff) if staff else (1, False)
    await audit(svc, staff.id if staff else None, "login_failed", "staff", login[:60],
                "учётная запись заблокирована" if locked else "", remote)
    # Slowed: each failure in a row costs a longer pause.
    await asyncio.sleep(login_delay(failures))
    raise LoginError("Неверное имя пользователя или пароль.")


async def _open_session(svc: Services, guard: LoginGuard, staff: Staff, password: str) -> str:
    """The new session's token; "" when the password was changed or the employee disabled
    while the password was being checked (their sessions were just ended)."""
    now = svc.clock()
    values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
    if needs_rehash(staff.password_hash):
        values["password_hash"] = await guard.hasher.hash(password)
    token = secrets.token_urlsafe(32)
    async with svc.sessions() as session, session.begin():
        changed = await session.execute(
            update(Staff).where(Staff.id == staff.id, Staff.active,
                                Staff.password_hash == staff.password_hash).values(**values))
        if not changed.rowcount:  # type: ignore[attr-defined]
            return ""
        session.add(WebSession(token_hash=token_hash(token), staff_id=staff.id,
                               csrf_token=secrets.token_urlsafe(32), created_at=now,
                               expires_at=now + timedelta(hours=SESSION_HOURS)))
    return token


async def _count_failure(svc: Services, staff: Staff) -> tuple[int, bool]:
    """Failures in a row now, and whether this one locked the account."""
    now = svc.clock()
    async with svc.sessions() as session, session.begin():
        failures = await session.scalar(
            update(Staff).where(Staff.id == staff.id)
            .values(failed_logins=Staff.failed_logins + 1).returning(Staff.failed_logins))
        locked = (failures or 0) >= LOCK_AFTER
        if locked:
            await session.execute(update(Staff).where(Staff.id == staff.id).values(
                locked_until=now + timedelta(minutes=LOCK_MINUTES)))
    return failures or 1, locked


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
            _CURRENT, {"token_hash": token_hash(token), "now": svc.clock()})).first()
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
    # A logged-in employee's forms may be longer than anyone's (the application's limit).
    request = request.clone(client_max_size=PANEL_BODY_BYTES)
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
