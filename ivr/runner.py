"""``hotline serve``: one process running the chosen parts on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterable, Mapping

from agi.channel import Watchdog
from agi.server import FastAGIServer, Flow

from .ami import AMIClient
from .services.container import Services
from .settings import Settings

log = logging.getLogger(__name__)
ALL_PARTS = ("agi", "ami", "scheduler", "web")


def make_agi_server(services: Services, routes: Mapping[str, Flow] | None = None) -> FastAGIServer:
    from agi.routes import ROUTES

    cfg = services.settings.agi
    return FastAGIServer(
        ROUTES if routes is None else routes, services, host=cfg.host, port=cfg.port,
        header_timeout=cfg.header_timeout, command_timeout=cfg.command_timeout,
        max_connections=cfg.max_connections, max_pending=cfg.max_pending,
        allowed_peers=cfg.allowed_peers,
        watchdog=Watchdog(margin=cfg.watchdog_seconds, duration_of=services.prompts.seconds),
        latency=services.metrics.agi_latency,
    )


@contextlib.asynccontextmanager
async def _agi(services: Services) -> AsyncIterator[None]:
    from .phrases import render_prompts
    from .services.kb import refresh_scripts

    # Prompts are rendered before the first call: a caller never waits for synthesis.
    await asyncio.to_thread(render_prompts, services.settings, services.prompts)
    try:
        await refresh_scripts(services)
    except Exception:  # the database may be down: the settings' fallback prompts still work
        log.exception("could not pre-render knowledge-base scripts")
    server = make_agi_server(services)
    await server.start()
    try:
        yield
    finally:
        await server.close()


def make_ami(settings: Settings) -> AMIClient:
    cfg = settings.ami
    return AMIClient(cfg.host, cfg.port, cfg.username, cfg.secret,
                     action_timeout=cfg.action_timeout, ping_interval=cfg.ping_interval,
                     reconnect_max_delay=cfg.reconnect_max_delay)


@contextlib.asynccontextmanager
async def _ami(services: Services) -> AsyncIterator[None]:
    from .agent_states import AgentStates, recording
    from .recordings import RecordingTracker
    from .tracking import CallTracker

    client = make_ami(services.settings)
    CallTracker(services, client)
    RecordingTracker(services, client)
    AgentStates(client, recording(services.recorder))
    await client.start()
    try:
        yield
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _scheduler(services: Services) -> AsyncIterator[None]:
    from .dialer import CallbackDialer
    from .notifier import NoticeSender
    from .scheduler import JOBS, Periodic, Scheduler

    # The callback dialer and the notice sender originate through their own AMI link.
    client = make_ami(services.settings)
    dialer = CallbackDialer(services, client)
    sender = NoticeSender(services, client)
    await client.start()

    async def dial(_: Services) -> int:
        return await dialer.run_once()

    async def send(_: Services) -> int:
        return await sender.run_once()

    scheduler = Scheduler(services, [
        *JOBS, Periodic("dial-callbacks", services.settings.callbacks.every_seconds, dial),
        Periodic("send-notices", services.settings.notices.every_seconds, send)])
    try:
        await scheduler.start()
        yield
    finally:
        await scheduler.close()
        await client.close()


@contextlib.asynccontextmanager
async def _web(services: Services) -> AsyncIterator[None]:
    from aiohttp import web

    from web.app import init_app

    # The panel's own AMI link: operator status, transfers, the screen-pop's events.
    client = make_ami(services.settings)
    runner = web.AppRunner(init_app(services, client))
    try:
        # Inside the try: a port already taken must stop what was started (the AMI link,
        # the figures being computed) and end the service with the error, not leave it
        # hanging at shutdown.
        await client.start()
        await runner.setup()
        cfg = services.settings.panel
        site = web.TCPSite(runner, cfg.host, cfg.port, reuse_port=cfg.reuse_port or None)
        await site.start()
        log.info("panel at http://%s:%d/", cfg.host, cfg.port)
        yield
    finally:
        await runner.cleanup()
        await client.close()


@contextlib.asynccontextmanager
async def _scripts(services: Services) -> AsyncIterator[None]:
    """An edited script (R-H3) is heard and shown by this process too, whichever process
    saved it: the panel of another host, ``--only agi`` beside ``--only web``."""
    from .scheduler import Periodic, Scheduler
    from .services.kb import refresh_scripts

    every = services.settings.tts.scripts_refresh_seconds
    watcher = Scheduler(services, [Periodic("refresh-kb-scripts", every, refresh_scripts)])
    await watcher.start()
    try:
        yield
    finally:
        await watcher.close()


PARTS = {"agi": _agi, "ami": _ami, "scheduler": _scheduler, "web": _web}
# The parts that speak or show the knowledge base's scripts.
SCRIPT_READERS = {"agi", "web"}


async def run_service(settings: Settings, parts: Iterable[str] | None = None) -> None:
    from .recovery import mark_start

    chosen = list(parts or ALL_PARTS)
    services = Services.create(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await services.recorder.start()  # facts spooled by an earlier run go in first
        # Where the import of missed calls begins, durable before the first call is served.
        await mark_start(services)
        async with contextlib.AsyncExitStack() as stack:
            for name in chosen:
                await stack.enter_async_context(PARTS[name](services))
            if SCRIPT_READERS & set(chosen):
                await stack.enter_async_context(_scripts(services))
            log.info("hotline serving: %s", ", ".join(chosen))
            await stop.wait()
            log.info("hotline stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)  # a loop that goes on (tests) stops as before
        await services.close()
