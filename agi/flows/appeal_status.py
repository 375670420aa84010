"""Status of a written appeal, spoken (R-A6, R-A8), only to the applicant: the appeal's
number and the last four digits of the phone given in it (see verification)."""

from __future__ import annotations

from ivr.db.models import Appeal, IvrStep
from ivr.phrases import appeal_status_text
from ivr.services.appeals import agency_of, executor_of, verified_appeal

from .common import CallFlow
from .verification import NOT_VERIFIED, Check, verify

# Registration numbers typed on the keypad: digits only, up to twelve.
APPEAL = Check[Appeal](
    object_type="appeal", number_prompt="appeal_enter", number_digits=12,
    digits_prompt="appeal_second_factor", failed_prompt="appeal_not_verified",
    lookup=verified_appeal)


async def run(flow: CallFlow) -> str:
    flow.step(IvrStep.APPEAL_STATUS)
    appeal = await verify(flow, APPEAL)
    if appeal is None:
        return NOT_VERIFIED
    async with flow.svc.sessions() as session:
        executor = await executor_of(session, appeal)
        agency = await agency_of(session, appeal)
    text = appeal_status_text(flow.prompts, appeal, executor=executor, agency=agency,
                              tz=flow.calendar.tz)
    flow.step(IvrStep.APPEAL_STATUS, delivered=True)
    return await flow.inform(text, "appeal_menu", keys="10")
