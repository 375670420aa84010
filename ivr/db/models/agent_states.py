"""Agent states as facts (issue 29): each change of an operator's state in Asterisk's
queues — ready, paused with a reason, on a call, wrap-up, out of the queues — one row.
The operator's and the supervisor's "day" (time in each state, pauses by reason) is read
from these rows: a state lasts until the next row of the same extension."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..base import Base
from ._enum import str_enum


class AgentState(StrEnum):
    READY = "ready"
    PAUSED = "paused"
    ON_CALL = "on_call"
    WRAPUP = "wrapup"
    OFFLINE = "offline"


class AgentStateChange(Base):
    __tablename__ = "agent_states"
    # The same change reported twice (events per queue, a replay) is one row.
    __table_args__ = (UniqueConstraint("extension", "at", "state"),
                      Index("ix_agent_states_staff_at", "staff_id", "at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    extension: Mapped[str] = mapped_column(String(20))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    state: Mapped[AgentState] = mapped_column(str_enum(AgentState))
    reason: Mapped[str] = mapped_column(String(100), default="")
    at: Mapped[datetime]
