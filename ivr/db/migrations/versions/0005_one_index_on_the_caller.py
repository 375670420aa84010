"""one index on the caller

``ix_calls_caller_started`` (caller_number, started_at) answers every lookup by caller
number; the single-column index only cost every new call and every filled-in caller number
a second index write.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_caller_number')


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_caller_number', ['caller_number'], unique=False)
