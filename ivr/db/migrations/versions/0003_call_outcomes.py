"""call outcomes: where a caller left the IVR

Every call that ended gets a final outcome: a caller who hangs up in the IVR is
``self_service`` when the IVR told them what they chose, else the new ``ivr_abandoned``.
``calls.ivr_step`` keeps the step they reached last (greeting, menu, hours, …) and
``calls.self_served`` whether the information was delivered. Calls left ``in_progress``
after their end by earlier versions are given their outcome here. On SQLite the new CHECK
rebuilds the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ('in_progress', 'self_service', 'answered', 'abandoned', 'callback_requested',
            'after_hours', 'failed')
NEW = 'ivr_abandoned'


def _one_of(column: str, values: Sequence[str]) -> sa.TextClause:
    """An enum's CHECK condition, in the form 0001 uses on each database."""
    quoted = [f"'{value}'" for value in values]
    if op.get_context().dialect.name == 'sqlite':
        return sa.text(' OR '.join(f'{column} = {value}' for value in quoted))
    return sa.text(f"{column} IN ({', '.join(quoted)})")


def _outcomes(values: Sequence[str]) -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_constraint(op.f('ck_calls_outcome'), type_='check')
        batch.create_check_constraint(op.f('ck_calls_outcome'), _one_of('outcome', values))


def upgrade() -> None:
    op.add_column('calls', sa.Column('ivr_step', sa.String(length=30), nullable=True))
    op.add_column('calls', sa.Column('self_served', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    _outcomes((*OUTCOMES, NEW))
    # Ended before outcomes were final: queued and never answered is abandoned, the rest
    # left in the IVR (what they heard is not known).
    op.execute("UPDATE calls SET outcome = CASE WHEN queue_joined_at IS NOT NULL"
               " THEN 'abandoned' ELSE 'ivr_abandoned' END"
               " WHERE ended_at IS NOT NULL AND outcome = 'in_progress'")


def downgrade() -> None:
    op.execute(f"UPDATE calls SET outcome = 'failed' WHERE outcome = '{NEW}'")
    _outcomes(OUTCOMES)
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('self_served')
        batch.drop_column('ivr_step')
