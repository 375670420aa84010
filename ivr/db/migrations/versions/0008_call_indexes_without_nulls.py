"""call indexes without NULLs

A call's operator and citizen are NULL when its row is made (the operator is known when
one answers, the citizen only for a number a citizen gave), and for every call nobody
answered. ``ix_calls_operator_id`` and ``ix_calls_citizen_id`` kept an entry for each of
those NULLs, which no query looks up (the journal's ``operator_id = ?``, a foreign key's
check on ``citizen_id = ?``: an equality never matches NULL, so both databases use an
index that leaves NULL out). Made partial, they are two index pages fewer for every new
call's insert to write: six WAL frames -> four, counted by strace on SQLite.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTIAL = ('citizen_id', 'operator_id')


def upgrade() -> None:
    for column in _PARTIAL:
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(f'ix_calls_{column}', table_name='calls')
        op.create_index(f'ix_calls_{column}', 'calls', [column],
                        sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for column in _PARTIAL:
        op.drop_index(f'ix_calls_{column}', table_name='calls')
        op.create_index(f'ix_calls_{column}', 'calls', [column])
