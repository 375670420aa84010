"""enum checks as comparisons on SQLite

Every enum column has a CHECK constraint ``x IN ('a', 'b', 'c', …)``. SQLite evaluates an
IN list of three or more constants inside a CHECK constraint by building a temporary table
of the list for every row it writes (the "once" guard it puts on such a table elsewhere
does not apply there): a new call's row built two, half of the instructions its insert
took. The same test as ``x = 'a' OR x = 'b' OR …`` (equal for every value, NULL
included) costs a few comparisons. New tables get that form from the models (see
``ivr.db.base``); this rewrites the constraints already made.

On SQLite a CHECK constraint lives only in the table's CREATE TABLE text: the rewrite
edits that text (the procedure SQLite's documentation gives for changing constraints
without touching the stored rows, "Making Other Kinds Of Table Schema Changes"), with
no copy of any table. Every row already satisfies the new constraint, which accepts
exactly what the old one did. PostgreSQL evaluates an IN list as an array test: nothing
to change there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 05:00:00
"""

import re
from collections.abc import Callable, Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VALUE = r"'(?:[^']|'')*'"
_IN_LIST = re.compile(rf"CHECK \((\w+) IN \(({_VALUE}(?:, {_VALUE})*)\)\)")
_COMPARISONS = re.compile(rf"CHECK \((\w+) = {_VALUE}(?: OR \1 = {_VALUE})+\)")


def _as_comparisons(match: re.Match[str]) -> str:
    column, values = match.group(1), re.findall(_VALUE, match.group(2))
    return "CHECK (" + " OR ".join(f"{column} = {value}" for value in values) + ")"


def _as_in_list(match: re.Match[str]) -> str:
    column, values = match.group(1), re.findall(_VALUE, match.group(0))
    return f"CHECK ({column} IN ({', '.join(values)}))"


def _rewrite(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    tables = bind.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE '%CHECK (%'").all()
    changed = [(name, new) for name, sql in tables if (new := pattern.sub(replace, sql)) != sql]
    if not changed:
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        for name, sql in changed:
            bind.exec_driver_sql(
                "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (sql, name))
        # Every connection (this one too) reads the schema again at its next statement.
        bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    # The new texts are parsed here: one SQLite could not read fails the migration, whose
    # transaction then leaves the old ones.
    problems = bind.exec_driver_sql("PRAGMA quick_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"database check failed after rewriting constraints: {problems[:5]}")


def upgrade() -> None:
    _rewrite(_IN_LIST, _as_comparisons)


def downgrade() -> None:
    _rewrite(_COMPARISONS, _as_in_list)
