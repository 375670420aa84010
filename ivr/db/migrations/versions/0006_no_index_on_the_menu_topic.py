"""no index on the menu topic

Every query by a call's topic takes the operator's journal topic first
(``coalesce(journal_topic, topic, …)`` in the supervisors' reports), which no index on
``topic`` can serve; ``ix_calls_topic`` only cost every new call an index write (the
recorder writes the menu's topic with the call's row).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 22:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_topic')


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_topic', ['topic'], unique=False)
