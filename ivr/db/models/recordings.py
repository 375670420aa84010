"""Call recordings (issue 30): one file per answering leg, linked to the call and the leg."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base
from ._enum import str_enum


class RecordingKind(StrEnum):
    QUEUE = "queue"                  # the operator who answered from the queue
    TRANSFER = "transfer"            # the colleague a call was transferred to
    CONSULTATION = "consultation"    # an operator's consultation call (attended transfer)
    CALLBACK = "callback"            # a citizen called back


class RecordingStatus(StrEnum):
    RECORDING = "recording"   # MixMonitor is writing it into the spool
    STORED = "stored"         # compressed under recording.directory
    FAILED = "failed"         # the spool file could not be compressed: kept in the spool
    # Nothing was said while bridged (the other side hung up at once): MixMonitor wrote
    # no file at all.
    EMPTY = "empty"
    REMOVED = "removed"       # its retention period passed: the file is gone


class CallRecording(Base):
    __tablename__ = "call_recordings"
    id: Mapped[int] = mapped_column(primary_key=True)
    # The call's linkedid, known from the first moment; call_id once the call's row is there
    # (a callback has no call row: its attempt carries the linkedid).
    linkedid: Mapped[str] = mapped_column(String(150), index=True)
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    leg_id: Mapped[int | None] = mapped_column(ForeignKey("call_legs.id", ondelete="SET NULL"))
    # The recorded channel's uniqueid: one recording per channel, whatever event came twice.
    uniqueid: Mapped[str] = mapped_column(String(150), unique=True)
    channel: Mapped[str] = mapped_column(String(150), default="")
    kind: Mapped[RecordingKind] = mapped_column(str_enum(RecordingKind))
    status: Mapped[RecordingStatus] = mapped_column(
        str_enum(RecordingStatus), default=RecordingStatus.RECORDING, index=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    stored_at: Mapped[datetime | None]
    # Relative to recording.directory: YYYY/MM/DD/<name>.<format>; never a caller's input.
    path: Mapped[str | None] = mapped_column(String(300))
    duration_seconds: Mapped[float | None]
    size_bytes: Mapped[int | None]
    removed_at: Mapped[datetime | None]
