"""Written appeals (R-A1–R-A10)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base, Timestamped
from ._enum import str_enum
from .people import Channel


class AppealStatus(StrEnum):
    REGISTERED = "registered"
    IN_WORK = "in_work"
    REDIRECTED = "redirected"          # sent to another body (R-A5)
    NOT_CONSIDERED = "not_considered"  # abusive content (R-A4)
    ANSWERED = "answered"
    COMPLETED = "completed"            # recorded by the controlling official (R-A10)


class AppealOutcome(StrEnum):
    """The four answers an appeal may get (R-A6)."""

    RESOLVED = "resolved"
    WILL_RESOLVE_BY = "will_resolve_by"
    CAN_RESOLVE_NO_DATE = "can_resolve_no_date"
    CANNOT_RESOLVE = "cannot_resolve"


class AppealTopic(Base, Timestamped):
    """The ministry's classifier of appeal topics (R-A1): appeals are classified by it, not
    by free text. Administrators add and retire topics; a retired topic stays for the
    appeals that carry it and for the reports."""

    __tablename__ = "appeal_topics"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    title: Mapped[str] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(default=True)


class Appeal(Base, Timestamped):
    __tablename__ = "appeals"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Registration number in the document-flow system (СЭДД «Дело» / РСМЭД); digits only
    # where it is to be typed on a phone keypad.
    reg_number: Mapped[str] = mapped_column(String(50), unique=True)
    registered_on: Mapped[date] = mapped_column(index=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    # The phone given in the appeal: the second factor for the IVR status check.
    contact_phone: Mapped[str] = mapped_column(String(20), default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    # The classifier's topic (R-A1); ``topic`` keeps its title as registered.
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("appeal_topics.id"), index=True)
    topic: Mapped[str] = mapped_column(String(100), default="", index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    materials: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[AppealStatus] = mapped_column(
        str_enum(AppealStatus), default=AppealStatus.REGISTERED, index=True
    )
    urgent: Mapped[bool] = mapped_column(default=False)
    urgency_reason: Mapped[str] = mapped_column(Text, default="")
    abusive: Mapped[bool] = mapped_column(default=False)
    due_date: Mapped[date | None] = mapped_column(index=True)
    executor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    redirected_to_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    redirected_at: Mapped[datetime | None]
    outcome: Mapped[AppealOutcome | None] = mapped_column(str_enum(AppealOutcome))
    outcome_date: Mapped[date | None]
    answer_text: Mapped[str | None] = mapped_column(Text)
    refusal_reasons: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    anonymised_at: Mapped[datetime | None]


class AppealViolation(Base):
    """A violation found while the appeal was considered, with its cause (R-A10), recorded
    by the controlling official on completion. ``kind`` is one of
    :data:`ivr.services.appeals.VIOLATION_KINDS`; ``other`` is described in ``description``."""

    __tablename__ = "appeal_violations"
    id: Mapped[int] = mapped_column(primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id", ondelete="CASCADE"),
                                           index=True)
    kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text)
