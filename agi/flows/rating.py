"""``agi://…/rating``: the two questions after a conversation (R-H8).

Stored for the operator who last spoke with the caller (the queue member, the colleague a
transfer reached: see :func:`ivr.services.ratings.record_rating`). What
the caller pressed is what is stored: a hang-up mid-survey leaves a partial or "no answer"
rating, never a made-up one.
"""

from __future__ import annotations

from ivr.db.models import Quality
from ivr.services.ratings import record_rating

from ..server import CallContext
from .common import CallFlow

QUALITY = {"1": Quality.SATISFIED, "2": Quality.PARTLY, "3": Quality.NOT_SATISFIED}


async def run(call: CallContext) -> None:
    flow = CallFlow(call)
    interface = flow.args[0] if flow.args else ""
    # "queue": after Queue(c); "transfer": after the transfer gate's Dial(g).
    from_queue = (flow.args[1] if len(flow.args) > 1 else "queue") != "transfer"
    answer: bool | None = None
    quality: Quality | None = None
    try:
        key = await flow.choose(flow.prompts.path("rating_answer"), "12")
        answer = {"1": True, "2": False}.get(key or "")
        key = await flow.choose(flow.prompts.path("rating_quality"), "123")
        quality = QUALITY.get(key or "")
    finally:
        # Through the recorder, after the call's own facts: never lost, even with the
        # database away; a hang-up mid-survey keeps what was pressed.
        record_rating(flow.svc.recorder, linkedid=flow.linkedid, interface=interface,
                      answer_received=answer, quality=quality, at=flow.now(),
                      from_queue=from_queue)
    await flow.farewell_and_hang_up()
