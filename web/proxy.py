"""The client's address behind a reverse proxy: nginx connects from 127.0.0.1 and names
the client in ``X-Real-IP`` (config/nginx/hotline.conf). One outermost middleware puts
that address in ``request.remote`` (login limits per address, the audit log) only when the
connection itself comes from one of ``[panel] trusted_proxies``; from anyone else the
header is theirs to write and is ignored. :func:`peer_address` is the connection's own
peer, for the checks that must never believe a header (``/metrics``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv6Address, ip_address

from aiohttp import web

from .app_keys import SERVICES

Address = IPv4Address | IPv6Address
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _address(text: str) -> Address | None:
    try:
        found = ip_address(text.strip())
    except ValueError:
        return None
    if found.version == 6 and found.ipv4_mapped is not None:   # a dual-stack listener
        return found.ipv4_mapped
    return found


def peer_address(request: web.Request) -> Address | None:
    """The address of the connection itself, whatever the headers or the middleware say."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return _address(str(peer[0])) if isinstance(peer, tuple) and peer else None


@web.middleware
async def real_remote(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app.get(SERVICES)
    trusted = services.settings.panel.trusted_proxies if services is not None else []
    forwarded = request.headers.get("X-Real-IP", "")
    if trusted and forwarded:
        peer, client = peer_address(request), _address(forwarded)
        if peer is not None and client is not None and any(
                peer.version == net.version and peer in net for net in trusted):
            request = request.clone(remote=str(client))
    return await handler(request)
