"""Status of a written appeal, spoken (R-A6, R-A8). Disclosed only to the appeal's own number
or after the last four digits of the phone given in the appeal: no data to strangers."""

from __future__ import annotations

from ivr.phrases import appeal_status_text
from ivr.services.appeals import (
    agency_of,
    executor_of,
    find_appeal,
    linked_to_caller,
    second_factor_ok,
)

from .common import CallFlow


async def run(flow: CallFlow) -> str:
    for attempt in range(2):
        number = await flow.collect("appeal_enter", 12)
        async with flow.svc.sessions() as session:
            appeal = await find_appeal(session, number) if number else None
            if appeal is None:
                await flow.play("appeal_not_found" if number else "invalid")
                continue
            own = await linked_to_caller(session, appeal, flow.caller)
            executor = await executor_of(session, appeal)
            agency = await agency_of(session, appeal)
        if not own:
            last_four = await flow.collect("appeal_second_factor", 4)
            if not second_factor_ok(appeal, last_four):
                await flow.play("appeal_refused")
                return "menu"
        flow.record(f"#{attempt + 1}")
        text = appeal_status_text(flow.prompts, appeal, executor=executor, agency=agency,
                                  tz=flow.calendar.tz)
        return await flow.inform(text, "appeal_menu", keys="10")
    return "operator"
