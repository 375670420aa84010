"""Declarative base and column types shared by every model."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, DateTime, Index, MetaData, func, literal, or_, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so the same Alembic migrations work on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index of the rows where ``where`` (SQL) holds, on SQLite and PostgreSQL alike."""
    clause = text(where)
    return Index(name, *columns, unique=unique, sqlite_where=clause, postgresql_where=clause)


@compiles(CheckConstraint, "sqlite")
def _check_on_sqlite(constraint: CheckConstraint, compiler: Any, **kw: Any) -> str:
    """An enum's constraint, ``x IN ('a', 'b', 'c', …)``, as ``x = 'a' OR x = 'b' OR …``
    on SQLite: the same test for every value, NULL included, but SQLite evaluates an IN list
    of three or more constants in a CHECK constraint by building a temporary table of the
    list for every row it writes (its "once" guard does not apply there) — half of what
    inserting a call cost. The initial migration writes its constraints in the same form."""
    values = _in_list(constraint.sqltext)
    if values is not None:
        left = constraint.sqltext.left  # type: ignore[attr-defined]
        constraint = copy.copy(constraint)
        constraint.sqltext = or_(*(left == literal(value) for value in values))
    return str(compiler.visit_check_constraint(constraint, **kw))


def _in_list(sqltext: Any) -> list[Any] | None:
    """The constants of ``x IN (…)`` (as Enum makes its constraint), else None."""
    if (isinstance(sqltext, BinaryExpression) and sqltext.operator is operators.in_op
            and isinstance(sqltext.right, BindParameter) and sqltext.right.expanding
            and isinstance(sqltext.right.value, (list, tuple)) and sqltext.right.value):
        return list(sqltext.right.value)
    return None


class UTCDateTime(TypeDecorator[datetime]):
    """An aware timestamp, stored in UTC on every backend and read back aware in UTC.

    Naive datetimes are refused: a time without a zone is a bug waiting for the second
    ministry in another time zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        # SQLite keeps text; store it naive-in-UTC so ordering by the text is ordering by time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


# Search structures kept by migrations, not models (dialect-specific full text search):
# SQLite's FTS5 table and its shadow tables, PostgreSQL's generated tsvector column.
def managed_outside_models(name: str | None, type_: Any, parent: Any) -> bool:
    """Alembic ``include_name``: False for what the models deliberately do not declare."""
    if type_ == "table" and name and name.startswith("kb_fts"):
        return False
    if type_ == "column" and name == "search_vector":
        return False
    return not (type_ == "index" and name == "ix_kb_articles_search_vector")
