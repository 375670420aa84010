"""Asterisk's queues from the database: queues.conf rendered and read by the running
Asterisk over AMI (``QueueReload``), so a change in the panel is live at once.

Why a file and a reload rather than Asterisk's realtime queues: the file is the same one
``hotline asterisk up`` writes, the AMI user needs no privilege for ``QueueReload``, and
Asterisk keeps reading the file if our database is away. Members are dynamic (the panel's
«Готов»): a reload of the queues' parameters keeps them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

import jinja2

from .ami import AMIClient, AMIError
from .asterisk_dev import CONFIG_SRC, DevAsterisk
from .services.menu import QueueSpec
from .settings import Settings

log = logging.getLogger(__name__)


def config_dir(settings: Settings) -> Path:
    """Where the running Asterisk reads our queues.conf, as this service sees it."""
    if settings.asterisk.config_dir:
        return Path(settings.asterisk.config_dir)
    dev = DevAsterisk(settings)
    return dev.layout.host(dev.layout.etc_inside)


def render_queues(queues: Sequence[QueueSpec]) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(CONFIG_SRC),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    return env.get_template("queues.conf").render(queues=queues)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    if path.exists():
        # Whoever installed it chose who may read it (the AMI secret is not in it, but
        # Asterisk's group must still read it): the new file keeps that.
        tmp.chmod(path.stat().st_mode & 0o777)
    tmp.replace(path)  # atomic: Asterisk never reads half a file


async def apply_queues(settings: Settings, queues: Sequence[QueueSpec],
                       ami: AMIClient | None) -> str:
    """Write queues.conf and have Asterisk read it; "" when done, otherwise what went
    wrong, in Russian (the change itself is saved either way)."""
    path = config_dir(settings) / "queues.conf"
    try:
        await asyncio.to_thread(_write, path, render_queues(queues))
    except OSError as exc:
        log.error("queues.conf not written to %s: %s", path, exc)
        return f"файл очередей Asterisk не записан ({path}): {exc.strerror}"
    if ami is None or not ami.connected.is_set():
        return "нет связи с Asterisk: очереди применятся при его перезагрузке"
    try:
        await ami.action({"Action": "QueueReload", "Parameters": "yes"}, as_list=False)
    except (AMIError, TimeoutError) as exc:
        log.error("QueueReload refused: %s", exc)
        return f"Asterisk не перечитал очереди: {exc}"
    return ""
