"""Engine and session factory: SQLite (WAL) or PostgreSQL, both through asyncio drivers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, exc, inspect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

SQLITE_PREFIX = "sqlite+aiosqlite:///"
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the panel read while the AMI writer commits; busy_timeout rides out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA database_list")
    path = cursor.fetchone()[2]
    cursor.close()
    record.info["sqlite_file"] = (path, _identity(path))


def _identity(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _same_sqlite_file(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLite goes on writing, without an error, into a database file deleted or replaced
    under its open connection (in WAL mode): what the call recorder commits there would be
    lost unseen. Such a connection is dropped at checkout and a new one opens the file that
    is there now (none: SQLite makes an empty one, and writes fail until it is migrated or
    restored, so the recorder spools)."""
    path, identity = record.info.get("sqlite_file", ("", None))
    if path and identity != _identity(path):
        raise exc.DisconnectionError(f"SQLite database file {path} was removed or replaced")


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
        event.listen(engine.sync_engine, "checkout", _same_sqlite_file)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True, pool_size=10)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_for_render(url: str, table: str,
                    job: Callable[[AsyncSession], Awaitable[T]]) -> T | None:
    """For the (synchronous) Asterisk config rendering, whether or not an event loop runs
    in this thread: ``job`` in one transaction on a throwaway engine, or None while the
    database has no ``table`` yet (never migrated)."""
    async def run() -> T | None:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                migrated = await conn.run_sync(lambda c: inspect(c).has_table(table))
            if not migrated:
                return None
            async with make_sessionmaker(engine)() as session, session.begin():
                return await job(session)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()
