"""Alembic, driven from code: ``hotline db upgrade`` and the tests use the same path."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _in_thread(fn: Callable[..., None], *args: object) -> None:
    # env.py runs its own event loop with asyncio.run, which must not touch the caller's.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(fn, *args).result()


def upgrade(url: str, revision: str = "heads") -> None:
    _in_thread(command.upgrade, alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    _in_thread(command.downgrade, alembic_config(url), revision)


def head_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


async def applied_revisions(url: str) -> set[str]:
    """The revisions the database says it is at (empty: never migrated)."""
    from sqlalchemy import inspect, text

    from .engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            known = await conn.run_sync(lambda c: inspect(c).has_table("alembic_version"))
            if not known:
                return set()
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return {str(r[0]) for r in rows}
    finally:
        await engine.dispose()
