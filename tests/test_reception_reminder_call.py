"""The reminder chosen on booking is the one that rings (R-P3), through the real Asterisk:
two hours before, by phone — an Originate to the citizen, nothing the day before."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from panoramisk.message import Message
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import Booking, Channel, Citizen, CitizenPhone, Notification, Official
from ivr.notifier import NoticeSender
from ivr.runner import make_ami
from ivr.services import receptions
from ivr.services.receptions import BookingRequest
from ivr.simulate import EventRecorder, is_event, press, wait_until

from .conftest import OPEN_TIME, Stack

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
# A citizen of this test's own, phone only: the session's AMI event history never holds a
# call to this number from another test.
CITIZEN = "79008880525"


@contextlib.asynccontextmanager
async def _sender(stack: Stack) -> AsyncIterator[NoticeSender]:
    listener = make_ami(stack.settings)
    sender = NoticeSender(stack.services, listener)
    await listener.start()
    try:
        await listener.wait_connected(10)
        yield sender
    finally:
        await listener.close()


def _originate_to_citizen(e: Message) -> bool:
    """The citizen's side of a call placed to them (a Local channel's first half)."""
    channel = str(e.get("Channel", ""))
    return (is_event("Newchannel")(e) and channel.startswith(f"Local/{CITIZEN}@citizen-sim")
            and channel.endswith(";1"))


async def test_two_hours_before_by_phone_rings_once_and_1_confirms(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """R-P3: the caller chose «two hours before, by phone»: nothing is sent the day
    before; two hours before, one Originate reaches the citizen, who confirms with 1."""
    services = seeded.services
    async with services.sessions() as s, s.begin():
        citizen = Citizen(surname="Орлова", first_name="Нина",
                          phones=[CitizenPhone(phone=CITIZEN)])
        s.add(citizen)
    async with services.sessions() as s:
        citizen_id = citizen.id
        minister = await s.scalar(select(Official.id).where(Official.kind == "minister"))
        slot = (await receptions.free_slots(s, OPEN_TIME, official_id=minister))[-1]
    booking_id = await receptions.book(
        services.sessions, services.settings, services.calendar,
        BookingRequest(slot_id=slot.id, citizen_id=citizen_id, booked_via="hotline",
                       reminder_channel=Channel.PHONE,
                       remind_day_before=False, remind_two_hours_before=True),
        OPEN_TIME - timedelta(days=3))
    assert await receptions.send_due_reminders(
        services.sessions, services.settings, services.calendar,
        slot.starts_at - timedelta(days=1)) == 0, "no day-before reminder was asked for"
    moment = slot.starts_at - timedelta(hours=2)
    services.clock = lambda: moment
    assert await receptions.send_due_reminders(services.sessions, services.settings,
                                               services.calendar, moment) == 1
    async with _sender(seeded) as sender:
        assert await sender.run_once() == 1, "the reminder call, and nothing else"
        await events.wait_for(_originate_to_citizen, 60, "the Originate reaches the citizen")
        prompt = services.prompts.path("reminder_menu")
        menu = await events.wait_for(
            lambda e: is_event("AGIExecStart")(e) and prompt in str(e.get("Command", ""))
            and f"Local/{CITIZEN}@citizen-sim" in str(e.get("Channel", "")),
            60, "reminder spoken, then 1 / 2 / 3")
        await press(ami, str(menu["Channel"]).replace(";1", ";2"), "1")

        async def confirmed() -> Booking | None:
            async with services.sessions() as s:
                b = await s.get(Booking, booking_id)
                return b if b is not None and b.confirmed_at is not None else None
        await wait_until(confirmed, 30, "booking confirmed by the key 1")
        await events.wait_for(lambda e: is_event("Hangup")(e) and str(e.get(
            "Channel", "")).startswith(f"Local/{CITIZEN}@citizen-sim"), 30, "call ended")
    async with services.sessions() as s:
        sent = list((await s.execute(select(Notification.kind, Notification.channel).where(
            Notification.booking_id == booking_id,
            Notification.kind.like("reminder%")))).tuples())
    assert sent == [("reminder_2h", Channel.PHONE)]
    assert sum(1 for e in list(events.events) if _originate_to_citizen(e)) == 1
