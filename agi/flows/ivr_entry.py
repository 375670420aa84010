"""``agi://…/ivr-entry``: greeting and topic menu of the hotline (R-H1, R-H3).

Keys pressed during the greeting or the "invalid" prompt are taken as the menu choice, so a
caller who types ahead is understood. ``*`` repeats the menu, ``0`` reaches an operator;
after ``ivr.max_menu_failures`` unrecognised inputs the caller goes to an operator, never
hung up on.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ivr.services.calls import record_arrival, record_menu_choice
from ivr.services.container import Services

from .. import dialplan
from ..server import CallContext

OPERATOR_KEY = "0"
REPEAT_KEY = "*"
MAX_ROUNDS = 20  # bounds a caller who keeps pressing *


async def run(call: CallContext) -> None:
    svc: Services = call.services
    agi, env, ivr = call.agi, call.env, svc.settings.ivr
    # Arguments from the dialplan: the call's linkedid and the published number dialled.
    linkedid = env.args[0] if env.args and env.args[0] else env.uniqueid
    dialed = env.args[1] if len(env.args) > 1 and env.args[1] else env.dnid

    # The record is written while the greeting plays: no database work between commands.
    arrival = asyncio.create_task(record_arrival(
        svc.sessions, linkedid=linkedid, caller=env.callerid,
        dialed=dialed, at=datetime.now(UTC),
    ))
    try:
        key = await agi.stream_file(svc.prompts.path("greeting"))
    finally:
        await arrival

    failures = 0
    for _ in range(MAX_ROUNDS):
        if not key:
            key, _timed_out = await agi.get_data(svc.prompts.path("menu"), ivr.menu_timeout_ms, 1)
        if key == REPEAT_KEY:
            key = ""
            continue
        if key == OPERATOR_KEY:
            return await _route(call, linkedid, key, topic=None, queue=ivr.general_queue)
        topic = ivr.topic_for(key) if key else None
        if topic is not None:
            return await _route(call, linkedid, key, topic=topic.code, queue=topic.queue)
        failures += 1
        if failures >= ivr.max_menu_failures:
            return await _route(call, linkedid, "!", topic=None, queue=ivr.general_queue)
        key = await agi.stream_file(svc.prompts.path("invalid"))
    await _route(call, linkedid, "!", topic=None, queue=ivr.general_queue)


async def _route(call: CallContext, linkedid: str, key: str, *, topic: str | None,
                 queue: str) -> None:
    svc: Services = call.services
    await record_menu_choice(svc.sessions, linkedid=linkedid, key=key, topic=topic, queue=queue)
    await call.agi.set_variable(dialplan.QUEUE, queue)
    await call.agi.set_variable(dialplan.TOPIC, topic or "")
