"""Notices to citizens, surveys, the audit log and panel sessions."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base, Timestamped, utcnow
from ._enum import str_enum
from .people import Channel


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    OUTBOX = "outbox"     # post / state portal: waits for the external system


class Notification(Base, Timestamped):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Never sent twice: a notice is identified by what it is about, e.g.
    # "appeal:12:answer:email" or "booking:7:reminder_day:phone".
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    address: Mapped[str] = mapped_column(String(300))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("reception_bookings.id"))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[NotificationStatus] = mapped_column(
        str_enum(NotificationStatus), default=NotificationStatus.PENDING, index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    # A phone notice: how many times the citizen heard it (1 repeats), and what they
    # pressed after a reception reminder ("confirmed" / "cancelled").
    heard_times: Mapped[int] = mapped_column(default=0, server_default="0")
    reply: Mapped[str | None] = mapped_column(String(20))


class PlainLanguageTerm(Base):
    """The editable dictionary of the plain-language check (R-A7, R-X1): words an answer
    should not use, and abbreviations it may use."""

    __tablename__ = "plain_language_terms"
    id: Mapped[int] = mapped_column(primary_key=True)
    term: Mapped[str] = mapped_column(String(200), unique=True)
    # jargon / archaism / rare / negative: flagged; abbreviation_ok: an abbreviation allowed.
    kind: Mapped[str] = mapped_column(String(20))
    hint: Mapped[str] = mapped_column(Text, default="")


class SurveyResponse(Base):
    """A public survey (R-A5, R-P6) reached by a signed single-use link."""

    __tablename__ = "survey_responses"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[str] = mapped_column(String(64), unique=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("reception_bookings.id"))
    answers: Mapped[dict[str, str]] = mapped_column(JSON)
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who viewed or changed what, when: every view of personal data is written here."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))       # view / create / update / delete / …
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(60), default="")
    details: Mapped[str] = mapped_column(Text, default="")
    remote_addr: Mapped[str] = mapped_column(String(60), default="")


class WebSession(Base):
    """Server-side panel sessions: they expire and are revoked on logout."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


# A token made without a stated expiry (`hotline api-token create --days`) lasts this long.
API_TOKEN_DAYS = 365


def _token_expiry() -> datetime:
    return utcnow() + timedelta(days=API_TOKEN_DAYS)


class ApiToken(Base, Timestamped):
    """An integration's key to the API: it acts as its employee, until it expires, is
    revoked, or the employee is disabled."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    expires_at: Mapped[datetime] = mapped_column(default=_token_expiry)
    revoked_at: Mapped[datetime | None]
