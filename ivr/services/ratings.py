"""The two-question rating after a conversation (R-H8)."""

from __future__ import annotations

import re
from datetime import datetime

from ..db.models import Quality, RatingStatus
from ..recorder import CallRecorder


def extension_of(interface: str) -> str | None:
    """``PJSIP/1001``, ``Local/1001@operator-sim/n`` → ``1001``."""
    m = re.search(r"/(\d+)", interface or "")
    return m.group(1) if m else None


def rating_status(answer_received: bool | None, quality: Quality | None) -> RatingStatus:
    """What the caller pressed decides: nothing is filled in for them."""
    if answer_received is not None and quality is not None:
        return RatingStatus.COMPLETE
    if answer_received is not None:
        return RatingStatus.PARTIAL
    return RatingStatus.NO_ANSWER


def record_rating(recorder: CallRecorder, *, linkedid: str, interface: str,
                  answer_received: bool | None, quality: Quality | None, at: datetime,
                  from_queue: bool = True) -> None:
    """Record the rating through the call recorder: written in its batch, spooled while
    the database is away, never lost.

    ``interface`` is whom the caller last spoke with as the dialplan knows it: the queue
    member, or the colleague the transfer gate dialled. After an attended transfer the
    caller is still in the queue's conversation, now with the colleague, so for a rating
    ``from_queue`` the colleague of a completed attended transfer takes precedence."""
    recorder.rated(linkedid, extension=extension_of(interface),
                   answer_received=answer_received,
                   quality=quality.value if quality is not None else None,
                   status=rating_status(answer_received, quality).value,
                   from_queue=from_queue, at=at)
