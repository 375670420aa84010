"""The routing table: AGI script name → flow. Every script the dialplan calls is here."""

from __future__ import annotations

from collections.abc import Mapping

from .flows import callback_call, ivr_entry, notice_call, queue_wait, rating, transfer
from .server import Flow

ROUTES: Mapping[str, Flow] = {
    "ivr-entry": ivr_entry.run,
    "queue-wait": queue_wait.run,
    "rating": rating.run,
    "transfer": transfer.run,
    "transfer-failed": transfer.failed,
    "callback-staff": callback_call.staff,
    "callback-result": callback_call.result,
    "notice": notice_call.run,
}
