"""The panel's aiohttp application factory.

Shared objects live under typed ``web.AppKey``s; the services are built by the caller
(``hotline serve``) or, standalone, in ``cleanup_ctx`` and disposed on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy import func, select, text

from ivr.ami import AMIClient
from ivr.db.models import Call
from ivr.services.container import Services

from . import audit_names
from .app_keys import SERVICES
from .errors import error_middleware
from .policy import enforce, public
from .records import phone_display

TEMPLATES = Path(__file__).parent / "templates"


async def _database_ok(services: Services) -> bool:
    try:
        async with services.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@public
async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    ok = await _database_ok(services)
    return web.json_response({"database": "ok" if ok else "unavailable"},
                             status=200 if ok else 503)


@public
@aiohttp_jinja2.template("status.html")
async def status_page(request: web.Request) -> dict[str, object]:
    services = request.app[SERVICES]
    org = services.settings.organisation
    now = datetime.now(UTC)
    local = services.calendar.local(now)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    calls_today: int | None = None
    if await _database_ok(services):
        async with services.sessions() as session:
            calls_today = await session.scalar(
                select(func.count()).select_from(Call).where(Call.started_at >= midnight))
    is_open = services.calendar.is_open(now)
    return {
        "org": org,
        "now": local,
        "is_open": is_open,
        "next_opening": None if is_open else services.calendar.next_opening(now),
        "calls_today": calls_today,
    }


def init_app(services: Services | None = None, ami: AMIClient | None = None) -> web.Application:
    from . import (
        admin,
        admin_ivr,
        api,
        api_admin,
        api_read,
        auth,
        callbacks,
        headers,
        kb_pages,
        metrics,
        outbox,
        phone,
        proxy,
        public,
        recordings,
        records,
        supervisor,
        wallboard,
        workspace,
    )

    # Kilobytes for anyone; raised for a logged-in employee, an API token, the CSV import.
    app = web.Application(client_max_size=auth.PUBLIC_BODY_BYTES,
                          # Outermost: the client's address behind a trusted proxy.
                          middlewares=[proxy.real_remote, error_middleware,
                                       auth.session_middleware])
    app[auth.LOGIN_GUARD] = auth.LoginGuard()
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES),
                               autoescape=True)
    env.filters["phone"] = phone_display   # +7 900 123-45-67 wherever a person reads one
    env.filters["audit_action"] = audit_names.action_name
    env.filters["audit_object"] = audit_names.object_name
    if services is not None:
        app[SERVICES] = services
    else:
        app.cleanup_ctx.append(_own_services)
    app.router.add_get("/", status_page)
    app.router.add_get("/healthz", healthz)
    public.setup(app)
    api.setup(app)
    api_read.setup(app)
    api_admin.setup(app)
    records.setup(app)
    outbox.setup(app)
    kb_pages.setup(app)
    admin.setup(app)
    workspace.setup(app, ami)
    callbacks.setup(app, ami)
    supervisor.setup(app)
    admin_ivr.setup(app, ami)
    recordings.setup(app)
    wallboard.setup(app, ami)
    phone.setup(app)   # the browser phone's credentials; its WebSocket in the CSP
    metrics.setup(app)
    headers.setup(app)   # CSP, no-store and the rest on every response; /static/
    # Innermost, after the session and the API token: every route's declared policy.
    app.middlewares.append(enforce)
    return app


async def _own_services(app: web.Application) -> AsyncIterator[None]:
    from ivr.settings import load_settings

    services = Services.create(load_settings())
    app[SERVICES] = services
    yield
    await services.close()
