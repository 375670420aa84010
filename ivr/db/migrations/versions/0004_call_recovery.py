"""call recovery: calls completed from Asterisk's records, fallbacks visible

``calls.recovered``: the call was imported or completed from Asterisk's CDR and queue_log
because the service missed it (down, killed, AMI link lost). ``calls.fallback``: the caller
passed ``agi-fail``. ``reconcile_marks``: how far the CDR has been read for calls unknown
to the records.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for column in ('recovered', 'fallback'):
        op.add_column('calls', sa.Column(column, sa.Boolean(), nullable=False,
                                         server_default=sa.false()))
    op.create_table(
        'reconcile_marks',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_reconcile_marks')))


def downgrade() -> None:
    op.drop_table('reconcile_marks')
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('fallback')
        batch.drop_column('recovered')
