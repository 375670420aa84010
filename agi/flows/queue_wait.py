"""``agi://…/queue-wait``: the caller waited ``ivr.queue_wait_before_offer`` seconds and
left the queue; offer a callback (R-H5) or let them wait on."""

from __future__ import annotations

from ivr import speech_ru as ru
from ivr.db.models import CallbackSource

from .. import dialplan
from ..server import CallContext
from . import callback_request
from .common import QUEUE, CallFlow


async def run(call: CallContext) -> None:
    flow = CallFlow(call)
    queue = flow.args[0] if flow.args else flow.settings.ivr.general_queue
    waiting = await flow.agi.get_variable(f"QUEUE_WAITING_COUNT({queue})")
    ahead = int(waiting) if waiting and waiting.isdigit() else 0
    text = flow.prompts.fill("queue_offer",
                             ahead=ru.count(ahead, "человек", "человека", "человек"))
    key = await flow.choose_text(text, "12", tries=1)
    if key == "1":
        await flow.record("q1")
        topic = await flow.agi.get_variable(dialplan.TOPIC)
        if await callback_request.run(flow, CallbackSource.IVR_QUEUE, topic or None):
            await flow.farewell_and_hang_up()
            return
    # No callback taken: back to the queue, without another offer.
    await flow.agi.set_variable(dialplan.NEXT, QUEUE)
