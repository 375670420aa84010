"""Personal reception by phone (R-P4): once the caller proved a booking is theirs (its
number and the last four digits of their phone, see verification), their bookings are read
out; 1 cancels one."""

from __future__ import annotations

from ivr.db.models import Booking, IvrStep
from ivr.phrases import booking_text
from ivr.services.receptions import (
    BOOKING_NUMBER_DIGITS,
    CANCELLED_VIA_IVR,
    cancel,
    upcoming_for_citizen,
    verified_booking,
)
from ivr.services.verification import audit_by_phone

from .common import CallFlow
from .verification import NOT_VERIFIED, Check, verify

BOOKING = Check[Booking](
    object_type="booking", number_prompt="reception_enter",
    number_digits=BOOKING_NUMBER_DIGITS, digits_prompt="reception_second_factor",
    failed_prompt="reception_not_verified", lookup=verified_booking)


async def run(flow: CallFlow) -> str:
    flow.step(IvrStep.RECEPTION)
    named = await verify(flow, BOOKING)
    if named is None:
        return NOT_VERIFIED
    now = flow.now()
    async with flow.svc.sessions() as session:
        bookings = await upcoming_for_citizen(session, named.citizen_id, now)
    flow.step(IvrStep.RECEPTION, delivered=True)  # their bookings, or that there are none
    if not bookings:
        await flow.play("reception_none")
    for booking in bookings:
        key = await flow.choose_text(booking_text(flow.prompts, booking, flow.calendar, now),
                                     "120")
        if key == "0":
            return "operator"
        if key == "1":
            return await _cancel(flow, booking)
        if key is None:
            return "done"
    key = await flow.choose(flow.prompts.path("reception_menu"), "0", tries=1)
    return "operator" if key == "0" else "done"


async def _cancel(flow: CallFlow, booking: Booking) -> str:
    async with flow.svc.sessions() as session, session.begin():
        done = await cancel(session, booking.id, via=CANCELLED_VIA_IVR, now=flow.now())
    flow.record("1")
    if done:
        audit_by_phone(flow.svc, caller=flow.caller, action="cancel", object_type="booking",
                       object_id=str(booking.id),
                       details=f"Запись отменена по телефону горячей линии. Звонок "
                               f"{flow.linkedid}.")
        await flow.play("reception_cancelled")
    return "done"
