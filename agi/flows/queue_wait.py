"""``agi://…/queue-wait``: between two spells in the queue (see ``[hotline-queue]``).

The caller hears their position and the expected wait (pre-rendered sentences, see
:func:`ivr.phrases.queue_texts`). Once they have waited ``ivr.queue_wait_before_offer``
seconds they are offered a callback (R-H5) instead, once per call: taking it ends the call,
so the caller is never both queued and dialled back; declining it sends them back in.

Arguments after the linkedid: queue, position when the spell ended (QUEUEPOSITION), the
queue's average hold time in seconds (QUEUEHOLDTIME), seconds since the caller first joined.
"""

from __future__ import annotations

import math

from ivr import dialplan
from ivr.db.models import CallbackSource
from ivr.phrases import queue_position, queue_wait

from ..server import CallContext
from . import callback_request
from .common import QUEUE, CallFlow


def _int(value: str | None, default: int = 0) -> int:
    return int(value) if value and value.isdigit() else default


async def run(call: CallContext) -> None:
    flow = CallFlow(call)
    ivr = flow.settings.ivr
    args = [*flow.args, "", "", "", ""]  # args[0], the queue, is for the logs
    position, hold, waited = _int(args[1], 1), _int(args[2]), _int(args[3])
    offered = await flow.agi.get_variable(dialplan.QUEUE_OFFERED) == "1"
    offer = not offered and waited >= ivr.queue_wait_before_offer
    # A caller who knows the offer is coming may answer it during the announcement.
    typed = await _announce(flow, position, hold, waited, "12" if offer else "")
    if offer:
        await flow.agi.set_variable(dialplan.QUEUE_OFFERED, "1")
        key = await flow.choose(flow.prompts.path("queue_offer"), "12", first=typed, tries=1)
        if key == "1":
            flow.record("q1")
            topic = await flow.agi.get_variable(dialplan.TOPIC)
            if await callback_request.run(flow, CallbackSource.IVR_QUEUE, topic or None):
                await flow.farewell_and_hang_up()
                return
        offered = True
    else:
        await flow.play("queue_stay")
    # Back in the queue until the next announcement, or the offer if it is still to come.
    await flow.agi.set_variable(dialplan.QUEUE_WAIT, str(ivr.queue_spell(waited, offered)))
    await flow.agi.set_variable(dialplan.NEXT, QUEUE)


async def _announce(flow: CallFlow, position: int, hold: int, waited: int, keys: str) -> str:
    """Position, then the expected wait once Asterisk knows the queue's average hold time
    (as Asterisk's own estimate: that average less the time already waited, at least a
    minute). A sentence not rendered yet (start-up still rendering) is left out, never
    synthesised while the caller listens."""
    ivr = flow.settings.ivr
    texts = [queue_position(flow.prompts, ivr, position)]
    if hold > 0:
        texts.append(queue_wait(flow.prompts, ivr, math.ceil(max(60, hold - waited) / 60)))
    for text in texts:
        rendered = flow.prompts.cached(text, personal=False)  # rendered by render_prompts
        if rendered is not None:
            key = await flow.agi.stream_file(str(rendered.with_suffix("")), keys)
            if key:
                return key
    return ""
