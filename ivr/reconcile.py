"""Completing calls whose AMI events were missed (issue 4): after every (re)connection the
tracker asks Asterisk which calls are still live (``CoreShowChannels``); a call our records
still show open but Asterisk no longer has ended while nobody listened. Its end, and the
operator's leg if one answered, are taken from Asterisk's own records — the CSV that
``cdr_custom`` writes (``config/asterisk/cdr_custom.conf``), and ``queue_log`` for the queue
join, the moment an operator answered (a CDR's answer time is the caller's), who hung up
and the callers who gave up — and written
through the call recorder like any event, so a call is never left half-open and never
recorded twice.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from .ami import AMIClient
from .db.models import Call
from .facts import FINISH_ENDED
from .recorder import Abandoned, Ended, Fact, Flagged, LegAnswered, LegEnded, QueueJoined
from .services.container import Services
from .services.ratings import extension_of

log = logging.getLogger(__name__)

OPEN_CALLS_CHECKED = 2000    # the most recent calls still open are looked at
CDR_FILE = "cdr-custom/hotline.csv"
CDR_TAIL_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class CdrRow:
    linkedid: str
    uniqueid: str
    channel: str
    dstchannel: str
    lastapp: str
    start: datetime | None
    answer: datetime | None
    end: datetime | None
    billsec: int
    disposition: str
    # Lines written since the dialplan marks hotline callers (older ones: blank).
    src: str = ""
    mark: str = ""      # "in": a hotline caller; "agi-fail": they passed the fallback
    dialed: str = ""


def _time(value: str) -> datetime | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def read_cdr(path: Path, linkedids: set[str], tail_bytes: int = CDR_TAIL_BYTES) -> list[CdrRow]:
    """The CDR lines of ``linkedids`` among the last ``tail_bytes`` of the file."""
    rows = (cdr_row(fields) for fields in csv.reader(_tail(path, tail_bytes).splitlines()))
    return [row for row in rows if row is not None and row.linkedid in linkedids]


def cdr_row(fields: list[str]) -> CdrRow | None:
    """One CSV line of cdr_custom's hotline.csv; None for a line cut short."""
    if len(fields) not in (10, 13):
        return None
    try:
        billsec = int(fields[8] or 0)
    except ValueError:
        billsec = 0
    return CdrRow(fields[0], fields[1], fields[2], fields[3], fields[4], _time(fields[5]),
                  _time(fields[6]), _time(fields[7]), billsec, fields[9], *fields[10:])


@dataclass(frozen=True)
class QueueLogLine:
    at: datetime
    callid: str   # the queued channel's uniqueid
    queue: str
    event: str    # ENTERQUEUE, CONNECT, COMPLETEAGENT, COMPLETECALLER, ABANDON, …


def _tail(path: Path, tail_bytes: int) -> str:
    try:
        with path.open("rb") as raw:
            size = raw.seek(0, os.SEEK_END)
            raw.seek(max(0, size - tail_bytes))
            if size > tail_bytes:
                raw.readline()  # a partial first line
            return raw.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def read_queue_log(path: Path, callids: set[str],
                   tail_bytes: int = CDR_TAIL_BYTES) -> list[QueueLogLine]:
    lines = []
    for line in _tail(path, tail_bytes).splitlines():
        fields = line.split("|")
        if len(fields) < 5 or fields[1] not in callids:
            continue
        at = _time(fields[0])
        if at is not None:
            lines.append(QueueLogLine(at, fields[1], fields[2], fields[4]))
    return lines


QUEUE_HANGUP_BY = {"COMPLETEAGENT": "operator", "COMPLETECALLER": "caller",
                   "TRANSFER": "transfer", "BLINDTRANSFER": "transfer",
                   "ATTENDEDTRANSFER": "transfer"}


async def live_linkedids(ami: AMIClient) -> set[str]:
    reply = await ami.action({"Action": "CoreShowChannels"}, as_list=True)
    return {str(m.get("Linkedid", "")) for m in reply if m.get("Event") == "CoreShowChannel"}


async def reconcile(services: Services, ami: AMIClient, log_dir: Path) -> int:
    """Close the calls that ended while we were not listening; how many were closed."""
    live = await live_linkedids(ami)
    await services.recorder.sync()
    await finish_ended(services)
    async with services.sessions() as session:
        open_calls = set(await session.scalars(
            select(Call.linkedid).where(Call.ended_at.is_(None))
            .order_by(Call.id.desc()).limit(OPEN_CALLS_CHECKED)))
    gone = open_calls - live
    if not gone:
        return 0
    rows = await asyncio.to_thread(read_cdr, log_dir / CDR_FILE, gone)
    queue_log = await asyncio.to_thread(read_queue_log, log_dir / "queue_log",
                                        {r.uniqueid for r in rows})
    put = services.recorder.put
    now = services.clock()
    for linkedid in sorted(gone):
        complete_call(put, linkedid, [r for r in rows if r.linkedid == linkedid], queue_log,
                      now)
    log.info("reconciled %d calls that ended while AMI was away (%d from CDR)",
             len(gone), len({r.linkedid for r in rows}))
    await services.recorder.sync()
    return len(gone)


def complete_call(put: Callable[[Fact], object], linkedid: str, mine: list[CdrRow],
                  queue_log: list[QueueLogLine], now: datetime) -> None:
    """A call's queue, operator legs, abandon and end from its CDR lines and queue_log,
    flagged recovered (and fallback when a line says it passed agi-fail)."""
    callids = {r.uniqueid for r in mine}
    queued = [q for q in queue_log if q.callid in callids]
    put(Flagged(linkedid, True, any(r.mark == "agi-fail" for r in mine), now))
    enter = next((q for q in queued if q.event == "ENTERQUEUE"), None)
    if enter is not None:
        put(QueueJoined(linkedid, enter.queue, enter.at))
    abandon = next((q for q in queued if q.event == "ABANDON"), None)
    if abandon is not None:
        put(Abandoned(linkedid, abandon.at))
    for record in mine:
        # An operator's part of the call: the queue's answered record, member as peer.
        if record.lastapp == "Queue" and record.disposition == "ANSWERED" \
                and record.dstchannel and record.end is not None:
            _queue_leg(put, linkedid, record, queue_log)
    ends = [r.end for r in mine if r.end is not None]
    put(Ended(linkedid, max(ends) if ends else now))


async def finish_ended(services: Services) -> int:
    """Give their final outcome to calls whose end was recorded while their outcome was
    not (a record written before outcomes were final, a fact lost from a torn spool
    line); how many. Calls closed from here on get it with their end."""
    async with services.sessions() as session, session.begin():
        result = await session.execute(FINISH_ENDED)
    swept = int(getattr(result, "rowcount", 0) or 0)
    if swept:
        log.info("gave a final outcome to %d ended calls", swept)
    return swept


def _queue_leg(put: Callable[[Fact], object], linkedid: str, record: CdrRow,
               queue_log: list[QueueLogLine]) -> None:
    """The leg of a queue record: answered at queue_log's CONNECT (whole seconds), ended
    at the record's end; who hung up from queue_log's COMPLETE… line."""
    assert record.end is not None
    lines = [q for q in queue_log if q.callid == record.uniqueid
             and (record.start or record.end) - SLACK <= q.at <= record.end + SLACK]
    connect = next((q.at for q in lines if q.event == "CONNECT"), None)
    answered = connect or record.answer or record.end
    done = next((q.event for q in lines if q.event in QUEUE_HANGUP_BY), "")
    talk = max(0, round((record.end - answered).total_seconds()))
    put(LegAnswered(linkedid, record.dstchannel, extension_of(record.dstchannel), answered))
    put(LegEnded(linkedid, record.dstchannel, talk, QUEUE_HANGUP_BY.get(done, ""),
                 record.end))


SLACK = timedelta(seconds=1)  # queue_log keeps whole seconds
