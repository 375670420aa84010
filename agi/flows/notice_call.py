"""``agi://…/notice``: an automated call that speaks a notice (R-A2, R-P3, R-P5, R-P6).

The sender (:mod:`ivr.notifier`) rings the citizen; once they answer, ``[hotline-notice]``
runs this flow with the notification's id. The text is spoken after a short introduction;
each time it has been heard through, the copy is recorded as delivered (``heard_times``).
Then: a notice offers ``1`` to hear it again; a reception reminder takes ``1`` (I will
come), ``2`` (cancel: the slot frees at once), ``3`` (again); the survey after a reception
asks the two questions by DTMF and stores the answers like the web survey does.
A citizen who hangs up before hearing the text through leaves the copy to be retried.
"""

from __future__ import annotations

import contextlib

from ivr.services import notices
from ivr.services.receptions import CANCELLED_VIA_PHONE_REMINDER, cancel, confirm
from ivr.services.surveys import SurveyError, SurveyRef, record

from ..server import CallContext
from .common import CallFlow

MAX_REPEATS = 3
SURVEY_ANSWER = {"1": "yes", "2": "no"}
SURVEY_QUALITY = {"1": "satisfied", "2": "partly", "3": "not_satisfied"}


async def run(call: CallContext) -> None:
    flow = CallFlow(call)
    notice = await notices.phone_notice(flow.svc.sessions, int(flow.args[0]))
    if notice is None:
        await flow.agi.hangup()
        return
    heard = False
    try:
        await flow.agi.answer()
        intro = flow.prompts.fill("notice_intro", org=flow.settings.organisation.short_name)
        text = await flow.prompts.prepare(f"{intro} {notice.body}")
        if notice.kind == "reception_survey":
            await flow.agi.stream_file(text, "")
            heard = True
            await notices.heard(flow.svc.sessions, notice.id, flow.now())
            await _survey(flow, notice)
        elif notice.kind in notices.REMINDER_KINDS:
            heard = await _reminder(flow, notice, text)
        else:
            heard = await _notice(flow, notice, text)
        await flow.play("notice_goodbye")
    finally:
        if not heard:
            await notices.finish(flow.svc.sessions, flow.settings, notice.id, flow.now(),
                                 error="гражданин не дослушал сообщение")
    await flow.agi.hangup()


async def _speak(flow: CallFlow, notice: notices.PhoneNotice, path: str) -> str:
    key = await flow.agi.stream_file(path)
    await notices.heard(flow.svc.sessions, notice.id, flow.now())
    return key


async def _notice(flow: CallFlow, notice: notices.PhoneNotice, path: str) -> bool:
    typed = await _speak(flow, notice, path)
    for _ in range(MAX_REPEATS):
        key = await flow.choose(flow.prompts.path("notice_menu"), "1", first=typed, tries=1)
        if key != "1":
            break
        typed = await _speak(flow, notice, path)
    return True


async def _reminder(flow: CallFlow, notice: notices.PhoneNotice, path: str) -> bool:
    typed = await _speak(flow, notice, path)
    for _ in range(MAX_REPEATS):
        key = await flow.choose(flow.prompts.path("reminder_menu"), "123", first=typed)
        if key == "3":
            typed = await _speak(flow, notice, path)
            continue
        if key in ("1", "2") and notice.booking_id is not None:
            async with flow.svc.sessions() as session, session.begin():
                if key == "1":
                    await confirm(session, notice.booking_id, now=flow.now())
                    await notices.replied(session, notice.id, "confirmed")
                else:
                    await cancel(session, notice.booking_id, via=CANCELLED_VIA_PHONE_REMINDER,
                                 now=flow.now())
                    await notices.replied(session, notice.id, "cancelled")
            await flow.play("reminder_confirmed" if key == "1" else "reminder_cancelled")
        break
    return True


async def _survey(flow: CallFlow, notice: notices.PhoneNotice) -> None:
    answer = await flow.choose(flow.prompts.path("reception_survey_answer"), "12")
    quality = await flow.choose(flow.prompts.path("reception_survey_quality"), "123")
    if answer is None and quality is None:
        return
    answers = {"answer_received": SURVEY_ANSWER.get(answer or "", ""),
               "quality": SURVEY_QUALITY.get(quality or "", ""), "comment": "",
               "via": "phone"}
    with contextlib.suppress(SurveyError):  # answered on an earlier call already
        await record(flow.svc.sessions,
                     SurveyRef(f"notice-{notice.id}", None, notice.booking_id), answers,
                     flow.now())
