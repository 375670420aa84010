"""Agent states as facts: ready, paused with reason, on a call, wrap-up (issue 29).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels = None
depends_on = None

STATES = ('ready', 'paused', 'on_call', 'wrapup', 'offline')


def upgrade() -> None:
    op.create_table(
        'agent_states',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('extension', sa.String(20), nullable=False),
        sa.Column('staff_id', sa.Integer(), sa.ForeignKey('staff.id'), nullable=True),
        sa.Column('state', sa.Enum(*STATES, name='agentstate', native_enum=False,
                                   create_constraint=True, length=32), nullable=False),
        sa.Column('reason', sa.String(100), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('extension', 'at', 'state'),
    )
    op.create_index('ix_agent_states_staff_at', 'agent_states', ['staff_id', 'at'])


def downgrade() -> None:
    op.drop_index('ix_agent_states_staff_at', table_name='agent_states')
    op.drop_table('agent_states')
