"""Menu topics, queues, operators' queue skills and the working calendar's own days (issue 28).

Settings seed the queues and topics of a fresh database (``ivr.services.menu.seed``); after
that the database rules.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ivr_queues',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('title', sa.String(length=100), nullable=False),
        sa.Column('strategy', sa.String(length=20), nullable=False),
        sa.Column('service_level_seconds', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ivr_queues')),
        sa.UniqueConstraint('name', name=op.f('uq_ivr_queues_name')))
    op.create_table(
        'menu_topics',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('digit', sa.String(length=1), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('title', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('queue_id', sa.Integer(), nullable=False),
        sa.Column('agency', sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(['queue_id'], ['ivr_queues.id'],
                                name=op.f('fk_menu_topics_queue_id_ivr_queues')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_menu_topics')),
        sa.UniqueConstraint('code', name=op.f('uq_menu_topics_code')),
        sa.UniqueConstraint('digit', name=op.f('uq_menu_topics_digit')))
    op.create_index(op.f('ix_menu_topics_queue_id'), 'menu_topics', ['queue_id'])
    op.create_table(
        'queue_skills',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('queue_id', sa.Integer(), nullable=False),
        sa.Column('penalty', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ondelete='CASCADE',
                                name=op.f('fk_queue_skills_staff_id_staff')),
        sa.ForeignKeyConstraint(['queue_id'], ['ivr_queues.id'],
                                name=op.f('fk_queue_skills_queue_id_ivr_queues')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_skills')),
        sa.UniqueConstraint('staff_id', 'queue_id', name=op.f('uq_queue_skills_staff_id_queue_id')))
    op.create_index(op.f('ix_queue_skills_queue_id'), 'queue_skills', ['queue_id'])
    op.create_table(
        'calendar_days',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('closes_at', sa.Time(), nullable=True),
        sa.Column('note', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_days')),
        sa.UniqueConstraint('day', name=op.f('uq_calendar_days_day')))


def downgrade() -> None:
    op.drop_table('calendar_days')
    op.drop_index(op.f('ix_queue_skills_queue_id'), table_name='queue_skills')
    op.drop_table('queue_skills')
    op.drop_index(op.f('ix_menu_topics_queue_id'), table_name='menu_topics')
    op.drop_table('menu_topics')
    op.drop_table('ivr_queues')
