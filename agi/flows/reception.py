"""Personal reception by phone (R-P4): the caller's bookings are read out; 1 cancels one."""

from __future__ import annotations

from ivr import speech_ru as ru
from ivr.phrases import when
from ivr.services.receptions import CANCELLED_VIA_IVR, cancel, upcoming_for_phone

from .common import CallFlow


async def run(flow: CallFlow) -> str:
    now = flow.now()
    today = flow.calendar.today(now)
    async with flow.svc.sessions() as session:
        bookings = await upcoming_for_phone(session, flow.caller, now)
    if not bookings:
        await flow.play("reception_none")
    for booking in bookings:
        starts = flow.calendar.local(booking.slot.starts_at)
        official = booking.slot.official
        text = flow.prompts.fill(
            "reception_booking", when=when(starts.date(), today),
            time=ru.at_clock(starts.time()),
            official=f"{official.title} {official.staff.initials_name}")
        key = await flow.choose_text(text, "120")
        if key == "0":
            return "operator"
        if key == "1":
            async with flow.svc.sessions() as session, session.begin():
                done = await cancel(session, booking.id, via=CANCELLED_VIA_IVR, now=now)
            flow.record("1")
            if done:
                await flow.play("reception_cancelled")
            return "done"
        if key is None:
            return "done"
    key = await flow.choose(flow.prompts.path("reception_menu"), "0", tries=1)
    return "operator" if key == "0" else "done"
