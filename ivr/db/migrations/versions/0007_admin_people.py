"""Administration of people: retired reception officials and their days off (issue 28).

Officials can be retired (``officials.active``) without losing their history, and the
days they do not receive (vacation, a cancelled day) are kept as reception exceptions.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels = None
depends_on = None

KINDS = ('vacation', 'cancelled')


def _sqlite() -> bool:
    return op.get_bind().dialect.name == 'sqlite'


def _kind_check() -> sa.CheckConstraint:
    quoted = [f"'{kind}'" for kind in KINDS]
    condition = (' OR '.join(f'kind = {value}' for value in quoted) if _sqlite()
                 else f"kind IN ({', '.join(quoted)})")
    return sa.CheckConstraint(condition, name=op.f('ck_reception_exceptions_kind'))


def upgrade() -> None:
    with op.batch_alter_table('officials') as batch:
        batch.add_column(sa.Column('active', sa.Boolean(), server_default=sa.true(),
                                   nullable=False))
    op.create_table(
        'reception_exceptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('official_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True),
                  server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True),
                  server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        _kind_check(),
        sa.ForeignKeyConstraint(['official_id'], ['officials.id'], ondelete='CASCADE',
                                name=op.f('fk_reception_exceptions_official_id_officials')),
        sa.ForeignKeyConstraint(['created_by_id'], ['staff.id'],
                                name=op.f('fk_reception_exceptions_created_by_id_staff')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reception_exceptions')))
    op.create_index(op.f('ix_reception_exceptions_official_id'), 'reception_exceptions',
                    ['official_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_reception_exceptions_official_id'),
                  table_name='reception_exceptions')
    op.drop_table('reception_exceptions')
    with op.batch_alter_table('officials') as batch:
        batch.drop_column('active')
