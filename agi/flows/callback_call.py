"""``agi://…/callback-staff`` and ``callback-result``: calling a citizen back (R-H5).

The scheduler (:mod:`ivr.dialer`) rings the employee first; when they answer, the dialplan's
``[hotline-callback]`` runs ``callback-staff``: the employee hears the question, the citizen
is dialled and hears who is calling before being put through. ``callback-result`` records
how the attempt ended (done, or another attempt later inside a window); after a
conversation the citizen gets the two-question rating (R-H8) like any caller.
"""

from __future__ import annotations

from datetime import timedelta

from ivr import dialplan
from ivr.db.models import CallOutcome
from ivr.dialling import DiallingPolicy, caller_id
from ivr.services.callbacks import ANSWERED, DIAL_OUTCOMES, attempt_linked, finish_attempt

from ..server import CallContext
from .common import CallFlow


async def staff(call: CallContext) -> None:
    flow = CallFlow(call)
    due = await attempt_linked(flow.svc.sessions, int(flow.args[0]), flow.linkedid)
    policy = DiallingPolicy.from_settings(flow.settings)
    if due is None or policy.refusal(due.phone):
        await flow.agi.set_variable(dialplan.DIAL, "")
        return
    prompts = flow.prompts
    intro = await prompts.prepare(prompts.fill(
        "callback_intro", org=flow.settings.organisation.short_name))
    question = due.question or prompts.texts["callback_no_question"]
    await flow.say(prompts.fill("callback_staff", question=question))
    await flow.agi.set_variable(dialplan.WHISPER, intro)
    await flow.agi.set_variable(dialplan.CALLER_ID, caller_id(flow.settings))
    await flow.agi.set_variable(dialplan.DIAL, flow.settings.asterisk.trunk_dial.format(
        number=policy.decide(due.phone)))


async def result(call: CallContext) -> None:
    flow = CallFlow(call)
    attempt_id, status = int(flow.args[0]), (flow.args[1] if len(flow.args) > 1 else "")
    outcome = DIAL_OUTCOMES.get(status, "failed")
    cfg = flow.settings.callbacks
    finished = await finish_attempt(
        flow.svc.sessions, attempt_id, outcome, flow.now(),
        max_attempts=cfg.max_attempts, retry=timedelta(seconds=cfg.retry_seconds))
    if finished is not None and outcome == ANSWERED:
        # The conversation is a call of its own: rated, counted, on the citizen's card.
        _, phone = finished
        flow.svc.recorder.arrival(flow.linkedid, phone, "callback", flow.now())
        flow.outcome(CallOutcome.ANSWERED)
