"""Who may call each route, declared on its handler and enforced by one middleware.

Every handler carries exactly one declaration::

    @public                                   # anyone: status, login, signed e-mail links
    @panel(*HEADS, check=scopes.appeal_department, audit="appeal")
    @api(*OVERSEERS, audit="call")            # an API token of an employee in these roles

``panel`` routes need a staff session (and, for a change, its CSRF token: the session
middleware), ``api`` routes a bearer token. ``check`` is the object-level rule of the
regulations (the appeal's own department, the call the operator spoke on, R-K1's own
section …); it raises :class:`PolicyDenied`. A refusal answers 403 and is written to the
audit log under ``audit`` (the object type), as ``refused`` or the action the policy names.

The middleware refuses a route that has no declaration (fail closed), and
``tests/security/test_route_policies.py`` lists every route of :func:`web.app.init_app`
with its policy, so a forgotten one fails the suite before it ships.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from aiohttp import web
from sqlalchemy import select

from ivr.db.models import Role, Staff

from .app_keys import SERVICES
from .errors import DomainError, PolicyDenied, Unauthenticated

log = logging.getLogger(__name__)

# Role groups, named after what the regulations let them do.
STAFF = tuple(Role)
OVERSEERS = (Role.SUPERVISOR, Role.ADMINISTRATOR)
HEADS = (Role.DEPARTMENT_HEAD, *OVERSEERS)
# Specialists, heads and overseers work appeals; operators see a caller's appeals on the
# card of the call they are on.
APPEAL_STAFF = (Role.SPECIALIST, *HEADS)


@dataclass(frozen=True)
class Actor:
    """Who is asking: the session's employee, or the employee an API token was issued to."""

    staff_id: int
    role: Role
    department_id: int

    @property
    def overseer(self) -> bool:
        return self.role in OVERSEERS


Check = Callable[[web.Request, Actor], Awaitable[None]]
# Machines without a login (a Prometheus server): whether the request's address may ask.
AddressCheck = Callable[[web.Request], bool]
Kind = Literal["public", "panel", "api", "address"]


@dataclass(frozen=True)
class Policy:
    kind: Kind
    roles: frozenset[Role] = frozenset()
    check: Check | None = None
    audit: str = "request"      # the object type of a refusal's audit entry
    refused: str = "refused"    # the action of a refusal's audit entry
    json: bool = False          # a fetch route: errors as JSON, like the API
    allowed: AddressCheck | None = None   # kind "address": who may ask, by address

    def describe(self) -> str:
        roles = ", ".join(sorted(r.value for r in self.roles)) or "-"
        check = getattr(self.check or self.allowed, "__name__", "")
        return f"{self.kind}({roles}){' + ' + check if check else ''}"


_ATTRIBUTE = "hotline_policy"
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def _declare(found: Policy) -> Callable[[H], H]:
    def decorate(handler: H) -> H:
        if policy_of(handler) is not None:
            raise TypeError(f"{handler.__name__}: a second policy")
        setattr(handler, _ATTRIBUTE, found)
        return handler
    return decorate


def public(handler: H) -> H:
    """No login: the status page, the login form, pages reached by a signed link."""
    return _declare(Policy("public"))(handler)


def panel(*roles: Role, check: Check | None = None, audit: str = "request",
          refused: str = "refused", json: bool = False) -> Callable[[H], H]:
    """A staff session in one of ``roles`` (and whatever ``check`` says)."""
    if not roles:
        raise TypeError("name the roles (STAFF for every employee)")
    return _declare(Policy("panel", frozenset(roles), check, audit, refused, json))


def api(*roles: Role, check: Check | None = None, audit: str = "request",
        refused: str = "refused") -> Callable[[H], H]:
    """A bearer token of an employee in one of ``roles``."""
    if not roles:
        raise TypeError("name the roles (STAFF for every employee)")
    return _declare(Policy("api", frozenset(roles), check, audit, refused, json=True))


def address(allowed: AddressCheck, audit: str = "request") -> Callable[[H], H]:
    """No login, but only from the addresses ``allowed`` accepts (``/metrics``)."""
    return _declare(Policy("address", audit=audit, allowed=allowed))


def policy_of(handler: object) -> Policy | None:
    found = getattr(handler, _ATTRIBUTE, None)
    return found if isinstance(found, Policy) else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _panel_actor(request: web.Request) -> Actor:
    from .auth import CURRENT

    me = request.get(CURRENT)
    if me is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(f"/login?next={request.path_qs}")
        raise Unauthenticated("Сеанс истёк: войдите снова.", "no_session")
    return Actor(me.staff_id, me.role, me.department_id)


async def _api_actor(request: web.Request) -> Actor:
    staff_id = request.get("api_staff_id")
    if staff_id is None:
        raise Unauthenticated("нужен заголовок Authorization: Bearer <токен>", "no_token")
    async with request.app[SERVICES].sessions() as session:
        found = (await session.execute(select(Staff.role, Staff.department_id).where(
            Staff.id == staff_id, Staff.active))).first()
    if found is None:
        raise PolicyDenied("сотрудник, которому выдан токен, не работает в системе",
                           "token_staff_inactive")
    return Actor(int(staff_id), found[0], found[1])


async def _refusal(request: web.Request, found: Policy, staff_id: int | None,
                   exc: DomainError) -> None:
    from .auth import audit

    await audit(request.app[SERVICES], staff_id, found.refused, found.audit,
                request.match_info.get("id", ""),
                f"{exc.error_id}: {request.method} {request.path_qs}", request.remote or "")


@web.middleware
async def enforce(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Runs inside the session and token middlewares: the employee is known by now."""
    if request.match_info.http_exception is not None:
        return await handler(request)   # unknown address or method: its own error
    found = policy_of(request.match_info.handler)
    if found is None:
        log.error("route without a policy refused: %s %s", request.method, request.path)
        closed = PolicyDenied("Адрес закрыт: для него не объявлены права доступа.",
                              "no_policy")
        await _refusal(request, Policy("public"), _anyone(request), closed)
        raise closed
    if found.kind == "public":
        return await handler(request)
    if found.kind == "address":
        return await _by_address(request, handler, found)
    actor = await (_panel_actor(request) if found.kind == "panel" else _api_actor(request))
    request[ACTOR] = actor
    try:
        if actor.role not in found.roles:
            raise PolicyDenied("Недостаточно прав для этого действия.", "role")
        if found.check is not None:
            await found.check(request, actor)
        return await handler(request)
    except PolicyDenied as exc:
        await _refusal(request, found, actor.staff_id, exc)
        raise


async def _by_address(request: web.Request, handler: Handler,
                      found: Policy) -> web.StreamResponse:
    if found.allowed is None or not found.allowed(request):
        denied = PolicyDenied("Доступ с этого адреса закрыт.", "address")
        await _refusal(request, found, None, denied)
        raise denied
    return await handler(request)


def _anyone(request: web.Request) -> int | None:
    """The session's employee or the token's, if any: for a refusal of an undeclared route."""
    from .auth import CURRENT

    me = request.get(CURRENT)
    staff_id = me.staff_id if me is not None else request.get("api_staff_id")
    return int(staff_id) if staff_id is not None else None


ACTOR = "hotline_actor"


def actor(request: web.Request) -> Actor:
    """The employee the policy let in (set for every panel and API route)."""
    return request[ACTOR]  # type: ignore[no-any-return]
