"""Typed keys of the panel application's shared objects."""

from __future__ import annotations

from aiohttp import web

from ivr.services.container import Services

SERVICES = web.AppKey("services", Services)
