"""Reception bookings: accessibility needs as a fixed list (R-P5).

Hearing, sight and mobility become flags that change how notices are sent; the existing
free-text column keeps whatever else the citizen asked for.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels = None
depends_on = None

NEEDS = ('need_hearing', 'need_sight', 'need_mobility')


def upgrade() -> None:
    with op.batch_alter_table('reception_bookings') as batch:
        for name in NEEDS:
            batch.add_column(sa.Column(name, sa.Boolean(), server_default=sa.false(),
                                       nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('reception_bookings') as batch:
        for name in reversed(NEEDS):
            batch.drop_column(name)
