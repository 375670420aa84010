"""journal entries per operator

The question journal (R-H6) moves from the call row to its own table, one entry per call and
operator: after a transfer the colleague writes their own entry instead of overwriting the
first operator's. Existing entries are carried over (the employee who wrote one is its
operator); then the journal columns leave ``calls``. On SQLite the column drop rebuilds the
table (its foreign keys and CHECK constraint forbid a plain DROP COLUMN).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ('answered', 'transferred', 'callback', 'referred_to_agency', 'not_in_competence')
FOREIGN = (('journal_agency_id', 'agencies'), ('journal_article_id', 'kb_articles'),
           ('journal_by_id', 'staff'))
PLAIN = (('journal_topic', sa.String(length=50)), ('journal_question', sa.Text()),
         ('journal_answer', sa.Text()), ('journal_outcome', sa.String(length=32)),
         ('journal_at', sa.DateTime(timezone=True)))


def _sqlite() -> bool:
    return op.get_context().dialect.name == 'sqlite'


def _one_of(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    """An enum's CHECK, in the form 0001 uses on each database."""
    quoted = [f"'{value}'" for value in values]
    condition = (' OR '.join(f'{column} = {value}' for value in quoted) if _sqlite()
                 else f"{column} IN ({', '.join(quoted)})")
    return sa.CheckConstraint(condition, name=op.f(f'ck_{table}_{column}'))


def _fk(table: str, column: str, target: str, ondelete: str | None = None
        ) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], ondelete=ondelete,
                                   name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade() -> None:
    op.create_table(
        'journal_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('topic', sa.String(length=50), nullable=False),
        sa.Column('question', sa.Text(), nullable=True),
        sa.Column('answer', sa.Text(), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('agency_id', sa.Integer(), nullable=True),
        sa.Column('article_id', sa.Integer(), nullable=True),
        sa.Column('written_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_entries')),
        _fk('journal_entries', 'call_id', 'calls', ondelete='CASCADE'),
        _fk('journal_entries', 'operator_id', 'staff'),
        _fk('journal_entries', 'agency_id', 'agencies'),
        _fk('journal_entries', 'article_id', 'kb_articles'),
        sa.UniqueConstraint('call_id', 'operator_id',
                            name=op.f('uq_journal_entries_call_id_operator_id')),
        _one_of('journal_entries', 'outcome', OUTCOMES))
    op.create_index(op.f('ix_journal_entries_operator_id'), 'journal_entries', ['operator_id'])
    op.execute(
        'INSERT INTO journal_entries (call_id, operator_id, topic, question, answer, outcome,'
        ' agency_id, article_id, written_at)'
        " SELECT id, journal_by_id, coalesce(journal_topic, ''), journal_question,"
        ' journal_answer, journal_outcome, journal_agency_id, journal_article_id,'
        ' coalesce(journal_at, updated_at) FROM calls'
        ' WHERE journal_outcome IS NOT NULL AND journal_by_id IS NOT NULL')
    with op.batch_alter_table('calls') as batch:
        # A column's foreign key goes with it; the table-level CHECK is named on its own.
        batch.drop_constraint(op.f('ck_calls_journal_outcome'), type_='check')
        for column in [c for c, _ in FOREIGN] + [c for c, _ in PLAIN]:
            batch.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        for column, type_ in PLAIN:
            batch.add_column(sa.Column(column, type_, nullable=True))
        for column, _ in FOREIGN:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))
        for column, target in FOREIGN:
            batch.create_foreign_key(op.f(f'fk_calls_{column}_{target}'), target,
                                     [column], ['id'])
        batch.create_check_constraint(op.f('ck_calls_journal_outcome'),
                                      _one_of('calls', 'journal_outcome', OUTCOMES).sqltext)
    # The first entry of each call goes back on the call row; a colleague's is lost.
    op.execute(
        'UPDATE calls SET (journal_topic, journal_question, journal_answer, journal_outcome,'
        ' journal_agency_id, journal_article_id, journal_by_id, journal_at) ='
        ' (SELECT topic, question, answer, outcome, agency_id, article_id, operator_id,'
        ' written_at FROM journal_entries j WHERE j.call_id = calls.id ORDER BY j.id LIMIT 1)'
        ' WHERE EXISTS (SELECT 1 FROM journal_entries j WHERE j.call_id = calls.id)')
    op.drop_table('journal_entries')
