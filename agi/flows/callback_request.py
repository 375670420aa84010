"""Callback request steps (R-H5), shared by the after-hours message and the queue offer:
confirm or type the number, pick a window among the next working days' periods, confirm."""

from __future__ import annotations

import asyncio

from ivr import speech_ru as ru
from ivr.db.models import CallbackSource, CallOutcome, IvrStep
from ivr.dialling import DiallingPolicy, NumberRefused, Refusal
from ivr.phrases import when
from ivr.services.callbacks import Window, create_callback, offered_windows

from .common import CallFlow

# What the caller hears when the dialling policy refuses the number typed (settings'
# [prompts]); a key that is no number at all (silence, *) gets the usual "invalid".
REFUSAL_PROMPTS = {
    Refusal.SHORT: "number_refused_short",
    Refusal.INVALID: "number_refused_invalid",
    Refusal.INTERNATIONAL: "number_refused_international",
    Refusal.PREMIUM: "number_refused_premium",
    Refusal.DENIED: "number_refused_denied",
}


async def _number(flow: CallFlow) -> str | None:
    """The number to call back: the caller's own, when the dialling policy allows it and
    the caller confirms it, else one typed (two tries). Only what the policy allows."""
    policy = DiallingPolicy.from_settings(flow.settings)
    if not policy.refusal(flow.caller):
        number = policy.decide(flow.caller)
        text = flow.prompts.fill("callback_confirm_number", number=ru.digits(number))
        if await flow.choose_text(text, "12") == "1":
            return number
    for _ in range(2):
        typed = await flow.collect("callback_enter_number", 11, timeout_ms=7000)
        try:
            return policy.decide(typed)
        except NumberRefused as refused:
            await flow.play(REFUSAL_PROMPTS.get(refused.reason, "invalid"))
    return None


def _describe(window: Window, today: object) -> tuple[str, str]:
    return (when(window.start.date(), today),  # type: ignore[arg-type]
            ru.span(window.start.time(), window.end.time()))


async def run(flow: CallFlow, source: CallbackSource, topic: str | None = None) -> bool:
    """True when a callback was taken (or one was already waiting)."""
    flow.step(IvrStep.CALLBACK_REQUEST)
    number = await _number(flow)
    if number is None:
        return False
    now = flow.now()
    today = flow.calendar.today(now)
    windows = offered_windows(flow.calendar, now, flow.settings.ivr.callback_days)[:9]
    options = " ".join(
        flow.prompts.fill("callback_window_option", when=w, span=s, key=ru.number(i + 1))
        for i, (w, s) in enumerate(_describe(win, today) for win in windows))
    # Every possible confirmation is rendered while the caller listens to the choices.
    confirmations = [asyncio.create_task(flow.prompts.prepare(
        flow.prompts.fill("callback_accepted", when=day, span=span)))
        for day, span in (_describe(win, today) for win in windows)]
    try:
        key = await flow.choose_text(flow.prompts.fill("callback_windows", options=options),
                                     "".join(str(i + 1) for i in range(len(windows))))
        # No choice: any of the offered windows suits the caller.
        chosen = [windows[int(key) - 1]] if key else windows
        await flow.svc.recorder.sync()  # the callback links to the call's row
        callback_id = await create_callback(
            flow.svc.sessions, phone=number, windows=chosen, source=source,
            policy=DiallingPolicy.from_settings(flow.settings), linkedid=flow.linkedid,
            topic=topic)
        flow.outcome(CallOutcome.CALLBACK_REQUESTED)
        if callback_id is None:
            await flow.play("callback_exists")
            return True
        await flow.agi.stream_file(await confirmations[int(key) - 1 if key else 0])
        return True
    finally:
        for task in confirmations:
            task.cancel()
        await asyncio.gather(*confirmations, return_exceptions=True)
