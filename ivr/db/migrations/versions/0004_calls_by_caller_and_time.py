"""calls by caller and time

The citizen's card lists a caller's latest calls: one index on (caller_number, started_at)
serves it without scanning the calls of everyone else.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 07:58:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_caller_started', ['caller_number', 'started_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_caller_started')
