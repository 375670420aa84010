"""The call recorder: facts about calls are queued in memory and written in batches.

A flow or an AMI handler never waits for the database: :meth:`CallRecorder.put` appends a
fact and returns. One writer task commits what has gathered, every ``interval`` seconds or
``batch`` facts, in one transaction of a few ``executemany`` statements (a row committed on
its own costs a round trip and an fsync; a batch shares them).

Nothing recorded is lost when the database is away: a batch that fails to commit is
appended to a spool file on disk (JSON lines), and every later fact goes behind it, so the
order is kept. The writer retries with back-off and, once the database answers, replays the
spool, then empties it. Every fact is written so that applying it twice changes nothing
more than applying it once, except a menu key, whose repeat would show twice in the path —
possible only if the process dies between a replay's commit and the spool's removal.

Code that reads a call's row right after recording (a callback that links to the call, the
rating) first awaits :meth:`CallRecorder.sync`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import math
import operator
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Union

from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Integer,
    String,
    and_,
    bindparam,
    case,
    column,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    table,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import ExternallyTraversible

from .db.base import UTCDateTime
from .db.models import (
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
from .phone import normalise

log = logging.getLogger(__name__)

PATH_MAX = 200  # calls.ivr_path is String(200)


def _unavailable_error(exc: Exception) -> bool:
    """True when the database cannot be reached (or went away mid-write): worth retrying
    as it is. False when the facts themselves were refused — a constraint, a value the
    driver or SQLAlchemy rejects before sending: the same batch would fail again."""
    if isinstance(exc, (IntegrityError, DataError, sqlite3.IntegrityError, sqlite3.DataError)):
        return False
    # sqlite3's own: the recorder's SQLite connection is used bare (see _DriverConnection).
    return isinstance(exc, (OSError, DBAPIError, sqlite3.Error))


# --- facts --------------------------------------------------------------------------------


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


FACTS: dict[str, type[Fact]] = {cls.kind: cls for cls in (
    Arrival, QueueJoined, LegAnswered, MenuKey, Outcome, LegEnded, Abandoned, Rated, Ended,
    Audited)}


def fact_from_json(line: str) -> Fact:
    data = json.loads(line)
    cls = FACTS[data.pop("kind")]
    if "at" in data:
        data["at"] = datetime.fromisoformat(data["at"])
    return cls(**data)


# --- statements ---------------------------------------------------------------------------


def _citizen_of(phone: Any) -> Any:
    return (select(CitizenPhone.citizen_id).where(CitizenPhone.phone == phone)
            .limit(1).scalar_subquery())


# Arrival, as two statements: insert the rows not there, then fill what a row created
# first by the AMI listener lacks.
_LINKEDID = bindparam("b_linkedid", type_=String)
_CALLER = bindparam("b_caller", type_=String)
_AT = bindparam("b_at", type_=UTCDateTime())
_DIALED = bindparam("b_dialed", type_=String)
_ARRIVAL_FILL = update(Call).where(
    Call.linkedid == _LINKEDID,
    # Only a row with something to fill is written: the queue reports an arrival on every
    # spell, and a row rewritten for nothing costs a new row version on PostgreSQL.
    or_(and_(Call.caller_number == "", _CALLER != ""),
        and_(Call.dialed_number == "", _DIALED != ""),
        and_(Call.citizen_id.is_(None), _citizen_of(_CALLER).is_not(None))),
).values(
    caller_number=func.coalesce(func.nullif(Call.caller_number, ""), _CALLER),
    dialed_number=func.coalesce(func.nullif(Call.dialed_number, ""), _DIALED),
    citizen_id=func.coalesce(Call.citizen_id, _citizen_of(_CALLER)),
)


class _PerDialect:
    """A statement written in each database's own terms (INSERT … ON CONFLICT)."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self._made = {"sqlite": make(sqlite_insert), "postgresql": make(postgresql_insert)}

    def __getitem__(self, dialect: str) -> Any:
        return self._made[dialect]


def _call_new(dialed: Any, path: Any, topic: Any, queue: Any) -> _PerDialect:
    """A call's row, unless there is one: a row already in the database, or made earlier in
    the batch, is left as it is (ON CONFLICT DO NOTHING; a row another process inserts
    meanwhile too, where a NOT EXISTS test failed the batch). On SQLite a test of the
    table being inserted into made it copy every selected row to a temporary table first:
    a fifth of the insert."""
    def make(insert_: Any) -> Any:
        return insert_(Call).from_select(
            ["linkedid", "caller_number", "dialed_number", "started_at", "citizen_id",
             "ivr_path", "topic", "queue", "outcome", "created_at", "updated_at"],
            select(_LINKEDID, _CALLER, dialed, _AT, _citizen_of(_CALLER),
                   path, topic, queue, literal(CallOutcome.IN_PROGRESS.value), _AT, _AT)
            .where(true()),  # SQLite would read ON CONFLICT after no WHERE as a join's ON
        ).on_conflict_do_nothing(index_elements=["linkedid"])

    return _PerDialect(make)


# An arrival's row may come with the caller's menu keys of the same batch already in it
# (see _fold_menus): its ivr_path, topic, queue are "", None, None otherwise.
_ARRIVAL_NEW = _call_new(_DIALED, bindparam("b_ivr_path", type_=String),
                         bindparam("b_topic", type_=String), bindparam("b_queue", type_=String))
_QUEUE_ARRIVAL_NEW = _call_new(literal(""), literal(""), literal(None, String),
                               literal(None, String))


_KEY = bindparam("b_key", type_=String)
_MENU = (
    update(Call).where(Call.linkedid == bindparam("b_linkedid")).values(
        ivr_path=func.substr(
            case((Call.ivr_path == "", _KEY), else_=Call.ivr_path + ">" + _KEY), 1, PATH_MAX),
        topic=func.coalesce(bindparam("b_topic", type_=String), Call.topic),
        queue=func.coalesce(bindparam("b_queue", type_=String), Call.queue),
    )
)
_OUTCOME = (update(Call).where(Call.linkedid == bindparam("b_linkedid"))
            .values(outcome=bindparam("b_outcome")))
_ENDED = (update(Call).where(Call.linkedid == bindparam("b_linkedid"), Call.ended_at.is_(None))
          .values(ended_at=bindparam("b_at")))
_CALL_ID = select(Call.id).where(Call.linkedid == bindparam("b_linkedid")).scalar_subquery()
# An attended transfer still pending when the call ends was never completed: no transfer
# (R-H4). Completed ones were marked when Asterisk reported them, before the hang-up.
_PENDING_CANCELLED = (
    update(Transfer).where(
        Transfer.call_id == _CALL_ID, Transfer.outcome == TransferOutcome.PENDING,
    ).values(outcome=TransferOutcome.CANCELLED, completed_at=bindparam("b_at"))
)


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


_IN_PROGRESS = CallOutcome.IN_PROGRESS.value
_B_AT = bindparam("b_at", type_=UTCDateTime())
_QUEUE_JOINED = update(Call).where(
    Call.linkedid == _LINKEDID,
    # The first spell's, or a blank to fill (see _ARRIVAL_FILL).
    or_(Call.queue_joined_at.is_(None), Call.queue.is_(None),
        and_(Call.caller_number == "", _CALLER != ""),
        and_(Call.citizen_id.is_(None), _citizen_of(_CALLER).is_not(None))),
).values(
    queue_joined_at=func.coalesce(Call.queue_joined_at, _B_AT),
    queue=func.coalesce(Call.queue, bindparam("b_queue", type_=String)),
    caller_number=func.coalesce(func.nullif(Call.caller_number, ""), _CALLER),
    citizen_id=func.coalesce(Call.citizen_id, _citizen_of(_CALLER)),
)
_STAFF_BY_EXTENSION = (select(Staff.id).where(Staff.extension == bindparam(
    "b_extension", type_=String)).limit(1).scalar_subquery())
_LEG_NEW = insert(CallLeg).from_select(
    ["call_id", "operator_id", "channel", "answered_at"],
    select(Call.id, _STAFF_BY_EXTENSION, bindparam("b_channel", type_=String), _B_AT)
    .where(Call.linkedid == bindparam("b_linkedid"), ~exists().where(
        CallLeg.call_id == Call.id, CallLeg.channel == bindparam("b_channel"))),
)
_LEG_CALL = update(Call).where(Call.linkedid == bindparam("b_linkedid")).values(
    answered_at=func.coalesce(Call.answered_at, _B_AT),
    operator_id=func.coalesce(_STAFF_BY_EXTENSION, Call.operator_id),
    outcome=case((Call.outcome == _IN_PROGRESS, CallOutcome.ANSWERED.value),
                 else_=Call.outcome),
    queue_left_at=func.coalesce(Call.queue_left_at, _B_AT),
    wait_seconds=func.coalesce(Call.wait_seconds, seconds_between(_B_AT, Call.queue_joined_at)),
)
# AgentComplete names the member's channel only while it exists: an operator who hung up
# first may be gone when the event is built. Then the call's open leg is the one that ended
# (a call is with one queue member at a time).
_B_CHANNEL = bindparam("b_channel", type_=String)
_LEG_ENDED = update(CallLeg).where(
    CallLeg.call_id == _CALL_ID, or_(CallLeg.channel == _B_CHANNEL, _B_CHANNEL == ""),
    CallLeg.ended_at.is_(None),
).values(ended_at=_B_AT, talk_seconds=bindparam("b_talk_seconds"))
_HANGUP_BY = (update(Call).where(Call.linkedid == bindparam("b_linkedid"))
              .values(hangup_by=func.coalesce(func.nullif(bindparam("b_hangup_by", type_=String),
                                                          ""), Call.hangup_by)))
_ABANDON_VALUES = dict(
    outcome=case((Call.outcome == _IN_PROGRESS, CallOutcome.ABANDONED.value),
                 else_=Call.outcome),
    queue_left_at=func.coalesce(Call.queue_left_at, _B_AT),
    wait_seconds=func.coalesce(Call.wait_seconds, seconds_between(_B_AT, Call.queue_joined_at)),
    hangup_by=func.coalesce(Call.hangup_by, "caller"),
)
_ABANDONED = update(Call).where(
    Call.linkedid == bindparam("b_linkedid"), Call.answered_at.is_(None),
).values(**_ABANDON_VALUES)
# A caller who hangs up between two spells in the queue (while queue-wait speaks) leaves
# no QueueCallerAbandon event: queued, never answered, gone is abandoned all the same.
_ENDED_UNANSWERED = update(Call).where(
    Call.linkedid == bindparam("b_linkedid"), Call.answered_at.is_(None),
    Call.queue_joined_at.is_not(None), Call.outcome == _IN_PROGRESS,
).values(**_ABANDON_VALUES)


_RATED_BY = func.coalesce(
    case((bindparam("b_from_queue", type_=Boolean), select(Transfer.to_staff_id).where(
        Transfer.call_id == _CALL_ID, Transfer.kind == TransferKind.ATTENDED,
        Transfer.outcome == TransferOutcome.COMPLETED,
    ).order_by(Transfer.seq.desc()).limit(1).scalar_subquery())),
    _STAFF_BY_EXTENSION,
)
_RATING_NEW = insert(Rating).from_select(
    ["call_id", "status", "rated_at"],
    select(Call.id, bindparam("b_status", type_=String), _B_AT).where(
        Call.linkedid == bindparam("b_linkedid"),
        ~exists().where(Rating.call_id == Call.id)),
)
_RATING = update(Rating).where(Rating.call_id == _CALL_ID).values(
    operator_id=_RATED_BY,
    answer_received=bindparam("b_answer_received", type_=Boolean),
    quality=bindparam("b_quality", type_=String),
    status=bindparam("b_status", type_=String),
)
_RATED_CALL = update(Call).where(Call.linkedid == bindparam("b_linkedid")).values(
    operator_id=func.coalesce(_RATED_BY, Call.operator_id))


_AUDITED = insert(AuditEntry).values(
    at=_AT, staff_id=bindparam("b_staff_id", type_=Integer),
    action=bindparam("b_action", type_=String), object_type=bindparam("b_object_type"),
    object_id=bindparam("b_object_id"), details=bindparam("b_details"),
    remote_addr=bindparam("b_remote"))


_Executor = Union[Connection, "_DriverConnection"]  # what the statements run on


class _Compiled:
    """A statement compiled once per dialect and run by the driver's own ``executemany``.

    SQLAlchemy's executemany processes every bound value of every row in Python (a
    timestamp used three times in a statement is converted three times); at thousands of
    facts a second that was most of the recorder's cost. Here the SQL text and the order of
    its parameters come from SQLAlchemy's compiler, the constant parameters (literals,
    LIMIT, enum values) are processed once, a ``Timestamped`` column's ``onupdate`` is
    taken once per batch, and each fact's own values are converted once (see
    :func:`_params`). Rows then go to ``Connection.exec_driver_sql`` as tuples.
    """

    def __init__(self, statement: Any, dialect: Any, setwise: bool = False) -> None:
        self.arrays: tuple[str, ...] = ()
        self.values = False  # SQLite, set-wise: the batch is a VALUES list (see _run)
        self._texts: dict[int, str] = {}  # its SQL by the batch's length
        compiled = None
        if setwise:
            rewritten, arrays = _setwise(statement, dialect.name)
            compiled = rewritten.compile(dialect=dialect)
            # A subquery nested in another (the rating's "who last spoke") does not
            # correlate to the batch's table but joins it anew: row by row for those.
            # SQLite's VALUES list goes where the FROM names the batch, and its parameters
            # among the statement's own by their place in the text: a quoted literal, which
            # could hold a "?", sends the statement row by row instead (none does).
            if (_sources(compiled.string, dialect.name) == 1
                    and (dialect.name == "postgresql" or "'" not in compiled.string)):
                self.arrays, self.values = arrays, dialect.name != "postgresql"
            else:
                compiled = None
        if compiled is None:
            compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        if self.values:
            at = _BATCH_FROM.search(self.sql)
            assert at is not None
            self._head, self._tail = self.sql[:at.start()], self.sql[at.end():]
            self._before = self._head.count("?")  # the statement's parameters before it
        # A fact's parameters are its fields by name (see _params): "b_at" is its "at". A
        # row is the statement's own parameters over a fact's fields: none may be named
        # as one of the fields it takes.
        keys = tuple(name[2:] if name.startswith("b_") else name for name in self.names)
        hidden = {n[2:] for n in self.names if n.startswith("b_")}.intersection(self.names)
        if hidden:
            raise RuntimeError(f"a statement's parameter is named as a fact's field: {hidden}")
        self._array_keys = tuple(name[2:] for name in self.arrays)
        if not keys:
            self.row: Callable[[dict[str, Any]], Any] = lambda p: ()
        else:
            get = operator.itemgetter(*keys)
            self.row = get if len(keys) > 1 else (lambda p: (get(p),))
        self.fixed: dict[str, Any] = {}
        self.per_batch: dict[str, tuple[Any, Any]] = {}
        for col in compiled.update_prefetch:
            self.per_batch[col.key] = (col.onupdate.arg, _stamp_processor(col.type, dialect))
        for col in compiled.insert_prefetch:
            self.per_batch[col.key] = (col.default.arg, _stamp_processor(col.type, dialect))
        for name in self.names:
            if name.startswith(("b_", "a_")) or name in self.per_batch:
                continue
            bind = compiled.binds[name]
            process = _processor(bind.type, dialect)
            value = bind.effective_value
            self.fixed[name] = process(value) if process else value

    def execute(self, conn: _Executor, params: list[dict[str, Any]]) -> int:
        """Run for ``params``; the rows it changed, as the driver counts them (-1:
        unknown)."""
        return int(self._run(conn, params).rowcount)

    def _run(self, conn: _Executor, params: list[dict[str, Any]]) -> Any:
        common = dict(self.fixed)
        for name, (default, process) in self.per_batch.items():
            value = default(None) if callable(default) else default
            common[name] = process(value) if process else value
        row = self.row
        if self.values:  # one execution for the whole batch: its rows as a VALUES list
            sql = self._texts.get(len(params))
            if sql is None:
                one = f"({', '.join('?' * len(self.arrays))})"
                sql = self._texts[len(params)] = (
                    f"{self._head}(VALUES {', '.join([one] * len(params))}) AS {_BATCH}"
                    f"{self._tail}")
            fixed, before = row(common), self._before
            return conn.exec_driver_sql(sql, (
                *fixed[:before], *[p[key] for p in params for key in self._array_keys],
                *fixed[before:]))
        if self.arrays:
            common.update((f"a_{name}", [p[key] for p in params])
                          for name, key in zip(self.arrays, self._array_keys, strict=True))
            return conn.exec_driver_sql(self.sql, row(common))
        if len(params) == 1:  # execute: the driver's executemany of one row cost a sixth
            # more of an arrival's quiet-time commit (168,000 -> 141,000 instructions)
            return conn.exec_driver_sql(self.sql, row({**params[0], **common}))
        return conn.exec_driver_sql(self.sql, [row({**p, **common}) for p in params])


# The facts' parameters by name, for the set-wise form (untyped ones are strings).
_BIND_TYPES: dict[str, Any] = {
    "b_at": UTCDateTime(), "b_talk_seconds": Integer(), "b_staff_id": Integer(),
    "b_answer_received": Boolean(), "b_from_queue": Boolean(),
}


def _setwise(statement: ExternallyTraversible, dialect: str) -> tuple[Any, tuple[str, ...]]:
    """``statement`` rewritten to run once for a whole batch: every per-fact parameter
    ``b_x`` becomes a column of a table of the batch's facts — PostgreSQL's
    ``unnest(:a_x, …)`` of one array per parameter; on SQLite ``_BATCH``, which
    :class:`_Compiled` makes a VALUES list of the facts' rows. An
    UPDATE then becomes UPDATE … FROM, an INSERT … SELECT selects from it. PostgreSQL runs
    a row of an executemany in ~30 µs whatever it does, SQLite a few µs plus the driver's
    per-row work; a set of 200 rows costs little more than one. (SQLite's rows were a JSON
    array in ``json_each`` until 2026-12-01: ``json_extract`` parsed each row once per
    column it read, and the arrival's insert took a third more.)
    Correct only when no two facts of the batch name the same call (see apply_facts)."""
    names: set[str] = set()
    visitors.traverse(statement, {}, {"bindparam": lambda b: names.add(b.key)})
    names = {n for n in names if n.startswith("b_")}
    order = tuple(sorted(names))
    types = {n: _BIND_TYPES.get(n, String()) for n in order}
    columns: dict[str, Any]
    if dialect == "postgresql":
        source = func.unnest(*[bindparam(f"a_{n}", type_=ARRAY(types[n])) for n in order]) \
            .table_valued(*[column(n, types[n]) for n in order]).render_derived()
        columns = {n: source.c[n] for n in order}
    else:
        # The columns of SQLite's VALUES list are named column1, column2, …
        rows = table(_BATCH, *[column(f"column{i}", types[n]) for i, n in enumerate(order, 1)])
        columns = {n: rows.c[f"column{i}"] for i, n in enumerate(order, 1)}

    def replace(element: ExternallyTraversible, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in names:
            return columns[element.key]
        return None

    return visitors.replacement_traverse(statement, {}, replace), order


_BATCH = "hotline_batch"  # SQLite: the batch's rows, named in the statements' FROM
_BATCH_FROM = re.compile(rf"\b{_BATCH}\b(?!\.)")  # the name in FROM, not a column's


def _sources(sql: str, dialect: str) -> int:
    """How many times ``sql`` joins the batch's table."""
    if dialect == "postgresql":
        return sql.count("unnest(")
    return len(_BATCH_FROM.findall(sql))


def _sqlite_timestamp(value: datetime) -> str:
    """UTCDateTime's text on SQLite, what its bind processor makes (the one value every
    fact has). Written by one %-format: ``isoformat`` took 18,000 instructions a value, an
    f-string with a format spec per field 19,000, this 10,000; a time already in UTC, as
    the clock gives, is not converted."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 (see above)
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond)


def _processor(type_: Any, dialect: Any) -> Any:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _stamp_processor(type_: Any, dialect: Any) -> Any:
    """The processor of a timestamp's value: on SQLite :func:`_sqlite_timestamp`, for the
    facts' own and for a column default (``updated_at``, taken once per batch, as at every
    quiet-time commit: a key's commit took 4,600 instructions less than through
    SQLAlchemy's processor)."""
    if dialect.name == "sqlite" and isinstance(type_, UTCDateTime):
        return _sqlite_timestamp
    return _processor(type_, dialect)


_COMPILED: dict[tuple[str, str, int, bool], _Compiled] = {}
_TIMESTAMP = UTCDateTime()


def _compiled(conn: _Executor, statement: Any, setwise: bool) -> _Compiled:
    dialect = conn.dialect
    if isinstance(statement, _PerDialect):
        statement = statement[dialect.name]
    key = (dialect.name, dialect.driver, id(statement), setwise)
    found = _COMPILED.get(key)
    if found is None:
        found = _COMPILED[key] = _Compiled(statement, dialect, setwise)
    return found


def _params(fact: Fact, to_timestamp: Any) -> dict[str, Any]:
    """A fact's fields by name (the parameter ``b_at`` of a statement is the field ``at``),
    its timestamps converted for the driver. A copy of the fact's own dict: a name built per
    field, as "b_at", and a type test per value were most of the Python a batch took."""
    params = dict(vars(fact))
    stamps = _STAMPS.get(type(fact))
    if stamps is None:
        stamps = _STAMPS[type(fact)] = tuple(
            f.name for f in dataclasses.fields(fact) if "datetime" in str(f.type))
    for name in stamps:
        value = params[name]
        if value is not None:
            params[name] = to_timestamp(value)
    return params


_STAMPS: dict[type[Fact], tuple[str, ...]] = {}  # a fact class's timestamp fields


# Each fact kind's statements, in the order of a call's life (arrival, queue, operator
# answers, menu, outcome, operator done, abandoned, ended): a call's row exists before
# anything updates it.
_STATEMENTS: dict[str, tuple[Any, ...]] = {
    # The fill only serves rows the insert did not make (the queue's report came first,
    # a repeat): it is skipped when the insert made a row per fact, as at a quiet time,
    # where it was a sixth of a commit. A row made by the insert is already full.
    "arrival": (_ARRIVAL_NEW, _ARRIVAL_FILL),
    "queue_joined": (_QUEUE_ARRIVAL_NEW, _QUEUE_JOINED),
    "leg_answered": (_LEG_NEW, _LEG_CALL),
    "menu": (_MENU,),
    "outcome": (_OUTCOME,),
    "leg_ended": (_LEG_ENDED, _HANGUP_BY),
    "abandoned": (_ABANDONED,),
    "rated": (_RATING_NEW, _RATING, _RATED_CALL),
    "audited": (_AUDITED,),
    "ended": (_ENDED_UNANSWERED, _ENDED, _PENDING_CANCELLED),
}


class _DriverConnection:
    """The recorder's own SQLite connection, bare: what :func:`apply_facts` uses of a
    SQLAlchemy ``Connection`` (its dialect, ``exec_driver_sql``), straight on the DBAPI
    connection, which the recorder keeps checked out of its engine's pool.

    SQLAlchemy's begin, pool checkout and return, events and reset-on-return cost ~30 µs
    of a commit when the caches are warm, but ~0.3 ms when they are cold — which they are
    at every quiet-time commit on a small VM, where a call's facts come one by one — and
    the statements themselves are already compiled once (:class:`_Compiled`).
    """

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect
        self._pooled = engine.raw_connection()
        self.dbapi: sqlite3.Connection = self._pooled.driver_connection  # type: ignore[assignment]
        self.dbapi.isolation_level = None  # transactions are begun and ended here

    def exec_driver_sql(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if isinstance(params, list):
            return self.dbapi.executemany(sql, params)
        return self.dbapi.execute(sql, params)

    def write(self, facts: Sequence[Fact], wait: bool) -> Iterator[None]:
        """``facts`` in one transaction, a step per statement run of at most
        ``STEP_FACTS`` facts (the caller may let the loop run between steps); ``wait``: ride
        out another writer's lock (from a worker thread), else fail at once with "database
        is locked". A write left unfinished is rolled back."""
        db = self.dbapi
        if wait:
            db.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
        try:
            if len(facts) == 1 and facts[0].kind in _ALONE:
                _apply_alone(self, facts[0])
                return
            db.execute("BEGIN")
            try:
                yield from _apply_steps(self, facts, STEP_FACTS)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        finally:
            if wait:
                db.execute("PRAGMA busy_timeout=0")

    def close(self, broken: bool = False) -> None:
        """Back to the pool; ``broken``: the connection is discarded, the next is new."""
        if broken:
            self._pooled.invalidate()
        else:
            self._pooled.close()


# The kinds whose fact, written alone, is one statement's work: an arrival's fill runs
# only when its insert made nothing.
_ALONE = frozenset({"arrival"} | {kind for kind, run in _STATEMENTS.items() if len(run) == 1})


def _apply_alone(conn: _DriverConnection, fact: Fact) -> None:
    """One fact of ``_ALONE``, as :func:`_apply_steps` writes it, in SQLite's autocommit:
    its one statement is its own transaction. A quiet time's commit is a fact or two, and
    BEGIN and COMMIT through the driver were a fifth of it (callgrind: an arrival's
    commit 209,000 -> 168,000 instructions)."""
    params = _params(fact, _sqlite_timestamp)
    if fact.kind == "arrival":
        params.update(_NOTHING_FOLDED)
        if _compiled(conn, _ARRIVAL_NEW, False).execute(conn, [params]) == 0:
            # The row was there (the queue's report came first): the fill is then the
            # fact's only change.
            _compiled(conn, _ARRIVAL_FILL, False).execute(conn, [params])
        return
    (statement,) = _STATEMENTS[fact.kind]
    _compiled(conn, statement, False).execute(conn, [params])


def apply_facts(conn: _Executor, facts: Sequence[Fact]) -> None:
    """Write ``facts`` on ``conn`` (inside the caller's transaction)."""
    for _ in _apply_steps(conn, facts, None):
        pass


def _apply_steps(conn: _Executor, facts: Sequence[Fact], step: int | None) -> Iterator[None]:
    """:func:`apply_facts`, pausing after each statement run of at most ``step`` facts
    (and after preparing the parameters of each ``step`` facts).

    Each kind's statements are one executemany each, kinds in the order of
    ``_STATEMENTS``. Kinds that touch the same column do so under conditions that make
    their order irrelevant (an outcome set from the queue only replaces "in progress"), so
    the order within a kind (kept) is the only one that matters. A kind whose facts each
    name a different call runs set-wise (:func:`_setwise`): with one fact per call, the
    order within the kind cannot matter. Split in steps, a statement still runs over its
    facts in order, and all of it before the next statement.
    """
    to_timestamp = _stamp_processor(_TIMESTAMP, conn.dialect)
    setwise_ok = True
    if conn.dialect.name == "postgresql":
        # Every statement here finds its rows by a unique key. A young table's statistics
        # (a few rows, while thousands came since) lead the planner to scan the table for
        # each of a batch's calls; the key's index is always the right way.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _STATEMENTS}
    for n, fact in enumerate(facts, 1):
        by_kind[fact.kind].append(_params(fact, to_timestamp))
        if step and n % step == 0:
            yield
    folded = _fold_menus(by_kind["arrival"], by_kind["menu"])
    created: set[str] = set()  # calls whose row came with their menu keys folded in
    for kind, statements in _STATEMENTS.items():
        params = by_kind[kind]
        if kind == "menu" and created:
            params = [p for p in params if p["linkedid"] not in created]
        if not params:
            continue
        setwise = (setwise_ok and len(params) > 1 and kind != "audited"
                   and len({p["linkedid"] for p in params}) == len(params))
        size = step or len(params)
        made = 0  # rows the kind's INSERT made
        for statement in statements:
            if statement is _ARRIVAL_FILL and made == len(params):
                continue  # every arrival made its row: none to fill
            compiled = _compiled(conn, statement, setwise)
            folding = statement is _ARRIVAL_NEW and folded and setwise
            for start in range(0, len(params), size):
                part = params[start:start + size]
                if folding:
                    made += _insert_folded(conn, compiled, part, created)
                else:
                    count = compiled.execute(conn, part)
                    if statement is _ARRIVAL_NEW:
                        made += count
                yield


def _insert_folded(conn: _Executor, compiled: _Compiled, arrivals: list[dict[str, Any]],
                   created: set[str]) -> int:
    """Insert the rows of ``arrivals`` with their calls' menu keys folded in (see
    :func:`_fold_menus`) when every one of them is new, as is usual: their calls go into
    ``created``, whose keys are then not applied again. When some row was already there,
    the insert is undone and made again without the keys, which then update the rows as
    keys do. The rows made. (RETURNING would name the rows made, but SQLite collects a
    RETURNING's rows in a temporary table: a quarter of the insert's instructions.)"""
    conn.exec_driver_sql("SAVEPOINT hotline_fold")
    count = compiled.execute(conn, arrivals)
    if count == len(arrivals):
        created.update(arrival["linkedid"] for arrival in arrivals)
    else:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT hotline_fold")
        for arrival in arrivals:
            arrival.update(_NOTHING_FOLDED)
        count = compiled.execute(conn, arrivals)
    conn.exec_driver_sql("RELEASE SAVEPOINT hotline_fold")
    return count


_NOTHING_FOLDED = {"ivr_path": "", "topic": None, "queue": None}


def _fold_menus(arrivals: list[dict[str, Any]], menus: list[dict[str, Any]]) -> bool:
    """Fold the menu keys of a batch into the arrivals of their calls in it: the row the
    arrival makes then has the path, topic and queue the keys' updates would have given it
    (under load a call's arrival and keys share a batch, and their update was a third of
    the batch's work). A call whose row was already there (made by the queue's report)
    gets its keys' updates as before (see _insert_folded). Only where the arrivals' insert
    runs set-wise (two or more, one per call). True when some key was folded."""
    for arrival in arrivals:
        arrival.update(_NOTHING_FOLDED)
    if len(arrivals) < 2 or not menus:
        return False
    by_call = {arrival["linkedid"]: arrival for arrival in arrivals}
    if len(by_call) < len(arrivals):
        return False  # a call arrived twice: the insert runs row by row
    folded = False
    for menu in menus:
        row = by_call.get(menu["linkedid"])
        if row is None:
            continue
        path, key = row["ivr_path"], menu["key"]
        # What _MENU does to the row, in the same order.
        row["ivr_path"] = (key if path == "" else f"{path}>{key}")[:PATH_MAX]
        if menu["topic"] is not None:
            row["topic"] = menu["topic"]
        if menu["queue"] is not None:
            row["queue"] = menu["queue"]
        folded = True
    return folded


# --- the writer ---------------------------------------------------------------------------


class CallRecorder:
    def __init__(
        self, engine: AsyncEngine, *, spool: Path, sync_engine: Engine | None = None,
        batch: int = 200, interval: float = 0.05,
        max_pending: int = 10_000, max_spool_bytes: int = 64 * 1024 * 1024,
        retry_max_delay: float = 10.0,
    ) -> None:
        self.engine = engine
        self.sync_engine = sync_engine
        self.spool = spool
        self.batch = batch
        self.interval = interval
        self.max_pending = max_pending
        self.max_spool_bytes = max_spool_bytes
        self.retry_max_delay = retry_max_delay
        self._pending: list[Fact] = []
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._syncing = 0  # sync() calls waiting on _progress
        self._task: asyncio.Task[None] | None = None
        self._put = 0    # facts accepted
        self._done = 0   # facts committed or safely spooled
        self._closing = False
        self._idle = False  # the writer waits for a first fact, with no timer running
        self._soon = False  # a quiet time's write is scheduled (_write_now)
        self._written_at = -math.inf  # when the last commit ended (the loop's clock)
        self._spool_name = os.fspath(spool)  # for os.path.exists: pathlib's costs more
        self._wanted = 0    # a sync() waits for the facts up to this one: no gathering
        self._checkpoint: asyncio.Task[None] | None = None
        self._checkpoints: _WalCheckpoints | None = None  # SQLite: made at the first
        self._driver: _DriverConnection | None = None  # SQLite: the connection, kept
        self._checkpointed = time.monotonic()   # the last checkpoint (or the start)
        self._uncheckpointed = 0                # facts committed since
        # How many calls this process's AGI server has in progress, when it runs one (set
        # by make_agi_server): with one, a SQLite batch is written in one go (_alone).
        self.calls_in_progress: Callable[[], int] | None = None
        self.rejects = spool.with_suffix(".rejected.jsonl")
        self.stats = {"committed": 0, "spooled": 0, "replayed": 0, "dropped": 0, "batches": 0,
                      "rejected": 0, "waited": 0}

    # --- recording (never waits) ---

    def arrival(self, linkedid: str, caller: str, dialed: str, at: datetime) -> None:
        self.put(Arrival(linkedid, normalise(caller), dialed, at))

    def menu(self, linkedid: str, key: str, topic: str | None = None,
             queue: str | None = None) -> None:
        self.put(MenuKey(linkedid, key, topic, queue))

    def outcome(self, linkedid: str, outcome: CallOutcome) -> None:
        self.put(Outcome(linkedid, outcome.value))

    def rated(self, linkedid: str, *, extension: str | None, answer_received: bool | None,
              quality: str | None, status: str, from_queue: bool, at: datetime) -> None:
        self.put(Rated(linkedid, extension, answer_received, quality, status, from_queue, at))

    def ended(self, linkedid: str, at: datetime) -> None:
        self.put(Ended(linkedid, at))

    def put(self, fact: Fact) -> None:
        if self._closing:
            raise RuntimeError("the call recorder is closed")
        self._put += 1
        if len(self._pending) >= self.max_pending:
            # The database has been slow for a long while: keep the fact on disk instead.
            log.warning("call recorder: %d facts pending, spooling", len(self._pending))
            self._spool_done([*self._pending, fact])
            self._pending = []
        else:
            self._pending.append(fact)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="recorder")
        if self._idle:
            if not self._soon:
                self._soon = True
                asyncio.get_running_loop().call_soon(self._write_now)
        elif len(self._pending) >= self.batch:
            self._wake.set()

    async def sync(self, timeout: float = 30.0) -> None:
        """Return once every fact recorded so far is committed (or spooled, when the
        database is away)."""
        target = self._put
        if self._done >= target:
            return
        self._wanted = max(self._wanted, target)
        self._wake.set()
        self._syncing += 1
        try:
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(lambda: self._done >= target),
                                       timeout)
        finally:
            self._syncing -= 1

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._wake.set()
            await self._task
            self._task = None
        if self._checkpoint is not None:
            await self._checkpoint
        if self._checkpoints is not None:
            self._checkpoints.close()
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        if self.sync_engine is not None:
            self.sync_engine.dispose()

    # --- writing ---

    async def _run(self) -> None:
        """Commits at most once per ``interval``: facts that come within an interval of
        the last commit gather for the next one, so under load many calls' facts share a
        commit. A fact after a quiet spell is committed at once, in the loop's turn after
        the one that brought it (on SQLite by :meth:`_write_now`, without this task):
        gathering it for an interval cost a quiet-time call a timer's wake-up per fact, as
        much CPU as the commit itself on a small VM."""
        loop = asyncio.get_running_loop()
        delay = 0.0
        while True:
            if delay:
                await self._sleep(delay)
            elif not self._pending and not self._closing:
                # Nothing to do: no timer, no wake-ups (each costs CPU on a small VM)
                # until a fact comes; a spool left from before is retried each second.
                self._idle = True
                await self._sleep(self.interval * 20 if self._spooled() else None)
                self._idle = False
            self._wake.clear()
            if (not delay and self._pending and len(self._pending) < self.batch
                    and not self._closing and self._done >= self._wanted):
                # Let a batch gather, up to an interval after the last commit. Not while
                # sync() waits: its facts go now.
                gather = self._written_at + self.interval - loop.time()
                if gather > 0:
                    await self._sleep(gather)
                    self._wake.clear()
            try:
                ok = await self._write_once()
            except Exception:  # e.g. the spool's disk is full: log, retry, never stop
                log.exception("call recorder: write failed; retrying")
                ok = False
            self._written_at = loop.time()
            if ok:
                delay = 0.0
            else:
                delay = min(self.retry_max_delay, max(0.5, delay * 2))
            if self._closing and (not self._pending or not ok):
                if self._pending:  # the database is away at shutdown: keep them on disk
                    self._spool_done(self._pending)
                    self._pending = []
                await self._notify()
                return

    def _write_now(self) -> None:
        """A fact that comes while the writer is idle (a quiet spell: nothing pending, no
        retry, no spool), written right here in the loop's turn after the one that brought
        it, when the last commit is an interval old: the writer task's own way there — its
        wake-up, its loop, its awaits — was ~25,000 instructions a commit more than this
        (callgrind, one paced call at a time: 1.61 -> 1.57 M a call). Anything else is the
        writer's: a write that fails goes back in front of the pending facts and the writer
        takes it up (retries, a thread to wait out a lock, the spool); a sync() waiting is
        woken."""
        self._soon = False
        if not self._idle or self._closing or not self._pending:
            return
        loop = asyncio.get_running_loop()
        if (self.sync_engine is None or len(self._pending) > STEP_FACTS
                or loop.time() < self._written_at + self.interval or self._spooled()):
            self._wake.set()
            return
        facts, self._pending = self._pending, []
        try:  # another writer's lock fails it at once; a broken connection the writer finds
            collections.deque(self._driver_for(self.sync_engine).write(facts, wait=False), 0)
        except Exception:
            self._pending[:0] = facts
            self._wake.set()
            return
        self._committed_sqlite(len(facts))
        self._written_at = loop.time()
        self._done += len(facts)
        self.stats["committed"] += len(facts)
        if self._syncing:
            self._wake.set()

    def _spooled(self) -> bool:
        return os.path.exists(self._spool_name)

    async def _sleep(self, seconds: float | None) -> None:
        """Until woken (a full batch, close, sync) or ``seconds`` pass. The timer only sets
        the wake-up flag: no cancellation, whose exceptions cost more than the wait itself
        when a call's facts come one at a time."""
        if seconds is None:
            await self._wake.wait()
            return
        timer = asyncio.get_running_loop().call_later(seconds, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    async def _write_once(self) -> bool:
        if self._spooled() and not await self._replay():
            # Still down: new facts go behind the spooled ones, in order.
            if self._pending:
                self._spool_done(self._pending)
                self._pending = []
                await self._notify()
            return False
        if not self._pending:
            await self._notify()
            return True
        facts, self._pending = self._pending[:self.batch], self._pending[self.batch:]
        left = await self._write(facts)
        if left:
            self._spool_failed(left)
            self._spool_done(self._pending)
            self._pending = []
            await self._notify()
            return False
        self._done += len(facts)
        await self._notify()
        return True

    async def _write(self, facts: Sequence[Fact]) -> list[Fact]:
        """Commit ``facts``; the ones not written because the database is away ([] when all
        were written). A batch refused for its data is written fact by fact, so one bad fact
        never holds back the others; a fact refused on its own goes to the rejects file."""
        try:
            await self._commit(facts)
            self.stats["committed"] += len(facts)
            return []
        except Exception as exc:
            if _unavailable_error(exc):
                self._unavailable(exc, len(facts))
                return list(facts)
            log.warning("call recorder: batch refused (%s); writing fact by fact",
                        exc.__class__.__name__)
        for i, fact in enumerate(facts):
            try:
                await self._commit([fact])
                self.stats["committed"] += 1
            except Exception as exc:
                if _unavailable_error(exc):
                    self._unavailable(exc, len(facts) - i)
                    return list(facts[i:])
                self._reject(fact, exc)
        return []

    def _unavailable(self, exc: BaseException, count: int) -> None:
        log.error("call recorder: database unavailable (%s: %.200s); spooling %d facts",
                  exc.__class__.__name__, exc, count + len(self._pending))

    def _reject(self, fact: Fact, exc: BaseException) -> None:
        self.stats["rejected"] += 1
        log.error("call recorder: fact refused by the database, kept in %s: %s (%.200s)",
                  self.rejects, fact, exc)
        self.rejects.parent.mkdir(parents=True, exist_ok=True)
        with self.rejects.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"fact": json.loads(fact.to_json()), "error": str(exc)[:500]},
                                 ensure_ascii=False) + "\n")

    async def _commit(self, facts: Sequence[Fact]) -> None:
        """One transaction. PostgreSQL: through asyncpg, on the loop.

        SQLite: right here, on the loop's thread, in steps the loop runs between — a batch
        of 200 facts is a few milliseconds of CPU and no fsync (WAL, ``synchronous=NORMAL``,
        checkpoints moved to a thread: :meth:`_checkpoint_soon`). A worker thread would
        cost two wake-ups per batch, and while the loop is busy each of SQLite's GIL
        releases (one per row) waits for the loop's switch interval: batches took 30 times
        longer under load. The recorder's connection does not wait for SQLite's lock
        (``busy_timeout=0``): when another connection is writing, the batch goes to a
        thread that may wait.
        """
        if self.sync_engine is not None:
            await self._commit_sqlite(self.sync_engine, facts)
        else:
            async with self.engine.begin() as conn:
                await conn.run_sync(apply_facts, facts)
            self.stats["batches"] += 1

    async def _commit_sqlite(self, engine: Engine, facts: Sequence[Fact]) -> None:
        """On the loop, which gets turns after every step (a statement run of at most
        ``STEP_FACTS`` facts, a few tenths of a millisecond) of a batch larger than a step:
        a batch of 200 facts is ~3 ms, which every call's next command would otherwise wait
        for under load; a quiet time's batch (a fact or two) is written at once, as before
        the loop got turns by step, and so is any batch while the AGI server has one call
        or none in progress (:meth:`_alone`). Another writer's lock sends the batch to a
        thread that waits for it."""
        driver = self._driver_for(engine)
        try:
            try:
                if len(facts) <= STEP_FACTS or self._alone():  # at once
                    collections.deque(driver.write(facts, wait=False), 0)
                else:
                    for _ in driver.write(facts, wait=False):
                        await _turns_for_calls()
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
                self.stats["waited"] += 1
                await asyncio.to_thread(collections.deque, driver.write(facts, wait=True), 0)
        except sqlite3.Error as exc:
            self._broken(driver, exc)
            raise
        self._committed_sqlite(len(facts))

    def _driver_for(self, engine: Engine) -> _DriverConnection:
        if self._driver is None:
            self._driver = _DriverConnection(engine)
        return self._driver

    def _broken(self, driver: _DriverConnection, exc: sqlite3.Error) -> None:
        if _unavailable_error(exc) and not _locked(exc) and self._driver is driver:
            # Disk I/O error, file gone, …: the next batch starts on a new connection,
            # and so does the next checkpoint.
            driver.close(broken=True)
            self._driver = None
            if self._checkpoints is not None:
                self._checkpoints.reopen()

    def _committed_sqlite(self, count: int) -> None:
        self._uncheckpointed += count
        self._checkpoint_soon()
        self.stats["batches"] += 1

    def _alone(self) -> bool:
        """True while this process's AGI server has at most one call in progress. The
        loop's turns between steps serve the calls whose replies came during a step; one
        call alone is served, sends its next command, and its next reply comes during the
        next step (Asterisk answers in tens of microseconds when nothing plays): it waited
        for nearly every step of the batch, and each step's turns cost CPU. In one go it
        waits once, as long as for all the steps. bench/agi_roundtrip.py at one call, 2,400
        calls: in steps, 190 of 16,800 commands waited for one, 80 of them among the worst
        1 %; in one go 24, at most one per batch (p99 0.17 → 0.13 ms, p99.9 0.6 → 3 ms).
        False when the process runs no AGI server: the panel and the AMI listener keep
        their turns."""
        count = self.calls_in_progress
        return count is not None and count() <= 1

    def _checkpoint_soon(self) -> None:
        """Copy the WAL into the database file, in a thread (the recorder's own connection
        never checkpoints, so a commit never waits for it): once ``CHECKPOINT_FACTS`` facts
        were committed since the last one, at most once a second; else once a minute.

        A checkpoint costs a thread's wake-up and an fsync (and a connection, until
        2026-12-01): after every quiet-time batch it was most of the CPU a call cost the
        AGI server."""
        now = time.monotonic()
        since = now - self._checkpointed
        if (self.sync_engine is None or since < 1.0
                or (self._uncheckpointed < CHECKPOINT_FACTS and since < CHECKPOINT_SECONDS)
                or (self._checkpoint is not None and not self._checkpoint.done())):
            return
        self._checkpointed, self._uncheckpointed = now, 0
        if self._checkpoints is None:
            self._checkpoints = _WalCheckpoints(self.sync_engine.url.database or "")
        self._checkpoint = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self._checkpoints.run), name="recorder-checkpoint")

    async def _replay(self) -> bool:
        try:
            lines = self.spool.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return True
        facts = list(_parse(lines))
        left = await self._write(facts)
        if left:
            if len(left) < len(facts):  # part was written: keep only the rest
                self._rewrite_spool(_lines(left))
            return False
        self.spool.unlink()
        self.stats["replayed"] += len(facts)
        log.info("call recorder: replayed %d spooled facts", len(facts))
        return True

    def _spool(self, facts: Iterable[Fact]) -> None:
        facts = list(facts)
        size = self.spool.stat().st_size if self.spool.exists() else 0
        if size > self.max_spool_bytes:
            self.stats["dropped"] += len(facts)
            log.critical("call recorder: spool %s is over %d bytes; %d facts LOST",
                         self.spool, self.max_spool_bytes, len(facts))
            return
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with self.spool.open("a", encoding="utf-8") as out:
            out.write(_lines(facts))
            out.flush()
            os.fsync(out.fileno())
        self.stats["spooled"] += len(facts)

    def _spool_failed(self, facts: list[Fact]) -> None:
        """A failed batch goes to the spool ahead of anything that overflowed into it while
        the batch was in flight: the order of facts is kept."""
        if not self.spool.exists():
            self._spool_done(facts)
            return
        self._rewrite_spool(_lines(facts) + self.spool.read_text(encoding="utf-8"))
        self.stats["spooled"] += len(facts)
        self._done += len(facts)

    def _rewrite_spool(self, text: str) -> None:
        """Replace the spool's content in one step: a crash leaves the old file or the new."""
        tmp = self.spool.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.spool)

    def _spool_done(self, facts: list[Fact]) -> None:
        self._spool(facts)
        self._done += len(facts)

    async def _notify(self) -> None:
        if not self._syncing:  # nobody waits: the usual case
            return
        async with self._progress:
            self._progress.notify_all()


LOCK_WAIT_MS = 10_000
STEP_FACTS = 25      # facts per statement run in the recorder's SQLite writes
CHECKPOINT_FACTS = 2000
CHECKPOINT_SECONDS = 60.0


async def _turns_for_calls() -> None:
    """Between two steps of a batch: let a call whose reply came during the step send its
    next command first. That takes three turns of the loop: in the first, the socket's
    event is taken (its callback queues behind ours); in the second, the callback runs and
    wakes the call's task; in the third, the task runs and sends its command. With one
    turn, the next step ran before each of those, and a reply waited out three steps."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _locked(exc: sqlite3.Error) -> bool:
    message = str(exc)
    return "locked" in message or "busy" in message


class _WalCheckpoints:
    """The recorder's WAL checkpoints, run in a worker thread (one at a time) on a
    connection of their own, kept open: a new connection for each read the whole schema
    again (a checkpoint needs it). After a minute of quiet traffic a checkpoint took
    1.6 ms of CPU on a new connection and 0.9 ms on the kept one (this VM, 2026-12-01)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._reopen = False

    def reopen(self) -> None:
        """The next checkpoint on a new connection: the recorder's own found the database
        broken (a file replaced or gone would keep an old connection on the old one).
        Only flagged here: a checkpoint may be running in its thread."""
        self._reopen = True

    def run(self) -> None:
        if not self.path or self.path == ":memory:":
            return
        if self._reopen:
            self._reopen = False
            self.close()
        try:
            if self._db is None:
                self._db = sqlite3.connect(self.path, timeout=LOCK_WAIT_MS / 1000,
                                           isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next one will do, on a new connection
            log.warning("call recorder: WAL checkpoint failed: %s", exc)
            self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _lines(facts: Iterable[Fact]) -> str:
    return "".join(fact.to_json() + "\n" for fact in facts)


def _parse(lines: Iterable[str]) -> Iterable[Fact]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield fact_from_json(line)
        except (ValueError, KeyError, TypeError):
            # A line torn by a crash mid-write: the only fact that can be lost this way.
            log.error("call recorder: unreadable spool line %d skipped: %.80r", number, line)
