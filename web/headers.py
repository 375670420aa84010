"""Security headers on every response of the panel, the API and the public pages (issue 25).

- Content-Security-Policy: scripts, styles, images, fetches and form posts only from the
  panel itself; an inline ``<script>`` runs only with this response's nonce (templates
  write ``nonce="{{ csp_nonce }}"``); inline styles and event handlers never; no framing.
- ``Cache-Control: no-store`` on everything but ``/static/``: pages and API answers carry
  personal data, and neither a shared computer's browser cache nor a proxy may keep them.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``,
  ``X-Frame-Options: DENY`` (for browsers older than ``frame-ancestors``).

The headers are set in ``on_response_prepare``, so streamed answers (the operator's live
events), redirects and error pages get them as well as rendered pages.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp_jinja2
from aiohttp import web

from .policy import public

STATIC = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/"
NONCE = "csp_nonce"   # the request key and the templates' variable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Where else the panel's pages may connect besides the panel: the browser phone's SIP
# WebSocket (web/phone.py), known only once the app's settings are.
ConnectSources = Callable[[web.Application], Sequence[str]]
CONNECT_SOURCES: web.AppKey[ConnectSources] = web.AppKey("connect_sources")


def content_security_policy(nonce: str | None, connect: Sequence[str] = ()) -> str:
    scripts = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    return "; ".join((
        "default-src 'self'", f"script-src {scripts}", "style-src 'self'",
        "img-src 'self' data:", " ".join(("connect-src 'self'", *connect)),
        "form-action 'self'",
        "frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'"))


@web.middleware
async def csp_nonce(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A fresh nonce per request, in every template's context."""
    nonce = secrets.token_urlsafe(18)
    request[NONCE] = nonce
    context = request.get(aiohttp_jinja2.REQUEST_CONTEXT_KEY) or {}
    request[aiohttp_jinja2.REQUEST_CONTEXT_KEY] = {**context, NONCE: nonce}
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    connect = request.app.get(CONNECT_SOURCES)
    headers["Content-Security-Policy"] = content_security_policy(
        request.get(NONCE), connect(request.app) if connect else ())
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    if not request.path.startswith(STATIC_PREFIX):
        headers["Cache-Control"] = "no-store"


# The files there are ours, named plainly: nothing else is served, no path is followed
# (a folder or two of plain names: js/, css/, vendor/<library>/; never a dot first); the
# favicon is an SVG.
STATIC_NAME = r"{name:(?:[a-z0-9_-]+/){0,2}[a-z0-9_-][a-z0-9_.-]*\.(?:css|js|svg)}"


@public
async def static_file(request: web.Request) -> web.FileResponse:
    path = STATIC / request.match_info["name"]
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def setup(app: web.Application) -> None:
    """The headers, the nonce, and ``/static/``: the stylesheet and scripts the policy
    allows in place of inline ones."""
    # Outermost: a middleware may hand the handler a clone of the request (a larger body
    # limit), and the clone's additions never reach the request the headers are set for.
    app.middlewares.insert(0, csp_nonce)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get(STATIC_PREFIX + STATIC_NAME, static_file)
