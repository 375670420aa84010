"""Importing the calls the service never saw (issue 31): callers who came while it was down,
and calls whose facts were still in memory when it was killed. After every start and every
AMI (re)connection, Asterisk's CDR (``cdr_custom``'s hotline.csv, whose lines the dialplan
marks for hotline callers and for ``agi-fail``) is read from the reconcile mark on; a hotline
call that ended there and is not in the records is written from the CDR and ``queue_log``
through the call recorder — caller, dialled number, times, queue, the operator's leg, who
hung up, and so the outcome — flagged ``recovered`` (and ``fallback`` when it passed
agi-fail). A hotline caller still live and unknown gets its row at once (from
``CoreShowChannels``), so its later AMI events complete it.

Each call is keyed on its linkedid (``calls.linkedid`` is unique, every statement
idempotent): a call imported twice, or imported as the IVR records it too, is in the
records once.

The reconcile mark says where the reading begins. A database's first mark is set as the
service starts, before it answers a call (:func:`mark_start`): a process killed before its
first reconciliation must not leave the next one to take the calls it served, and those that
came while it was down, for Asterisk's history older than the records.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from panoramisk.message import Message
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from .ami import AMIClient
from .db.models import Call, ReconcileMark
from .phone import normalise
from .reconcile import (
    CDR_FILE,
    CDR_TAIL_BYTES,
    CdrRow,
    QueueLogLine,
    _tail,
    cdr_row,
    complete_call,
    read_cdr,
    read_queue_log,
)
from .recorder import Arrival, Ended, Flagged, QueueJoined
from .services.container import Services

log = logging.getLogger(__name__)

MARK = "cdr"
# The mark stays this far behind the moment Asterisk was asked: a CDR line is written just
# after its call ends. Calls read twice are known the second time.
MARK_SLACK = timedelta(seconds=30)
# Without a mark, a last known call older than this is not where the records stopped (a
# database restored or seeded): the CDR is read from now on.
FIRST_LOOKBACK = timedelta(hours=1)
# Where a hotline caller's own channel is while the service may not know it: in a queue,
# or in the fallback on its way there.
CALLER_CONTEXTS = frozenset({"hotline-queue", "agi-fail"})
FALLBACK_MARK = "agi-fail"
LOOKUP_CHUNK = 500
NUMBER_MAX = 40   # calls.caller_number, calls.dialed_number
QUEUE_MAX = 80    # calls.queue


def read_cdr_since(path: Path, since: datetime) -> dict[str, list[CdrRow]]:
    """The hotline calls (a line marked by the dialplan) whose last CDR line ended at or
    after ``since``: linkedid → its lines."""
    calls: dict[str, list[CdrRow]] = defaultdict(list)
    for fields in csv.reader(_tail(path, CDR_TAIL_BYTES).splitlines()):
        row = cdr_row(fields)
        if row is not None:
            calls[row.linkedid].append(row)
    return {linkedid: rows for linkedid, rows in calls.items()
            if any(r.mark for r in rows)
            and max((r.end for r in rows if r.end), default=since) >= since}


async def recover_unknown(services: Services, ami: AMIClient, log_dir: Path) -> int:
    """Import the hotline calls Asterisk has and the records lack; how many."""
    asked = datetime.now(UTC)
    channels = await ami.action({"Action": "CoreShowChannels"}, as_list=True)
    listed = [m for m in channels if m.get("Event") == "CoreShowChannel"]
    await services.recorder.sync()
    since = await _since(services, asked)
    live = {str(m.get("Linkedid", "")) for m in listed}
    ended = await asyncio.to_thread(read_cdr_since, log_dir / CDR_FILE, since)
    for linkedid in live:
        ended.pop(linkedid, None)  # a CDR line of a call going on: its end comes by AMI
    unknown = await _unknown(services, ended)
    queue_log = await asyncio.to_thread(
        read_queue_log, log_dir / "queue_log",
        {r.uniqueid for linkedid in unknown for r in ended[linkedid]})
    for linkedid in sorted(unknown):
        _import(services, linkedid, ended[linkedid], queue_log)
    joined = await _live_unknown(services, listed, asked)
    await services.recorder.sync()
    await _set_mark(services, asked - MARK_SLACK)
    if unknown or joined:
        log.warning("recovered %d calls the service missed from Asterisk's CDR (ended since "
                    "%s), and %d going on", len(unknown), since.isoformat(timespec="seconds"),
                    joined)
    return len(unknown) + joined


async def mark_start(services: Services) -> None:
    """Set the reconcile mark of a database that has none, before the service answers its
    first call. A database that cannot be reached now gets it at the first reconciliation."""
    try:
        await _since(services, datetime.now(UTC))
    except (OSError, DBAPIError) as exc:
        log.warning("reconcile mark not set at start (%s); set at the first reconciliation",
                    exc.__class__.__name__)


async def _unknown(services: Services, linkedids: Iterable[str]) -> set[str]:
    wanted = set(linkedids)
    ordered = sorted(wanted)
    async with services.sessions() as session:
        for i in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[i:i + LOOKUP_CHUNK]
            wanted -= set(await session.scalars(
                select(Call.linkedid).where(Call.linkedid.in_(chunk))))
    return wanted


def _import(services: Services, linkedid: str, rows: list[CdrRow],
            queue_log: list[QueueLogLine]) -> None:
    """One ended call, from its CDR lines and queue_log (what the records have of it is
    kept: the arrival only fills blanks)."""
    marked = [r for r in rows if r.mark]
    # The CDR's text goes to the database only bound, and cut to its column's size.
    caller = normalise(next((r.src for r in marked if r.src), ""))[:NUMBER_MAX]
    dialed = next((r.dialed for r in marked if r.dialed), "")[:NUMBER_MAX]
    starts = [r.start for r in rows if r.start]
    start = min(starts) if starts else services.clock()
    services.recorder.put(Arrival(linkedid, caller, dialed, start))
    complete_call(services.recorder.put, linkedid, rows, queue_log, start)


async def _live_unknown(services: Services, listed: list[Message], asked: datetime) -> int:
    """Hotline callers in a queue or the fallback whom the records lack: their row now
    (the arrival, the queue they wait in), the rest from their AMI events. A known caller
    in the fallback is marked so: agi-fail's event came while nobody listened."""
    callers = {str(m.get("Linkedid", "")): m for m in listed
               if m.get("Context") in CALLER_CONTEXTS and m.get("Linkedid")}
    unknown = await _unknown(services, callers)
    put = services.recorder.put
    for linkedid, channel in sorted(callers.items()):
        caller = normalise(str(channel.get("CallerIDNum", "")))[:NUMBER_MAX]
        start = asked - _duration(str(channel.get("Duration", "")))
        fallback = channel.get("Context") == FALLBACK_MARK
        if linkedid not in unknown:
            if fallback:
                put(Flagged(linkedid, False, True, start, caller))
            continue
        put(Arrival(linkedid, caller, "", start))
        put(Flagged(linkedid, True, fallback, start, caller))
        if channel.get("Application") == "Queue":
            queue = str(channel.get("ApplicationData", "")).split(",")[0][:QUEUE_MAX]
            put(QueueJoined(linkedid, queue, start, caller))
    return len(unknown)


def _duration(value: str) -> timedelta:
    try:
        hours, minutes, seconds = (int(part) for part in value.split(":"))
    except ValueError:
        return timedelta(0)
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


async def _since(services: Services, now: datetime) -> datetime:
    """The reconcile mark, set first when there is none: a new database's is ``now``
    (Asterisk's older calls are not ours); a database from before the mark existed reads
    from its last call's start (``MARK_SLACK`` before), if within ``FIRST_LOOKBACK``."""
    async with services.sessions() as session:
        mark = await session.scalar(select(ReconcileMark.at).where(ReconcileMark.name == MARK))
        if mark is not None:
            return mark
        last = await session.scalar(select(func.max(Call.started_at)))
    at = last - MARK_SLACK if last is not None and last >= now - FIRST_LOOKBACK else now
    try:
        async with services.sessions() as session, session.begin():
            session.add(ReconcileMark(name=MARK, at=at))
    except IntegrityError:  # another process set it meanwhile: theirs holds
        return await _since(services, now)
    return at


async def _set_mark(services: Services, at: datetime) -> None:
    async with services.sessions() as session, session.begin():
        mark = await session.get(ReconcileMark, MARK)
        if mark is None:
            session.add(ReconcileMark(name=MARK, at=at))
        elif at > mark.at:
            mark.at = at


async def complete_after_hangup(services: Services, log_dir: Path, linkedid: str,
                                at: datetime, wait: float = 10.0) -> None:
    """End a call that was going on when the link came back: events before it (a queue
    join, an operator's answer) may have gone unheard, so its CDR lines — written as it
    ends — complete it first, then it ends. Without them in ``wait`` s, it just ends."""
    loop = asyncio.get_running_loop()
    begun = loop.time()
    while True:
        rows = await asyncio.to_thread(read_cdr, log_dir / CDR_FILE, {linkedid}, CDR_RECENT)
        ended = [r for r in rows if r.end and r.end >= at - CDR_END_SLACK]
        # The hotline caller's own line (the dialplan's mark) is the one that says it all;
        # a call without one (a callback's) has only unmarked lines.
        if any(r.mark for r in ended) or (ended and loop.time() - begun > UNMARKED_AFTER):
            break
        if loop.time() - begun >= wait:
            log.warning("call %s: no CDR line %gs after its end; ended without one",
                        linkedid, wait)
            services.recorder.put(Ended(linkedid, at))
            return
        await asyncio.sleep(CDR_POLL)
    queue_log = await asyncio.to_thread(read_queue_log, log_dir / "queue_log",
                                        {r.uniqueid for r in rows})
    _import(services, linkedid, rows, queue_log)  # its row too, should the records lack it


CDR_POLL = 0.2   # the CDR line follows the hang-up within milliseconds
CDR_RECENT = 1024 * 1024  # a line just written is in the file's last megabyte
UNMARKED_AFTER = 2.0
CDR_END_SLACK = timedelta(seconds=1)
