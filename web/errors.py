"""Domain errors of the panel and the API, and the one middleware that answers them.

Handlers raise; they do not build error responses. Each error carries an HTTP status and a
stable id (``appeal_not_found``, ``appeal_other_department`` …) that a script or a support
request can quote. The middleware answers with a Russian page on panel routes, or with
``{"error": "<Russian message>", "id": "<error id>"}`` on ``/api/`` and on the routes a
page calls with ``fetch`` (their policy says ``json=True``). aiohttp's own errors (an
unknown address, a wrong method, the session's refusals) get the same treatment, so nobody
sees aiohttp's English ``404: Not Found``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web


class DomainError(Exception):
    """Something a request asked that cannot be done; the message is for people (Russian)."""

    status = 400
    error_id = "invalid"

    def __init__(self, message: str, error_id: str | None = None) -> None:
        super().__init__(message)
        if error_id is not None:
            self.error_id = error_id

    @property
    def message(self) -> str:
        return str(self)


class Invalid(DomainError):
    """Bad input: a missing field, a malformed value."""


class Unprocessable(Invalid):
    """Well-formed input the rules refuse (a plain-language flag, a refused number)."""

    status = 422
    error_id = "unprocessable"


class Unauthenticated(DomainError):
    """No session (panel) or no valid token (API)."""

    status = 401
    error_id = "unauthenticated"


class PolicyDenied(DomainError):
    """The route's policy does not let this employee (or token) do this."""

    status = 403
    error_id = "forbidden"


class NotFound(DomainError):
    status = 404
    error_id = "not_found"


class Conflict(DomainError):
    """The state changed under the request: taken, already done."""

    status = 409
    error_id = "conflict"


# aiohttp's own errors, in Russian; raised by the router and by the session middleware.
HTTP_MESSAGES = {
    400: ("bad_request", "Неверный запрос."),
    401: ("unauthorized", "Нужно войти в систему."),
    403: ("forbidden", "Недостаточно прав для этого действия."),
    404: ("not_found", "Страница не найдена. Проверьте адрес или вернитесь на главную."),
    405: ("method_not_allowed", "Этот адрес не принимает такой запрос."),
    413: ("too_large", "Слишком большой запрос."),
}

_CYRILLIC = re.compile("[А-Яа-яЁё]")
HEADINGS = {403: "Доступ запрещён", 404: "Не найдено", 409: "Действие не выполнено"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def wants_json(request: web.Request) -> bool:
    """API and fetch routes answer JSON; the rest, pages."""
    from .policy import policy_of

    if request.path.startswith("/api/"):
        return True
    found = policy_of(request.match_info.handler)
    return bool(found and found.json)


def answer(request: web.Request, status: int, error_id: str, message: str) -> web.Response:
    if wants_json(request):
        return web.json_response({"error": message, "id": error_id}, status=status)
    return aiohttp_jinja2.render_template("error.html", request, {
        "status": status, "error_id": error_id, "message": message,
        "heading": HEADINGS.get(status, "Запрос не выполнен")},
        status=status)


def _from_http(exc: web.HTTPException) -> tuple[str, str]:
    """A Russian text given by the raiser is kept; aiohttp's English ones are replaced."""
    error_id, default = HTTP_MESSAGES.get(exc.status, ("error", "Запрос не выполнен."))
    text = exc.text or ""
    return error_id, text if _CYRILLIC.search(text) else default


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return answer(request, exc.status, exc.error_id, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type not in ("text/plain", ""):
            raise
        error_id, message = _from_http(exc)
        response = answer(request, exc.status, error_id, message)
        for name in ("Allow", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
