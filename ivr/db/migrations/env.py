"""Alembic environment: async engines; batch mode so ALTERs also work on SQLite."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from ivr.db import models  # noqa: F401  (registers every table)
from ivr.db.base import Base, UTCDateTime, managed_outside_models
from ivr.db.engine import make_engine

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, _autogen: AutogenContext) -> str | Literal[False]:
    """Render our string enums without a type name: a named type gives every column of that
    enum the same CHECK constraint name, which PostgreSQL refuses within one table. Render
    our timestamp as the plain type it creates: a migration imports no model code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, sa.Enum) and not obj.native_enum:
        values = ", ".join(repr(v) for v in obj.enums)
        return f"sa.Enum({values}, native_enum=False, create_constraint=True, length={obj.length})"
    return False


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch ALTER rebuilds a table (copy, drop the old, rename): with foreign keys
        # enforced, dropping the old table deletes every row referring to it through ON
        # DELETE CASCADE (a call's legs, transfers, rating, journal). SQLite ignores this
        # pragma inside a transaction: set before the migrations' one, checked after it.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=managed_outside_models,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check")
                       .fetchall()):
            raise RuntimeError(f"migration left rows with broken references: {broken[:5]}")


async def _run_async() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
