"""``GET /metrics``: the figures of :mod:`ivr.metrics` for Prometheus, to the addresses in
``[metrics] allow`` only."""

from __future__ import annotations

from aiohttp import web

from ivr.metrics import CONTENT_TYPE

from .app_keys import SERVICES
from .policy import address
from .proxy import peer_address
from .workspace import HUB


def metrics_allowed(request: web.Request) -> bool:
    """The connection's own peer: a forwarded header is the client's to write, never
    trusted here, not even from ``[panel] trusted_proxies`` (``request.remote`` may be
    the proxy's X-Real-IP)."""
    peer = peer_address(request)
    if peer is None:
        return False
    allow = request.app[SERVICES].settings.metrics.allow
    return any(peer.version == net.version and peer in net for net in allow)


@address(metrics_allowed, audit="metrics")
async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    body = await svc.metrics.render(svc, request.app[HUB].ami)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
