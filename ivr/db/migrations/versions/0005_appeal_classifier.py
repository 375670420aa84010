"""appeal classifier and violations

The ministry's classifier of appeal topics (R-A1), seeded with a starting list that
administrators edit from then on; each appeal refers to its topic. The violations found
while an appeal was considered, with their causes (R-A10), one row each.

The appeal's new column is added in place (``ALTER TABLE … ADD COLUMN … REFERENCES``, which
SQLite allows for a column that defaults to NULL), so the table keeps its CHECK constraints
without a rebuild.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A starting classifier; administrators edit it from then on.
STARTING_TOPICS = (
    ('01.01', 'Пособия'),
    ('01.02', 'Субсидии'),
    ('01.03', 'Меры социальной поддержки'),
    ('01.04', 'Компенсации'),
    ('02.01', 'Социальное обслуживание'),
    ('02.02', 'Опека и попечительство'),
    ('03.01', 'Занятость населения'),
    ('03.02', 'Оплата и охрана труда'),
    ('04.01', 'Государственные услуги'),
    ('05.01', 'Работа министерства и его учреждений'),
    ('99.99', 'Прочее'),
)


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    topics = op.create_table(
        'appeal_topics',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=20), nullable=False),
        sa.Column('title', sa.String(length=100), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', _when(), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                  nullable=False),
        sa.Column('updated_at', _when(), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                  nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_appeal_topics')),
        sa.UniqueConstraint('code', name=op.f('uq_appeal_topics_code')),
        sa.UniqueConstraint('title', name=op.f('uq_appeal_topics_title')))
    op.bulk_insert(topics, [{'code': code, 'title': title, 'active': True}
                            for code, title in STARTING_TOPICS])
    if op.get_context().dialect.name == 'sqlite':
        op.execute('ALTER TABLE appeals ADD COLUMN topic_id INTEGER '
                   'CONSTRAINT fk_appeals_topic_id_appeal_topics '
                   'REFERENCES appeal_topics (id)')
    else:
        op.add_column('appeals', sa.Column('topic_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_appeals_topic_id_appeal_topics'), 'appeals',
                              'appeal_topics', ['topic_id'], ['id'])
    op.create_index(op.f('ix_appeals_topic_id'), 'appeals', ['topic_id'])
    op.create_table(
        'appeal_violations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('appeal_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('cause', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['appeal_id'], ['appeals.id'], ondelete='CASCADE',
                                name=op.f('fk_appeal_violations_appeal_id_appeals')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_appeal_violations')))
    op.create_index(op.f('ix_appeal_violations_appeal_id'), 'appeal_violations',
                    ['appeal_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_appeal_violations_appeal_id'), table_name='appeal_violations')
    op.drop_table('appeal_violations')
    op.drop_index(op.f('ix_appeals_topic_id'), table_name='appeals')
    if op.get_context().dialect.name == 'sqlite':
        op.execute('ALTER TABLE appeals DROP COLUMN topic_id')
    else:
        op.drop_constraint(op.f('fk_appeals_topic_id_appeal_topics'), 'appeals',
                           type_='foreignkey')
        op.drop_column('appeals', 'topic_id')
    op.drop_table('appeal_topics')
