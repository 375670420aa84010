"""Call recordings linked to calls and legs (issue 30).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels = None
depends_on = None

KINDS = ('queue', 'transfer', 'consultation', 'callback')
STATUSES = ('recording', 'stored', 'failed', 'empty', 'removed')


def _one_of(column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    """An enum column's CHECK, named and written as 0001 writes them (OR on SQLite)."""
    quoted = [f"'{value}'" for value in values]
    if op.get_bind().dialect.name == 'sqlite':
        condition = ' OR '.join(f'{column} = {value}' for value in quoted)
    else:
        condition = f"{column} IN ({', '.join(quoted)})"
    return sa.CheckConstraint(condition, name=op.f(f'ck_call_recordings_{column}'))


def upgrade() -> None:
    op.create_table(
        'call_recordings',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('linkedid', sa.String(150), nullable=False),
        sa.Column('call_id', sa.Integer(), sa.ForeignKey('calls.id', ondelete='CASCADE'),
                  nullable=True),
        sa.Column('leg_id', sa.Integer(),
                  sa.ForeignKey('call_legs.id', ondelete='SET NULL'), nullable=True),
        sa.Column('uniqueid', sa.String(150), nullable=False),
        sa.Column('channel', sa.String(150), nullable=False),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('status', sa.String(32), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stored_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('path', sa.String(300), nullable=True),
        sa.Column('duration_seconds', sa.Float(), nullable=True),
        sa.Column('size_bytes', sa.Integer(), nullable=True),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('uniqueid'),
        _one_of('kind', KINDS),
        _one_of('status', STATUSES),
    )
    for column in ('linkedid', 'call_id', 'status', 'started_at'):
        op.create_index(f'ix_call_recordings_{column}', 'call_recordings', [column])


def downgrade() -> None:
    for column in ('linkedid', 'call_id', 'status', 'started_at'):
        op.drop_index(f'ix_call_recordings_{column}', table_name='call_recordings')
    op.drop_table('call_recordings')
