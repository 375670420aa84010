"""``agi://…/ivr-entry``: greeting, working hours, topic menu (R-H1, R-H2, R-H3).

Keys pressed during the greeting or the "invalid" prompt are taken as the menu choice, so a
caller who types ahead is understood. ``*`` repeats the menu, ``0`` reaches an operator;
after ``ivr.max_menu_failures`` unrecognised inputs the caller goes to an operator, never
hung up on. Outside working hours the caller hears the hours and the next opening and may
leave a callback request.
"""

from __future__ import annotations

import asyncio

from ivr.db.models import CallbackSource, CallOutcome, IvrStep
from ivr.phrases import day_notice, hours_text, moment
from ivr.settings import Topic

from ..protocol import AGIHangup
from ..server import CallContext
from . import appeal_status, callback_request, reception, self_service
from .common import CallFlow
from .verification import NOT_VERIFIED

OPERATOR_KEY = "0"
REPEAT_KEY = "*"
MAX_ROUNDS = 20  # bounds a caller who keeps pressing *


async def run(call: CallContext) -> None:
    flow = CallFlow(call)
    try:
        await _entry(flow)
    except AGIHangup:
        # The caller's own channel hung up in the IVR: the call ended, and its outcome is
        # final now, whether or not the AMI tracker is listening.
        flow.svc.recorder.ended(flow.linkedid, flow.now())
        raise


async def _entry(flow: CallFlow) -> None:
    call = flow.call
    dialed = flow.args[0] if flow.args and flow.args[0] else call.env.dnid
    await flow.menu()  # the administrator's calendar days decide whether we are open
    now = flow.now()
    is_open = flow.calendar.is_open(now)
    flow.svc.recorder.arrival(flow.linkedid, flow.caller, dialed, now)
    flow.step(IvrStep.GREETING)
    # Speech work happens while the greeting plays, never between commands.
    closed_text = None if is_open else asyncio.create_task(_after_hours_text(flow))
    key = await flow.agi.stream_file(await flow.script_path("script.greeting", "greeting"))
    if closed_text is not None:
        await _after_hours(flow, await closed_text)
        return
    await main_menu(flow, key)


async def _after_hours_text(flow: CallFlow) -> str:
    now = flow.now()
    org = flow.settings.organisation
    today = flow.calendar.today(now)
    text = flow.prompts.fill(
        "after_hours", hours=hours_text(org, flow.prompts),
        next_opening=moment(flow.calendar.next_opening(now), today))
    text = f"{day_notice(flow.calendar, flow.prompts, today)} {text}".strip()
    return await flow.prompts.prepare(text, personal=False)  # the ministry's hours only


async def _after_hours(flow: CallFlow, text_path: str) -> None:
    flow.outcome(CallOutcome.AFTER_HOURS)
    key = await flow.agi.stream_file(text_path)
    if await flow.choose(flow.prompts.path("callback_offer"), "12", first=key) == "1":
        flow.record("1")
        await callback_request.run(flow, CallbackSource.IVR_AFTER_HOURS)
    await flow.farewell_and_hang_up()


async def main_menu(flow: CallFlow, key: str = "") -> None:
    ivr = await flow.menu()
    failures = 0
    for _ in range(MAX_ROUNDS):
        if not key:
            flow.step(IvrStep.MENU)
            key, _timed_out = await flow.agi.get_data(flow.prompts.path("menu"),
                                                      ivr.menu_timeout_ms, 1)
        if key == REPEAT_KEY:
            key = ""
            continue
        if key == OPERATOR_KEY:
            flow.record(key, queue=ivr.general_queue)
            await flow.to_queue(ivr.general_queue, None)
            return
        topic = ivr.topic_for(key) if key else None
        if topic is not None:
            flow.record(key, topic=topic.code, queue=topic.queue)
            next_step = await _topic(flow, topic)
            if next_step == "operator":
                await flow.to_queue(topic.queue, topic.code)
                return
            if next_step == NOT_VERIFIED:
                await flow.to_queue(ivr.general_queue, topic.code)
                return
            if next_step == "done":
                flow.outcome(CallOutcome.SELF_SERVICE)
                await flow.farewell_and_hang_up()
                return
            key = ""  # back to the main menu
            continue
        failures += 1
        if failures >= ivr.max_menu_failures:
            break
        key = await flow.play("invalid")
    flow.record("!", queue=ivr.general_queue)
    await flow.to_queue(ivr.general_queue, None)


async def _topic(flow: CallFlow, topic: Topic) -> str:
    """Run the topic's branch; "operator", "menu", "done" or NOT_VERIFIED."""
    if topic.action == "hours":
        return await self_service.hours(flow)
    if topic.action == "appeal_status":
        return await appeal_status.run(flow)
    if topic.action == "reception":
        return await reception.run(flow)
    if topic.action == "agency":
        return await self_service.agency(flow, topic)
    return "operator"
