"""Automated calls through the real Asterisk (R-A2, R-P3, R-P4, R-P6): a phone notice the
simulated citizen hears twice by pressing 1, a reception reminder where 2 cancels the
booking and frees the slot, and the survey after a reception answered by DTMF."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from panoramisk.message import Message
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import (
    Agency,
    Booking,
    BookingStatus,
    Channel,
    Citizen,
    CitizenPhone,
    Notification,
    NotificationStatus,
    Official,
    ReceptionSlot,
    SurveyResponse,
)
from ivr.notifier import NoticeSender
from ivr.runner import make_ami
from ivr.services import appeals, intake, receptions
from ivr.services.receptions import BookingRequest
from ivr.simulate import EventRecorder, is_event, press, wait_until

from .conftest import OPEN_TIME, Stack

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
CITIZEN = "79007654321"   # the demo's Волков: phone only


@contextlib.asynccontextmanager
async def _sender(stack: Stack) -> AsyncIterator[NoticeSender]:
    """The notice sender with its own AMI link, as the scheduler runs it."""
    listener = make_ami(stack.settings)
    sender = NoticeSender(stack.services, listener)
    await listener.start()
    try:
        await listener.wait_connected(10)
        yield sender
    finally:
        await listener.close()


def _prompt_started(services, name: str, number: str):  # type: ignore[no-untyped-def]
    path = services.prompts.path(name)

    def match(e: Message) -> bool:
        return (is_event("AGIExecStart")(e) and path in str(e.get("Command", ""))
                and f"Local/{number}@citizen-sim" in str(e.get("Channel", "")))
    return match


async def _citizen_id(stack: Stack) -> int:
    async with stack.services.sessions() as s:
        citizen_id = await s.scalar(select(Citizen.id).join(CitizenPhone).where(
            CitizenPhone.phone == CITIZEN))
    assert citizen_id is not None
    return citizen_id


async def test_phone_notice_is_spoken_and_repeated_on_1(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    services = seeded.services
    # One call: no registration notice before the redirection's.
    services.settings = services.settings.model_copy(update={
        "appeals": services.settings.appeals.model_copy(update={"notify_registration": False})})
    citizen_id = await _citizen_id(seeded)
    appeal_id = await intake.register(services.sessions, services.settings, services.calendar,
                                      intake.parse({"reg_number": "9101",
                                                    "registered_on": "2026-11-20",
                                                    "channel": "post",
                                                    "citizen_id": citizen_id}), now=OPEN_TIME)
    async with services.sessions() as s:
        agency_id = await s.scalar(select(Agency.id).limit(1))
    assert agency_id is not None
    await appeals.redirect(services.sessions, services.settings, appeal_id, agency_id,
                           now=OPEN_TIME)
    async with _sender(seeded) as sender:
        assert await sender.run_once() == 1
        menu = _prompt_started(services, "notice_menu", CITIZEN)
        first = await events.wait_for(menu, 60, "the notice spoken, then its menu")
        await press(ami, str(first["Channel"]).replace(";1", ";2"), "1")

        async def menus() -> list[Message]:
            return [e for e in list(events.events) if menu(e)][1:]
        again = (await wait_until(menus, 60, "spoken again, menu again"))[0]
        # Any other key: no third time, the goodbye and the end of the call.
        await press(ami, str(again["Channel"]).replace(";1", ";2"), "2")

        async def delivered() -> Notification | None:
            async with services.sessions() as s:
                n = await s.scalar(select(Notification).where(
                    Notification.appeal_id == appeal_id))
                return n if n is not None and n.heard_times == 2 else None
        notice = await wait_until(delivered, 30, "heard twice")
    assert (notice.channel, notice.status, notice.attempts) == (
        Channel.PHONE, NotificationStatus.SENT, 1)
    assert notice.sent_at == OPEN_TIME
    assert await sender.run_once() == 0, "sent once"


async def test_phone_reminder_2_cancels_the_booking_and_frees_the_slot(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    services = seeded.services
    citizen_id = await _citizen_id(seeded)
    async with services.sessions() as s:
        # The minister's last free slot: weeks after the demo's own booking, whose reminder
        # is past by then.
        minister = await s.scalar(select(Official.id).where(Official.kind == "minister"))
        slot = (await receptions.free_slots(s, OPEN_TIME, official_id=minister))[-1]
    booking_id = await receptions.book(
        services.sessions, services.settings, services.calendar,
        BookingRequest(slot_id=slot.id, citizen_id=citizen_id, booked_via="hotline",
                       reminder_channel=Channel.PHONE), OPEN_TIME - timedelta(days=3))
    moment = slot.starts_at - timedelta(days=1)     # 14:00 local the day before
    services.clock = lambda: moment
    assert await receptions.send_due_reminders(services.sessions, services.settings,
                                               services.calendar, moment) == 1
    async with _sender(seeded) as sender:
        assert await sender.run_once() == 1, "the reminder call, and nothing else"
        menu = await events.wait_for(_prompt_started(services, "reminder_menu", CITIZEN), 60,
                                     "reminder spoken, then 1 / 2 / 3")
        await press(ami, str(menu["Channel"]).replace(";1", ";2"), "2")

        async def cancelled() -> Booking | None:
            async with services.sessions() as s:
                b = await s.get(Booking, booking_id)
                return b if b is not None and b.status == BookingStatus.CANCELLED else None
        booking = await wait_until(cancelled, 30, "booking cancelled by the key 2")
        await events.wait_for(lambda e: is_event("Hangup")(e) and str(e.get(
            "Channel", "")).startswith(f"Local/{CITIZEN}@citizen-sim"), 30, "call ended")
    assert booking.cancelled_via == receptions.CANCELLED_VIA_PHONE_REMINDER
    async with services.sessions() as s:
        reply = await s.scalar(select(Notification.reply).where(
            Notification.booking_id == booking_id, Notification.kind == "reminder_day"))
        free = [x.id for x in await receptions.free_slots(s, moment)]
    assert reply == "cancelled"
    assert slot.id in free, "the slot is free again"
    again = await receptions.book(services.sessions, services.settings, services.calendar,
                                  BookingRequest(slot_id=slot.id, citizen_id=citizen_id),
                                  moment)
    assert again != booking_id


async def test_survey_after_the_reception_by_an_automated_call(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """R-P6: a citizen with no e-mail came to the reception; the survey is a short call,
    answered by DTMF, stored like the web survey's answers."""
    services = seeded.services
    citizen_id = await _citizen_id(seeded)
    async with services.sessions() as s, s.begin():
        official_id = await s.scalar(select(Official.id).where(Official.kind == "minister"))
        assert official_id is not None
        slot = ReceptionSlot(official_id=official_id, starts_at=OPEN_TIME - timedelta(hours=1),
                             ends_at=OPEN_TIME - timedelta(minutes=30))
        s.add(slot)
    booking_id = await receptions.book(
        services.sessions, services.settings, services.calendar,
        BookingRequest(slot_id=slot.id, citizen_id=citizen_id, booked_via="hotline"),
        OPEN_TIME - timedelta(days=1))
    await receptions.mark_attendance(services.sessions, services.settings, services.calendar,
                                     booking_id, attended=True, now=OPEN_TIME)
    async with _sender(seeded) as sender:
        assert await sender.run_once() == 1
        first = await events.wait_for(_prompt_started(
            services, "reception_survey_answer", CITIZEN), 60, "first question")
        citizen = str(first["Channel"]).replace(";1", ";2")
        await press(ami, citizen, "1")
        await events.wait_for(_prompt_started(services, "reception_survey_quality", CITIZEN),
                              30, "second question")
        await press(ami, citizen, "3")

        async def stored() -> SurveyResponse | None:
            async with services.sessions() as s:
                return await s.scalar(select(SurveyResponse).where(
                    SurveyResponse.booking_id == booking_id))
        response = await wait_until(stored, 30, "answers stored")
    assert response.answers == {"answer_received": "yes", "quality": "not_satisfied",
                                "comment": "", "via": "phone"}
    async with services.sessions() as s:
        booking = await s.get(Booking, booking_id)
    assert booking is not None and booking.status == BookingStatus.ATTENDED
