"""Personal reception: officials, their schedules, slots and bookings (R-P1–R-P6)."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..base import Base, Timestamped, partial_index
from ._enum import str_enum
from .people import Channel, Staff


class Official(Base):
    __tablename__ = "officials"
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), unique=True)
    title: Mapped[str] = mapped_column(String(300))  # «Министр», «Заместитель министра», …
    # minister / deputy: on fixed days; department: during the working day (R-P1).
    kind: Mapped[str] = mapped_column(String(20))
    place: Mapped[str] = mapped_column(Text, default="")
    directions: Mapped[str] = mapped_column(Text, default="")
    # An official who no longer receives keeps their history; no new slots are made.
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    staff: Mapped[Staff] = relationship()


class ReceptionSchedule(Base):
    __tablename__ = "reception_schedules"
    id: Mapped[int] = mapped_column(primary_key=True)
    official_id: Mapped[int] = mapped_column(ForeignKey("officials.id", ondelete="CASCADE"))
    weekday: Mapped[int]  # 0 = Monday
    starts: Mapped[time]
    ends: Mapped[time]
    slot_minutes: Mapped[int] = mapped_column(default=30)


class ExceptionKind(StrEnum):
    VACATION = "vacation"      # away for days: no slots
    CANCELLED = "cancelled"    # a reception day called off


class ReceptionException(Base, Timestamped):
    """Days an official does not receive (R-P1): no slots are made for them, and the
    citizens booked on them are told by their channel when the exception is entered."""

    __tablename__ = "reception_exceptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    official_id: Mapped[int] = mapped_column(ForeignKey("officials.id", ondelete="CASCADE"),
                                             index=True)
    kind: Mapped[ExceptionKind] = mapped_column(str_enum(ExceptionKind))
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


class ReceptionSlot(Base):
    __tablename__ = "reception_slots"
    __table_args__ = (UniqueConstraint("official_id", "starts_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    official_id: Mapped[int] = mapped_column(ForeignKey("officials.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime]
    official: Mapped[Official] = relationship()


class BookingStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    ATTENDED = "attended"
    NO_SHOW = "no_show"


class Booking(Base, Timestamped):
    __tablename__ = "reception_bookings"
    __table_args__ = (
        # No double booking: one live booking per slot, enforced by the database itself.
        partial_index("uq_reception_bookings_live_slot", "slot_id",
                      where="status IN ('booked', 'attended')", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("reception_slots.id"), index=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    topic: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[BookingStatus] = mapped_column(
        str_enum(BookingStatus), default=BookingStatus.BOOKED
    )
    booked_via: Mapped[str] = mapped_column(String(30))       # hotline, panel, portal
    booked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    cancelled_at: Mapped[datetime | None]
    cancelled_via: Mapped[str | None] = mapped_column(String(30))  # hotline IVR, panel, e-mail
    # R-P5: the needs that change how notices are sent, then anything else, as told.
    need_hearing: Mapped[bool] = mapped_column(default=False, server_default=false())
    need_sight: Mapped[bool] = mapped_column(default=False, server_default=false())
    need_mobility: Mapped[bool] = mapped_column(default=False, server_default=false())
    accessibility_needs: Mapped[str] = mapped_column(Text, default="")
    reminder_channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    remind_day_before: Mapped[bool] = mapped_column(default=True)
    remind_two_hours_before: Mapped[bool] = mapped_column(default=False)
    reminded_day_before_at: Mapped[datetime | None]
    reminded_two_hours_before_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]    # «1» on a phone reminder
    attendance_marked_at: Mapped[datetime | None]
    slot: Mapped[ReceptionSlot] = relationship()
