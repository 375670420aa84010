"""Engine and session factory: SQLite (WAL) or PostgreSQL, both through asyncio drivers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, QueuePool, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

SQLITE_PREFIX = "sqlite+aiosqlite:///"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the panel read while the AMI writer commits; busy_timeout rides out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer. Several connections make concurrent writers meet SQLite's
        # busy handler, which sleeps in growing steps (p99 of ~0.7 s at 20 calls in
        # bench/agi_roundtrip.py); one connection queues them in order instead.
        engine = create_async_engine(url, echo=echo, pool_size=1, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True, pool_size=10)


def _recorder_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    # The call recorder commits on the event loop: it must never sleep in SQLite's busy
    # handler (it hands a locked batch to a thread instead), nor checkpoint in a commit
    # (it checkpoints from a thread).
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def make_sync_sqlite_engine(url: str) -> Engine | None:
    """For SQLite, the call recorder's plain engine on the same file: a batch is written
    through it in one synchronous call, where aiosqlite hands every statement, commit and
    pool reset to its thread and back. None for other databases."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    engine = create_engine("sqlite:///" + url[len(SQLITE_PREFIX):], pool_size=1,
                           max_overflow=0, poolclass=QueuePool)
    event.listen(engine, "connect", _recorder_pragmas)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
