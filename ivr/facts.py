"""Call facts — what the IVR, the AMI tracker and the panel record about calls — and the SQL
that writes them. :class:`ivr.recorder.CallRecorder` decides when and where (a batch, the
spool); :func:`apply_facts` writes a batch inside the caller's transaction.

Every statement is ordinary SQLAlchemy Core, run as one ``executemany`` per fact kind on
SQLite and PostgreSQL alike, and idempotent: a fact applied twice changes nothing more
than once, except a menu key, whose repeat shows twice in the path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from .db.base import UTCDateTime
from .db.models import (
    AgentStateChange,
    AuditEntry,
    Call,
    CallLeg,
    CallOutcome,
    CitizenPhone,
    Rating,
    Staff,
    Transfer,
    TransferKind,
    TransferOutcome,
)

PATH_MAX = 200  # calls.ivr_path is String(200)



@dataclass(frozen=True)
class Fact:
    kind: ClassVar[str]
    linkedid: str

    def to_json(self) -> str:
        data = {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in asdict(self).items()}
        return json.dumps({"kind": self.kind, **data}, ensure_ascii=False)


@dataclass(frozen=True)
class Arrival(Fact):
    """The call reached the IVR. Creates the row, or fills an empty caller/dialed number."""

    kind: ClassVar[str] = "arrival"
    caller: str
    dialed: str
    at: datetime


@dataclass(frozen=True)
class MenuKey(Fact):
    """A key (or step mark) in the caller's path; topic and queue when it chose them."""

    kind: ClassVar[str] = "menu"
    key: str
    topic: str | None = None
    queue: str | None = None


@dataclass(frozen=True)
class Step(Fact):
    """The caller reached an IVR step (:class:`IvrStep`); ``delivered``: the IVR is telling
    them what they chose (the hours, their appeal's status …), so a hang-up from here on
    ends the call self-served."""

    kind: ClassVar[str] = "step"
    step: str
    delivered: bool = False


@dataclass(frozen=True)
class Outcome(Fact):
    kind: ClassVar[str] = "outcome"
    outcome: str


@dataclass(frozen=True)
class Ended(Fact):
    """The caller's channel hung up (first report wins)."""

    kind: ClassVar[str] = "ended"
    at: datetime


@dataclass(frozen=True)
class QueueJoined(Fact):
    """The caller entered a queue (the first of its spells sets the time). Creates the
    call's row when the IVR (maybe another process) has not yet, or fills its blank
    caller number: the queue's own report of the arrival."""

    kind: ClassVar[str] = "queue_joined"
    queue: str
    at: datetime
    caller: str = ""


@dataclass(frozen=True)
class LegAnswered(Fact):
    """An operator (queue member ``channel``, phone ``extension``) answered the caller."""

    kind: ClassVar[str] = "leg_answered"
    channel: str
    extension: str | None
    at: datetime


@dataclass(frozen=True)
class LegEnded(Fact):
    """That operator's part ended; ``hangup_by`` "caller", "operator", "transfer", or ""
    when not known (completed from Asterisk's CDR)."""

    kind: ClassVar[str] = "leg_ended"
    channel: str
    talk_seconds: int
    hangup_by: str
    at: datetime


@dataclass(frozen=True)
class Abandoned(Fact):
    """The caller hung up waiting in the queue."""

    kind: ClassVar[str] = "abandoned"
    at: datetime


@dataclass(frozen=True)
class Rated(Fact):
    """The caller's two answers (R-H8), as pressed: None where nothing was. ``extension``
    is whom the dialplan says they last spoke with; ``from_queue``: after Queue(c), where a
    completed attended transfer's colleague is the one who last spoke."""

    kind: ClassVar[str] = "rated"
    extension: str | None
    answer_received: bool | None
    quality: str | None
    status: str
    from_queue: bool
    at: datetime


@dataclass(frozen=True)
class Audited(Fact):
    """A view or change of personal data, for the audit log (``linkedid`` unused: "").
    Written with the next batch, spooled like a call's facts while the database is away:
    a busy panel makes one write every ``interval``, not one per page."""

    kind: ClassVar[str] = "audited"
    at: datetime
    staff_id: int | None
    action: str
    object_type: str
    object_id: str
    details: str
    remote: str


@dataclass(frozen=True)
class Flagged(Fact):
    """The call was recovered from Asterisk's records, or its caller passed agi-fail (a
    fallback). Creates the call's row when nothing else has: a caller the IVR never saw."""

    kind: ClassVar[str] = "flagged"
    recovered: bool
    fallback: bool
    at: datetime
    caller: str = ""


@dataclass(frozen=True)
class AgentStateChanged(Fact):
    """An operator's state in the queues changed (issue 29; ``linkedid`` unused: "")."""

    kind: ClassVar[str] = "agent_state"
    extension: str
    state: str
    reason: str
    at: datetime


FACTS: dict[str, type[Fact]] = {cls.kind: cls for cls in (
    Arrival, QueueJoined, LegAnswered, MenuKey, Step, Outcome, LegEnded, Abandoned, Rated, Ended,
    Audited, Flagged, AgentStateChanged)}


def fact_from_json(line: str | bytes) -> Fact:
    data = json.loads(line)
    cls = FACTS[data.pop("kind")]
    if "at" in data:
        data["at"] = datetime.fromisoformat(data["at"])
    return cls(**data)


# --- statements -----------------------------------------------------------------------
# Each statement takes a fact's fields as parameters named "b_<field>" (a parameter may
# not share a column's name), and finds its rows by the call's linkedid.


def _citizen_of(phone: Any) -> Any:
    return (select(CitizenPhone.citizen_id).where(CitizenPhone.phone == phone)
            .limit(1).scalar_subquery())


_LINKEDID = bindparam("b_linkedid", type_=String)
_CALLER = bindparam("b_caller", type_=String)
_DIALED = bindparam("b_dialed", type_=String)
_AT = bindparam("b_at", type_=UTCDateTime())
_CALL_ID = select(Call.id).where(Call.linkedid == _LINKEDID).scalar_subquery()
_IN_PROGRESS = CallOutcome.IN_PROGRESS.value
# Outcomes the queue's evidence replaces. "Left in the IVR" is one: the IVR sees a hang-up
# also when the AGI watchdog cut a stalled step short and the caller went on to an operator
# through agi-fail, and then the queue knows better.
# (Two comparisons, not IN: an IN list is an expanding parameter, refused by executemany.)
_OPEN = or_(Call.outcome == _IN_PROGRESS, Call.outcome == CallOutcome.IVR_ABANDONED.value)


def _call_new(dialed: Any) -> dict[str, Any]:
    """A call's row, unless there is one (made earlier, in this batch, or by another
    process meanwhile): INSERT … ON CONFLICT DO NOTHING, in each database's terms."""
    def make(insert_: Any) -> Any:
        return insert_(Call).from_select(
            ["linkedid", "caller_number", "dialed_number", "started_at", "citizen_id",
             "ivr_path", "outcome", "created_at", "updated_at"],
            select(_LINKEDID, _CALLER, dialed, _AT, _citizen_of(_CALLER), literal(""),
                   literal(_IN_PROGRESS), _AT, _AT)
            .where(true()),  # SQLite would read ON CONFLICT after no WHERE as a join's ON
        ).on_conflict_do_nothing(index_elements=["linkedid"])

    return {"sqlite": make(sqlite_insert), "postgresql": make(postgresql_insert)}


_ARRIVAL_NEW = _call_new(_DIALED)
_QUEUE_ARRIVAL_NEW = _call_new(literal(""))
# What a row made first by the queue's report (or a repeat) lacks. Only a row with
# something to fill is written: the queue reports an arrival on every spell.
_ARRIVAL_FILL = update(Call).where(
    Call.linkedid == _LINKEDID,
    or_(and_(Call.caller_number == "", _CALLER != ""),
        and_(Call.dialed_number == "", _DIALED != ""),
        and_(Call.citizen_id.is_(None), _citizen_of(_CALLER).is_not(None))),
).values(
    caller_number=func.coalesce(func.nullif(Call.caller_number, ""), _CALLER),
    dialed_number=func.coalesce(func.nullif(Call.dialed_number, ""), _DIALED),
    citizen_id=func.coalesce(Call.citizen_id, _citizen_of(_CALLER)),
)

_KEY = bindparam("b_key", type_=String)
_MENU = update(Call).where(Call.linkedid == _LINKEDID).values(
    ivr_path=func.substr(
        case((Call.ivr_path == "", _KEY), else_=Call.ivr_path + ">" + _KEY), 1, PATH_MAX),
    topic=func.coalesce(bindparam("b_topic", type_=String), Call.topic),
    queue=func.coalesce(bindparam("b_queue", type_=String), Call.queue),
)
_DELIVERED = bindparam("b_delivered", type_=Boolean)
# A step reported after the call's end (the IVR's batch came after the tracker's) still
# turns "left in the IVR" into "self-served" when the information was being told.
_STEP = update(Call).where(Call.linkedid == _LINKEDID).values(
    ivr_step=bindparam("b_step", type_=String),
    self_served=or_(Call.self_served, _DELIVERED),
    outcome=case((and_(_DELIVERED, Call.outcome == CallOutcome.IVR_ABANDONED.value),
                  CallOutcome.SELF_SERVICE.value), else_=Call.outcome),
)
_OUTCOME = update(Call).where(Call.linkedid == _LINKEDID).values(
    outcome=bindparam("b_outcome"))  # the column's type: a value outside the enum is refused
_ENDED = update(Call).where(Call.linkedid == _LINKEDID, Call.ended_at.is_(None)).values(
    ended_at=_AT)
# An attended transfer still pending when the call ends was never completed: no transfer
# (R-H4). Completed ones were marked when Asterisk reported them, before the hang-up.
_PENDING_CANCELLED = update(Transfer).where(
    Transfer.call_id == _CALL_ID, Transfer.outcome == TransferOutcome.PENDING,
).values(outcome=TransferOutcome.CANCELLED, completed_at=_AT)


class seconds_between(FunctionElement[int]):
    """Whole seconds from ``start`` to ``end`` (two timestamps), in each dialect's terms."""

    type = Integer()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    end, start = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(ROUND((julianday({end}) - julianday({start})) * 86400) AS INTEGER)"


@compiles(seconds_between, "postgresql")
def _seconds_postgresql(element: seconds_between, compiler: Any, **kw: Any) -> str:
    end, start = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(ROUND(EXTRACT(EPOCH FROM ({end} - {start}))) AS INTEGER)"


_QUEUE_JOINED = update(Call).where(
    Call.linkedid == _LINKEDID,
    # The first spell's, or a blank to fill (see _ARRIVAL_FILL).
    or_(Call.queue_joined_at.is_(None), Call.queue.is_(None),
        and_(Call.caller_number == "", _CALLER != ""),
        and_(Call.citizen_id.is_(None), _citizen_of(_CALLER).is_not(None))),
).values(
    queue_joined_at=func.coalesce(Call.queue_joined_at, _AT),
    queue=func.coalesce(Call.queue, bindparam("b_queue", type_=String)),
    caller_number=func.coalesce(func.nullif(Call.caller_number, ""), _CALLER),
    citizen_id=func.coalesce(Call.citizen_id, _citizen_of(_CALLER)),
)
_STAFF_BY_EXTENSION = (select(Staff.id).where(Staff.extension == bindparam(
    "b_extension", type_=String)).limit(1).scalar_subquery())
_CHANNEL = bindparam("b_channel", type_=String)
_LEG_NEW = insert(CallLeg).from_select(
    ["call_id", "operator_id", "channel", "answered_at"],
    select(Call.id, _STAFF_BY_EXTENSION, _CHANNEL, _AT).where(
        Call.linkedid == _LINKEDID,
        ~exists().where(CallLeg.call_id == Call.id, CallLeg.channel == _CHANNEL)),
)
_WAITED = func.coalesce(Call.wait_seconds, seconds_between(_AT, Call.queue_joined_at))
_LEG_CALL = update(Call).where(Call.linkedid == _LINKEDID).values(
    answered_at=func.coalesce(Call.answered_at, _AT),
    operator_id=func.coalesce(_STAFF_BY_EXTENSION, Call.operator_id),
    outcome=case((_OPEN, CallOutcome.ANSWERED.value),
                 else_=Call.outcome),
    queue_left_at=func.coalesce(Call.queue_left_at, _AT),
    wait_seconds=_WAITED,
)
# AgentComplete names the member's channel only while it exists: an operator who hung up
# first may be gone when the event is built. Then the call's open leg is the one that ended
# (a call is with one queue member at a time).
_LEG_ENDED = update(CallLeg).where(
    CallLeg.call_id == _CALL_ID, or_(CallLeg.channel == _CHANNEL, _CHANNEL == ""),
    CallLeg.ended_at.is_(None),
).values(ended_at=_AT, talk_seconds=bindparam("b_talk_seconds", type_=Integer))
_HANGUP_BY = update(Call).where(Call.linkedid == _LINKEDID).values(
    hangup_by=func.coalesce(func.nullif(bindparam("b_hangup_by", type_=String), ""),
                            Call.hangup_by))
_ABANDON_VALUES = dict(
    outcome=case((_OPEN, CallOutcome.ABANDONED.value),
                 else_=Call.outcome),
    queue_left_at=func.coalesce(Call.queue_left_at, _AT),
    wait_seconds=_WAITED,
    hangup_by=func.coalesce(Call.hangup_by, "caller"),
)
_ABANDONED = update(Call).where(
    Call.linkedid == _LINKEDID, Call.answered_at.is_(None)).values(**_ABANDON_VALUES)
# The outcome of a call that ends still "in progress", from what the records show: an
# operator answered; it was queued and never answered; the IVR told the caller what they
# chose; or they left the IVR before (ivr_step says where).
FINAL_OUTCOME = case(
    (Call.answered_at.is_not(None), CallOutcome.ANSWERED.value),
    (Call.queue_joined_at.is_not(None), CallOutcome.ABANDONED.value),
    (Call.self_served, CallOutcome.SELF_SERVICE.value),
    else_=CallOutcome.IVR_ABANDONED.value,
)
_ENDED_FINAL = update(Call).where(
    Call.linkedid == _LINKEDID, Call.outcome == _IN_PROGRESS).values(outcome=FINAL_OUTCOME)
# Reconciliation's sweep: calls whose end was recorded but whose outcome never was.
FINISH_ENDED = update(Call).where(
    Call.ended_at.is_not(None), Call.outcome == _IN_PROGRESS).values(outcome=FINAL_OUTCOME)

# A caller who hangs up between two spells in the queue (while queue-wait speaks) leaves
# no QueueCallerAbandon event: queued, never answered, gone is abandoned all the same.
_ENDED_UNANSWERED = update(Call).where(
    Call.linkedid == _LINKEDID, Call.answered_at.is_(None),
    Call.queue_joined_at.is_not(None), _OPEN,
).values(**_ABANDON_VALUES)

_RATED_BY = func.coalesce(
    case((bindparam("b_from_queue", type_=Boolean), select(Transfer.to_staff_id).where(
        Transfer.call_id == _CALL_ID, Transfer.kind == TransferKind.ATTENDED,
        Transfer.outcome == TransferOutcome.COMPLETED,
    ).order_by(Transfer.seq.desc()).limit(1).scalar_subquery())),
    _STAFF_BY_EXTENSION,
)
_STATUS = bindparam("b_status", type_=String)
_RATING_NEW = insert(Rating).from_select(
    ["call_id", "status", "rated_at"],
    select(Call.id, _STATUS, _AT).where(
        Call.linkedid == _LINKEDID, ~exists().where(Rating.call_id == Call.id)),
)
_RATING = update(Rating).where(Rating.call_id == _CALL_ID).values(
    operator_id=_RATED_BY,
    answer_received=bindparam("b_answer_received", type_=Boolean),
    quality=bindparam("b_quality", type_=String),
    status=_STATUS,
)
_RATED_CALL = update(Call).where(Call.linkedid == _LINKEDID).values(
    operator_id=func.coalesce(_RATED_BY, Call.operator_id))

_FLAGGED = update(Call).where(Call.linkedid == _LINKEDID).values(
    recovered=or_(Call.recovered, bindparam("b_recovered", type_=Boolean)),
    fallback=or_(Call.fallback, bindparam("b_fallback", type_=Boolean)),
)

_AUDITED = insert(AuditEntry).values(
    at=_AT, staff_id=bindparam("b_staff_id", type_=Integer),
    action=bindparam("b_action", type_=String),
    object_type=bindparam("b_object_type", type_=String),
    object_id=bindparam("b_object_id", type_=String),
    details=bindparam("b_details", type_=String), remote_addr=bindparam("b_remote", type_=String))

_STATE = bindparam("b_state", type_=String)
_AGENT_STATE = insert(AgentStateChange).from_select(
    ["extension", "staff_id", "state", "reason", "at"],
    select(bindparam("b_extension", type_=String), _STAFF_BY_EXTENSION, _STATE,
           bindparam("b_reason", type_=String), _AT).where(~exists().where(
               AgentStateChange.extension == bindparam("b_extension", type_=String),
               AgentStateChange.at == _AT, AgentStateChange.state == _STATE)),
)

# Each kind's statements, the kinds in the order of a call's life (arrival, queue, operator
# answers, menu, outcome, operator done, abandoned, rated, ended): a call's row exists
# before anything updates it. Kinds that touch the same column do so under conditions
# that make their order irrelevant (an outcome set from the queue only replaces "in
# progress"), so the order within a kind (kept) is the only one that matters.
_STATEMENTS: dict[str, tuple[Any, ...]] = {
    "arrival": (_ARRIVAL_NEW, _ARRIVAL_FILL),
    "queue_joined": (_QUEUE_ARRIVAL_NEW, _QUEUE_JOINED),
    "flagged": (_QUEUE_ARRIVAL_NEW, _FLAGGED),
    "leg_answered": (_LEG_NEW, _LEG_CALL),
    "menu": (_MENU,),
    "step": (_STEP,),
    "outcome": (_OUTCOME,),
    "leg_ended": (_LEG_ENDED, _HANGUP_BY),
    "abandoned": (_ABANDONED,),
    "rated": (_RATING_NEW, _RATING, _RATED_CALL),
    "audited": (_AUDITED,),
    "agent_state": (_AGENT_STATE,),
    "ended": (_ENDED_UNANSWERED, _ENDED, _ENDED_FINAL, _PENDING_CANCELLED),
}


def apply_facts(conn: Connection, facts: Sequence[Fact]) -> None:
    """Write ``facts`` on ``conn`` (inside the caller's transaction): per kind, each of its
    statements as one executemany over the kind's facts, in their order."""
    rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _STATEMENTS}
    for fact in facts:
        rows[fact.kind].append({f"b_{name}": value for name, value in vars(fact).items()})
    for kind, statements in _STATEMENTS.items():
        if not rows[kind]:
            continue
        for statement in statements:
            if isinstance(statement, dict):  # per dialect
                statement = statement[conn.dialect.name]
            conn.execute(statement, rows[kind])
