"""Reception bookings as the IVR handles them: read out and cancel (R-P4)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..db.models import Booking, BookingStatus, CitizenPhone, Official, ReceptionSlot
from ..phone import normalise

CANCELLED_VIA_IVR = "hotline IVR"


async def upcoming_for_phone(session: AsyncSession, phone: str, now: datetime) -> list[Booking]:
    phone = normalise(phone)
    if not phone:
        return []
    rows = await session.scalars(
        select(Booking)
        .join(ReceptionSlot, Booking.slot_id == ReceptionSlot.id)
        .join(CitizenPhone, CitizenPhone.citizen_id == Booking.citizen_id)
        .where(CitizenPhone.phone == phone, Booking.status == BookingStatus.BOOKED,
               ReceptionSlot.starts_at > now)
        .order_by(ReceptionSlot.starts_at)
        .options(selectinload(Booking.slot).selectinload(ReceptionSlot.official)
                 .selectinload(Official.staff)))
    return list(rows)


async def cancel(session: AsyncSession, booking_id: int, *, via: str, now: datetime) -> bool:
    booking = await session.get(Booking, booking_id, with_for_update=True)
    if booking is None or booking.status != BookingStatus.BOOKED:
        return False
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = now
    booking.cancelled_via = via
    return True
