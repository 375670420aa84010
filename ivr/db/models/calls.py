"""Hotline calls with their operator legs, transfers, ratings, and callbacks."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..base import Base, Timestamped, partial_index, utcnow
from ._enum import str_enum


class CallOutcome(StrEnum):
    IN_PROGRESS = "in_progress"
    SELF_SERVICE = "self_service"      # finished in the IVR (hours, appeal status, cancel)
    ANSWERED = "answered"              # an operator spoke with the caller
    ABANDONED = "abandoned"            # hung up waiting in the queue
    IVR_ABANDONED = "ivr_abandoned"    # hung up in the IVR before what they chose was told
    CALLBACK_REQUESTED = "callback_requested"
    AFTER_HOURS = "after_hours"
    FAILED = "failed"


class IvrStep(StrEnum):
    """Where in the IVR the caller is (calls.ivr_step): where they left, once ended."""

    GREETING = "greeting"
    MENU = "menu"
    HOURS = "hours"
    AGENCY = "agency"
    APPEAL_STATUS = "appeal_status"
    RECEPTION = "reception"
    CALLBACK_REQUEST = "callback_request"


class JournalOutcome(StrEnum):
    """What the operator did with the question (R-H6, R-H7)."""

    ANSWERED = "answered"
    TRANSFERRED = "transferred"
    CALLBACK = "callback"
    REFERRED_TO_AGENCY = "referred_to_agency"
    NOT_IN_COMPETENCE = "not_in_competence"


class Call(Base, Timestamped):
    __tablename__ = "calls"
    # A caller's latest calls (the citizen's card on every screen-pop). The operator and
    # the citizen are unknown when a call comes (NULL until answered, or for a number no
    # citizen gave): their indexes leave NULL out, which no query looks up, and a new
    # call's row is two index pages fewer to write (0008).
    __table_args__ = (
        Index("ix_calls_caller_started", "caller_number", "started_at"),
        partial_index("ix_calls_citizen_id", "citizen_id", where="citizen_id IS NOT NULL"),
        partial_index("ix_calls_operator_id", "operator_id", where="operator_id IS NOT NULL"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # Asterisk's linkedid, unique across servers thanks to asterisk.conf systemname.
    linkedid: Mapped[str] = mapped_column(String(150), unique=True)
    caller_number: Mapped[str] = mapped_column(String(40))  # ix_calls_caller_started
    dialed_number: Mapped[str] = mapped_column(String(40), default="")
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # Keys pressed through the menus, e.g. "2" or "5>1"; and the topic code chosen. No
    # index on topic: reports take the first operator's journal topic first
    # (coalesce(<journal topic>, topic)), which an index on topic cannot serve.
    ivr_path: Mapped[str] = mapped_column(String(200), default="")
    # The IVR step the caller reached last (IvrStep), and whether the IVR told them what
    # they chose: a caller who hangs up in the IVR ends self-served or IVR-abandoned.
    ivr_step: Mapped[str | None] = mapped_column(String(30))
    self_served: Mapped[bool] = mapped_column(default=False, server_default=false())
    topic: Mapped[str | None] = mapped_column(String(50))
    queue: Mapped[str | None] = mapped_column(String(80))
    queue_joined_at: Mapped[datetime | None]
    queue_left_at: Mapped[datetime | None]
    wait_seconds: Mapped[int | None]
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    outcome: Mapped[CallOutcome] = mapped_column(
        str_enum(CallOutcome), default=CallOutcome.IN_PROGRESS
    )
    hangup_by: Mapped[str | None] = mapped_column(String(20))  # caller / operator / system
    # Recovered: completed from Asterisk's CDR and queue_log, the service having missed it
    # (down, killed); fallback: the caller passed agi-fail (our server failed them).
    recovered: Mapped[bool] = mapped_column(default=False, server_default=false())
    fallback: Mapped[bool] = mapped_column(default=False, server_default=false())
    legs: Mapped[list[CallLeg]] = relationship(back_populates="call", order_by="CallLeg.id")
    transfers: Mapped[list[Transfer]] = relationship(
        back_populates="call", order_by="Transfer.seq"
    )
    rating: Mapped[Rating | None] = relationship(back_populates="call")
    journal: Mapped[list[JournalEntry]] = relationship(
        back_populates="call", order_by="JournalEntry.id")


class CallLeg(Base):
    """One operator's part of a call: who answered, when, how long they talked."""

    __tablename__ = "call_legs"
    __table_args__ = (UniqueConstraint("call_id", "channel"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    channel: Mapped[str] = mapped_column(String(150))
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    talk_seconds: Mapped[int | None]
    call: Mapped[Call] = relationship(back_populates="legs")


class JournalEntry(Base):
    """One operator's entry in the question journal (R-H6): every operator who spoke on the
    call writes their own, so a transfer adds the colleague's entry and never overwrites."""

    __tablename__ = "journal_entries"
    __table_args__ = (UniqueConstraint("call_id", "operator_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    operator_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    topic: Mapped[str] = mapped_column(String(50))
    question: Mapped[str | None] = mapped_column(Text)     # NULL once retention clears it
    answer: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[JournalOutcome] = mapped_column(str_enum(JournalOutcome))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("kb_articles.id"))
    written_at: Mapped[datetime] = mapped_column(default=utcnow)
    call: Mapped[Call] = relationship(back_populates="journal")


class TransferKind(StrEnum):
    BLIND = "blind"
    ATTENDED = "attended"
    PANEL = "panel"


class TransferOutcome(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    REFUSED = "refused"        # the third transfer (R-H4)
    FAILED = "failed"
    CANCELLED = "cancelled"    # an attended consultation not completed: counts as none


class Transfer(Base):
    __tablename__ = "transfers"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int]
    kind: Mapped[TransferKind] = mapped_column(str_enum(TransferKind))
    from_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    to_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    to_target: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    outcome: Mapped[TransferOutcome] = mapped_column(
        str_enum(TransferOutcome), default=TransferOutcome.PENDING
    )
    call: Mapped[Call] = relationship(back_populates="transfers")


class Quality(StrEnum):
    """«Оцените качество работы консультанта» (R-H8)."""

    SATISFIED = "satisfied"
    PARTLY = "partly"
    NOT_SATISFIED = "not_satisfied"


class RatingStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"        # the caller hung up after the first question
    NO_ANSWER = "no_answer"    # the survey started but no key was pressed


class Rating(Base):
    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    # The operator who last spoke with the caller.
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    answer_received: Mapped[bool | None]
    quality: Mapped[Quality | None] = mapped_column(str_enum(Quality))
    status: Mapped[RatingStatus] = mapped_column(str_enum(RatingStatus))
    rated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    call: Mapped[Call] = relationship(back_populates="rating")


class CallbackStatus(StrEnum):
    WAITING_INFO = "waiting_info"
    READY = "ready"
    CALLING = "calling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


OPEN_CALLBACK = "status IN ('waiting_info', 'ready', 'calling')"


class CallbackSource(StrEnum):
    IVR_AFTER_HOURS = "ivr_after_hours"
    IVR_QUEUE = "ivr_queue"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"


class Callback(Base, Timestamped):
    """A promised call back to a citizen (R-H5)."""

    __tablename__ = "callbacks"
    __table_args__ = (
        # At most one open callback per number and question: never doubled.
        partial_index("uq_callbacks_open_phone_question", "phone", "question_key",
                      where=OPEN_CALLBACK, unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    source: Mapped[CallbackSource] = mapped_column(str_enum(CallbackSource))
    question: Mapped[str] = mapped_column(Text, default="")
    # Normalised question text (lower case, single spaces) for the one-open-callback rule.
    question_key: Mapped[str] = mapped_column(String(200), default="")
    topic: Mapped[str | None] = mapped_column(String(50))
    promised_date: Mapped[date | None]
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    status: Mapped[CallbackStatus] = mapped_column(
        str_enum(CallbackStatus), default=CallbackStatus.READY, index=True
    )
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    answer_text: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    windows: Mapped[list[CallbackWindow]] = relationship(
        back_populates="callback", cascade="all, delete-orphan", order_by="CallbackWindow.starts_at"
    )
    attempts: Mapped[list[CallbackAttempt]] = relationship(
        back_populates="callback", cascade="all, delete-orphan", order_by="CallbackAttempt.id"
    )


class CallbackWindow(Base):
    __tablename__ = "callback_windows"
    id: Mapped[int] = mapped_column(primary_key=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    callback: Mapped[Callback] = relationship(back_populates="windows")


class CallbackAttempt(Base):
    __tablename__ = "callback_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    # answered / busy / no_answer / failed / staff_no_answer
    outcome: Mapped[str | None] = mapped_column(String(30))
    linkedid: Mapped[str | None] = mapped_column(String(150))
    callback: Mapped[Callback] = relationship(back_populates="attempts")


class ReconcileMark(Base):
    """How far Asterisk's CDR has been read for calls unknown to the records: the next
    reconciliation imports the calls that ended after ``at`` (one row, ``name`` "cdr")."""

    __tablename__ = "reconcile_marks"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime]
