"""The call recorder: facts about calls (:mod:`ivr.facts`) are queued in memory and
written in batches.

A flow or an AMI handler never waits for the database: :meth:`CallRecorder.put` appends a
fact and returns. One writer task commits what has gathered, every ``interval`` seconds or
``batch`` facts, in one transaction through ``engine.begin()`` (:func:`ivr.facts.apply_facts`),
the same on SQLite and PostgreSQL.

Nothing recorded is lost when the database is away: a batch that fails to commit is
appended to a spool file on disk (JSON lines, mode 0600, fsynced, its directory fsynced
whenever a file appears, is renamed or goes), and every later fact goes behind it, so the
order is kept. The writer retries with back-off and, once the database answers, replays the
spool, oldest first, dropping each chunk from it once committed. A spool left by an earlier
run is replayed from :meth:`CallRecorder.start`. A fact the database refuses for its content
is kept in the rejects file beside the spool and holds back nothing else.

The spool is bounded (``max_spool_bytes``): once it is full, new facts are refused — each
refusal logged as an error (an audit entry in full: the log is then its only trace) and
counted in ``stats["refused"]`` — until the database is back and the spool drains. Facts
already accepted are always kept.

Code that reads a call's row right after recording (a callback that links to the call, the
rating) first awaits :meth:`CallRecorder.sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from .db.models import CallOutcome, IvrStep
from .facts import (
    FACTS,
    Abandoned,
    Arrival,
    Audited,
    Ended,
    Fact,
    Flagged,
    LegAnswered,
    LegEnded,
    MenuKey,
    Outcome,
    QueueJoined,
    Rated,
    Step,
    apply_facts,
    fact_from_json,
)
from .phone import normalise

# The facts are recorded through here: their classes are importable from here too.
__all__ = ["FACTS", "Abandoned", "Arrival", "Audited", "CallRecorder", "Ended", "Fact",
           "Flagged", "LegAnswered", "LegEnded", "MenuKey", "Outcome", "QueueJoined", "Rated",
           "Step", "apply_facts", "fact_from_json"]

log = logging.getLogger(__name__)

REPLAY_CHUNK = 5000  # spooled facts per transaction of a replay


def _unavailable_error(exc: Exception) -> bool:
    """True when the database cannot be reached (or went away mid-write, or another
    writer held it too long): worth retrying as it is. False when the facts themselves were
    refused — a constraint, a value the driver or SQLAlchemy rejects before sending: the
    same batch would fail again."""
    if isinstance(exc, (IntegrityError, DataError)):
        return False
    return isinstance(exc, (OSError, DBAPIError, PoolTimeout))


# --- the writer ---------------------------------------------------------------------------


class CallRecorder:
    def __init__(
        self, engine: AsyncEngine, *, spool: Path, batch: int = 200, interval: float = 0.05,
        max_spool_bytes: int = 64 * 1024 * 1024, retry_max_delay: float = 10.0,
    ) -> None:
        self.engine = engine
        self.spool = spool
        self.rejects = spool.with_suffix(".rejected.jsonl")
        self.batch = batch
        self.interval = interval
        self.max_spool_bytes = max_spool_bytes
        self.retry_max_delay = retry_max_delay
        # Counters for the logs and /metrics; "refused": facts turned away by a full spool.
        self.stats = dict.fromkeys(
            ("committed", "batches", "spooled", "replayed", "rejected", "refused"), 0)
        self._pending: list[Fact] = []
        self._spool_bytes = _size(spool)
        self._put = 0    # facts accepted
        self._done = 0   # facts committed, kept aside as rejects, or spooled
        self._wake = asyncio.Event()  # a fact came
        self._now = asyncio.Event()   # write without gathering: full batch, sync(), close()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def backlog(self) -> int:
        """Facts accepted and not yet committed, spooled or set aside."""
        return self._put - self._done

    @property
    def spool_bytes(self) -> int:
        return self._spool_bytes

    # --- recording (never waits) ---

    def arrival(self, linkedid: str, caller: str, dialed: str, at: datetime) -> None:
        self.put(Arrival(linkedid, normalise(caller), dialed, at))

    def menu(self, linkedid: str, key: str, topic: str | None = None,
             queue: str | None = None) -> None:
        self.put(MenuKey(linkedid, key, topic, queue))

    def step(self, linkedid: str, step: IvrStep, *, delivered: bool = False) -> None:
        self.put(Step(linkedid, step.value, delivered))

    def outcome(self, linkedid: str, outcome: CallOutcome) -> None:
        self.put(Outcome(linkedid, outcome.value))

    def rated(self, linkedid: str, *, extension: str | None, answer_received: bool | None,
              quality: str | None, status: str, from_queue: bool, at: datetime) -> None:
        self.put(Rated(linkedid, extension, answer_received, quality, status, from_queue, at))

    def ended(self, linkedid: str, at: datetime) -> None:
        self.put(Ended(linkedid, at))

    def put(self, fact: Fact) -> bool:
        """Queue ``fact`` for the writer. False when it is refused because the spool is
        full: logged as an error and counted in ``stats["refused"]``."""
        if self._closing:
            raise RuntimeError("the call recorder is closed")
        self._start_writer()  # also to drain a full spool left by an earlier run
        if self._spool_bytes >= self.max_spool_bytes:
            self._refuse(fact)
            return False
        self._put += 1
        self._pending.append(fact)
        self._wake.set()
        if len(self._pending) >= self.batch:
            self._now.set()
        return True

    def _refuse(self, fact: Fact) -> None:
        self.stats["refused"] += 1
        if isinstance(fact, Audited):
            # Its only trace now: the audit log must not lose an entry unseen.
            log.critical("call recorder: spool full; audit entry NOT recorded: %s",
                         fact.to_json())
            return
        log.error("call recorder: spool %s full (%d bytes, limit %d); %s fact of call %r "
                  "refused (%d so far)", self.spool, self._spool_bytes, self.max_spool_bytes,
                  fact.kind, fact.linkedid, self.stats["refused"])

    async def start(self) -> None:
        """Start the writer: a spool left by an earlier run is replayed without waiting for
        a first fact. (The first fact starts it too.)"""
        self._start_writer()

    def _start_writer(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="recorder")

    async def sync(self, timeout: float = 30.0) -> None:
        """Return once every fact recorded so far is committed (or spooled, when the
        database is away)."""
        target = self._put
        if self._done >= target:
            return
        self._now.set()
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self._done >= target),
                                   timeout)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._wake.set()
            self._now.set()
            await self._task
            self._task = None

    # --- writing ---

    async def _run(self) -> None:
        delay = 0.0
        while True:
            await self._wait(delay)
            try:
                ok = await self._write_once()
            except Exception:  # e.g. the spool's disk is full: log, retry, never stop
                log.exception("call recorder: write failed; retrying")
                ok = False
            delay = 0.0 if ok else min(self.retry_max_delay, max(0.5, delay * 2))
            if self._closing and (not ok or not self._pending):
                self._finish()
                return

    async def _wait(self, delay: float) -> None:
        """Until there is something to write: after a failure, ``delay`` (the retry's
        back-off); else the first fact, then ``interval`` for its batch to gather. A full
        batch, sync() and close() cut either short."""
        if self._closing:
            return
        if not delay and not self._pending and not self._spool_bytes:
            self._wake.clear()
            await self._wake.wait()  # idle: no timer runs
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay or self.interval):
                await self._now.wait()
        self._now.clear()

    def _finish(self) -> None:
        """Closing: what is still pending goes to the spool; should even that fail, to the
        log, fact by fact."""
        if not self._pending:
            return
        facts, self._pending = self._pending, []
        try:
            self._spool(facts)
            self._done += len(facts)
        except OSError:
            for fact in facts:
                log.critical("call recorder: database and spool both failing at close; "
                             "fact NOT recorded: %s", fact.to_json())

    async def _write_once(self) -> bool:
        """One round: the spool first (its facts are older), then every pending fact in
        batches. False when the database is away: what was not written is spooled, behind
        what was spooled before. Facts neither written nor spooled (the spool failed) go
        back in front of the pending ones."""
        facts, self._pending = self._pending, []
        done = 0
        try:
            ok = await self._replay()
            while ok and done < len(facts):
                part = facts[done:done + self.batch]
                left = await self._write(part)
                done += len(part) - len(left)
                ok = not left
            if not ok and done < len(facts):
                self._spool(facts[done:])
                done = len(facts)
            return ok
        finally:
            self._pending[:0] = facts[done:]
            self._done += done
            async with self._progress:
                self._progress.notify_all()

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

    async def _commit(self, facts: Sequence[Fact]) -> None:
        """One transaction."""
        async with self.engine.begin() as conn:
            await conn.run_sync(apply_facts, facts)
        self.stats["batches"] += 1

    def _unavailable(self, exc: BaseException, count: int) -> None:
        log.error("call recorder: database unavailable (%s: %.200s); spooling %d facts",
                  exc.__class__.__name__, exc, count + len(self._pending))

    def _reject(self, fact: Fact, exc: BaseException) -> None:
        self.stats["rejected"] += 1
        log.error("call recorder: fact refused by the database, kept in %s: %s (%.200s)",
                  self.rejects, fact, exc)
        line = json.dumps({"fact": json.loads(fact.to_json()), "error": str(exc)[:500]},
                          ensure_ascii=False)
        _append(self.rejects, (line + "\n").encode())

    # --- the spool ---

    async def _replay(self) -> bool:
        """Write the spooled facts, oldest first, a chunk per transaction, each chunk
        dropped from the spool once committed. True once the spool is empty."""
        replayed = 0
        while self.spool.exists():
            head = self._spool_head(REPLAY_CHUNK)
            facts = [fact for fact, _ in head if fact is not None]
            left = await self._write(facts) if facts else []
            written = len(facts) - len(left)
            replayed += written
            self.stats["replayed"] += written
            self._drop_spool_head(_end_of(head, written, whole=not left))
            if left:
                return False
        if replayed:
            log.info("call recorder: replayed %d spooled facts", replayed)
        return True

    def _spool_head(self, count: int) -> list[tuple[Fact | None, int]]:
        """The spool's first ``count`` lines: each one's fact (None for a line a crash tore
        mid-write: the only fact that can be lost this way) and the offset it ends at."""
        head: list[tuple[Fact | None, int]] = []
        end = 0
        with self.spool.open("rb") as spool:
            for number, line in enumerate(itertools.islice(spool, count), 1):
                end += len(line)
                try:
                    head.append((fact_from_json(line) if line.strip() else None, end))
                except (ValueError, KeyError, TypeError):
                    log.error("call recorder: unreadable spool line %d skipped: %.80r",
                              number, line)
                    head.append((None, end))
        return head

    def _spool(self, facts: Sequence[Fact]) -> None:
        _append(self.spool, "".join(fact.to_json() + "\n" for fact in facts).encode())
        self._spool_bytes = _size(self.spool)
        self.stats["spooled"] += len(facts)

    def _drop_spool_head(self, offset: int) -> None:
        """The spool without its first ``offset`` bytes, in one step: a crash leaves the
        old file or the new."""
        if offset >= _size(self.spool):
            self.spool.unlink()
            _fsync_dir(self.spool.parent)
        elif offset:
            with self.spool.open("rb") as spool:
                spool.seek(offset)
                _replace(self.spool, spool)
        self._spool_bytes = _size(self.spool)


def _end_of(head: list[tuple[Fact | None, int]], written: int, whole: bool) -> int:
    """Where the spool's written part ends: after the head's first ``written`` facts (and
    any unreadable lines before the next), or after the whole head."""
    end = 0
    for fact, line_end in head:
        if fact is not None and not whole:
            if not written:
                break
            written -= 1
        end = line_end
    return end


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fsync_dir(directory: Path) -> None:
    """Make a file's creation, renaming or removal in ``directory`` survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_private(path: Path, flags: int) -> int:
    """Spooled facts and rejects hold callers' numbers and audit entries: owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # a file made by an older version with the umask's mode
    return fd


def _append(path: Path, data: bytes) -> None:
    """Append ``data`` and fsync it; a new file's directory is fsynced too. A last line
    torn by a crash is ended first, so it spoils only itself."""
    fd = _open_private(path, os.O_RDWR | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        with os.fdopen(os.dup(fd), "ab") as out:
            out.write(data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not size:
        _fsync_dir(path.parent)


def _replace(path: Path, content: IO[bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    with os.fdopen(_open_private(tmp, os.O_WRONLY | os.O_TRUNC), "wb") as out:
        shutil.copyfileobj(content, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
