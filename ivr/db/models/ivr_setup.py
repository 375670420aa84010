"""What the administrator sets up for the IVR (issue 28): queues, the topic menu, which
operator serves which queue (skills), and the working calendar's own days."""

from __future__ import annotations

from datetime import date, time

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..base import Base


class IvrQueue(Base):
    """An Asterisk queue: ``name`` is Asterisk's, ``title`` is what people read."""

    __tablename__ = "ivr_queues"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    strategy: Mapped[str] = mapped_column(String(20))
    service_level_seconds: Mapped[int]


class MenuTopic(Base):
    """One choice of the IVR menu (R-H1); the menu prompt is spoken from these."""

    __tablename__ = "menu_topics"
    id: Mapped[int] = mapped_column(primary_key=True)
    digit: Mapped[str] = mapped_column(String(1), unique=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))
    queue_id: Mapped[int] = mapped_column(ForeignKey("ivr_queues.id"), index=True)
    agency: Mapped[str] = mapped_column(String(300), default="")
    queue: Mapped[IvrQueue] = relationship(lazy="raise")


class QueueSkill(Base):
    """An operator serves a queue; a higher penalty is offered calls after the lower ones."""

    __tablename__ = "queue_skills"
    __table_args__ = (UniqueConstraint("staff_id", "queue_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    queue_id: Mapped[int] = mapped_column(ForeignKey("ivr_queues.id"), index=True)
    penalty: Mapped[int] = mapped_column(default=0)


class CalendarDay(Base):
    """A day the federal calendar does not know: a regional holiday, a one-off closure, or
    a shortened day (``closes_at``)."""

    __tablename__ = "calendar_days"
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    closes_at: Mapped[time | None]
    note: Mapped[str] = mapped_column(String(200), default="")
