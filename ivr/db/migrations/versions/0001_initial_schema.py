"""initial schema

The whole domain as one picture: the ministry's departments, staff and their accounts (panel
sessions, API tokens, an own SIP password per operator phone), the audit log; citizens and
their phone numbers; the knowledge base with its full-text search; appeals; calls with their
operator legs, transfers and ratings; callbacks; officials' receptions; notices and survey
answers; the plain-language dictionary (R-A7), seeded with a starting list.

Written out rather than built from the models, so it builds the same schema whatever the
models become. Enum columns are strings with a CHECK constraint: ``x IN (…)`` on PostgreSQL,
``x = 'a' OR x = 'b' …`` on SQLite, where an IN list of three or more constants in a CHECK
makes SQLite build a temporary table of the list for every row it writes. Knowledge-base
search is per database: on SQLite an FTS5 table ``kb_fts`` (rowid = article id, stemmed
title and body, kept by the knowledge-base service in the article's own transaction); on
PostgreSQL a generated ``search_vector`` (``to_tsvector('russian', …)``, title weighted
above body) with a GIN index.

Revision ID: 0001
Revises:
Create Date: 2026-12-05 12:00:00
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNELS = ('email', 'phone', 'post', 'state_portal', 'website', 'in_person', 'hotline')

# Creation order (a table after those it refers to); downgrade drops them in reverse.
TABLES = (
    'departments', 'agencies', 'staff', 'api_tokens', 'web_sessions', 'operator_phones',
    'audit_log', 'citizens', 'citizen_phones', 'kb_sections', 'kb_articles',
    'kb_section_editors', 'kb_article_versions', 'appeals', 'calls', 'call_legs', 'transfers',
    'ratings', 'callbacks', 'callback_attempts', 'callback_windows', 'officials',
    'reception_schedules', 'reception_slots', 'reception_bookings', 'notifications',
    'survey_responses', 'plain_language_terms',
)

# A starting dictionary; department staff edit it from then on.
STARTING_TERMS = (
    ('вышеуказанный', 'archaism', 'назовите предмет прямо: «этот», «названный»'),
    ('вышеизложенный', 'archaism', 'назовите предмет прямо'),
    ('нижеподписавшийся', 'archaism', 'уберите'),
    ('надлежащим образом', 'archaism', 'скажите, как именно'),
    ('в целях', 'archaism', '«чтобы»'),
    ('в связи с вышеизложенным', 'archaism', '«поэтому»'),
    ('данный', 'archaism', '«этот»'),
    ('сим', 'archaism', 'уберите'),
    ('оный', 'archaism', 'уберите'),
    ('доводим до вашего сведения', 'archaism', '«сообщаем»'),
    ('заява', 'jargon', '«заявление»'),
    ('соцзащита', 'jargon', '«органы социальной защиты»'),
    ('отписка', 'jargon', 'уберите'),
    ('допник', 'jargon', '«дополнительное соглашение»'),
    ('инвалидка', 'jargon', '«группа инвалидности»'),
    ('пенсионка', 'jargon', '«пенсионное удостоверение»'),
    ('коммуналка', 'jargon', '«плата за жилое помещение и коммунальные услуги»'),
    ('не представляется возможным', 'negative', 'скажите, что можно сделать'),
    ('вам отказано', 'negative', 'объясните причину и что можно сделать'),
    ('отказать', 'negative', 'объясните причину простыми словами'),
    ('не положено', 'negative', 'объясните, на что гражданин имеет право'),
    ('не наша компетенция', 'negative', 'назовите орган, который решит вопрос'),
    ('не относится к компетенции', 'negative', 'назовите орган, который решит вопрос'),
    ('ваше требование необоснованно', 'negative', 'объясните основания спокойно'),
    ('РФ', 'abbreviation_ok', ''),
    ('СНИЛС', 'abbreviation_ok', ''),
    ('ИНН', 'abbreviation_ok', ''),
    ('МФЦ', 'abbreviation_ok', ''),
)


def _sqlite() -> bool:
    return op.get_context().dialect.name == 'sqlite'


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column('id', sa.Integer(), nullable=False)


def _timestamps() -> tuple[sa.Column[datetime], sa.Column[datetime]]:
    return (sa.Column('created_at', _when(), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                      nullable=False),
            sa.Column('updated_at', _when(), server_default=sa.text('(CURRENT_TIMESTAMP)'),
                      nullable=False))


def _enum(column: str, nullable: bool) -> sa.Column[str]:
    return sa.Column(column, sa.String(length=32), nullable=nullable)


def _one_of(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    """The CHECK constraint of an enum column (see the module docstring for its two forms)."""
    quoted = [f"'{value}'" for value in values]
    if _sqlite():
        condition = ' OR '.join(f'{column} = {value}' for value in quoted)
    else:
        condition = f"{column} IN ({', '.join(quoted)})"
    return sa.CheckConstraint(condition, name=op.f(f'ck_{table}_{column}'))


def _fk(table: str, column: str, target: str, ondelete: str | None = None
        ) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], ondelete=ondelete,
                                   name=op.f(f'fk_{table}_{column}_{target}'))


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{table}'))


def _unique(table: str, *columns: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns, name=op.f(f"uq_{table}_{'_'.join(columns)}"))


def _indexes(table: str, *columns: str) -> None:
    for column in columns:
        op.create_index(op.f(f'ix_{table}_{column}'), table, [column])


def _partial_index(name: str, table: str, columns: list[str], where: str,
                   unique: bool = False) -> None:
    clause = sa.text(where)
    op.create_index(name, table, columns, unique=unique,
                    sqlite_where=clause, postgresql_where=clause)


def _staff_and_accounts() -> None:
    op.create_table(
        'departments', _id(),
        sa.Column('name', sa.String(length=300), nullable=False),
        sa.Column('short_name', sa.String(length=100), nullable=False),
        sa.Column('competence', sa.Text(), nullable=False),
        *_timestamps(),
        _pk('departments'), _unique('departments', 'name'))
    op.create_table(
        'agencies', _id(),
        sa.Column('name', sa.String(length=300), nullable=False),
        sa.Column('phone', sa.String(length=50), nullable=False),
        sa.Column('address', sa.Text(), nullable=False),
        sa.Column('website', sa.String(length=300), nullable=False),
        sa.Column('competence', sa.Text(), nullable=False),
        *_timestamps(),
        _pk('agencies'), _unique('agencies', 'name'))
    op.create_table(
        'staff', _id(),
        sa.Column('login', sa.String(length=100), nullable=False),
        sa.Column('surname', sa.String(length=100), nullable=False),
        sa.Column('first_name', sa.String(length=100), nullable=False),
        sa.Column('patronymic', sa.String(length=100), nullable=False),
        sa.Column('position', sa.String(length=300), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=False),
        _enum('role', nullable=False),
        sa.Column('extension', sa.String(length=20), nullable=True),
        sa.Column('phone', sa.String(length=30), nullable=False),
        sa.Column('competence', sa.Text(), nullable=False),
        sa.Column('password_hash', sa.String(length=300), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('failed_logins', sa.Integer(), nullable=False),
        sa.Column('locked_until', _when(), nullable=True),
        *_timestamps(),
        sa.Column('email', sa.String(length=254), nullable=True),
        _pk('staff'), _fk('staff', 'department_id', 'departments'),
        _unique('staff', 'extension'), _unique('staff', 'login'),
        _one_of('staff', 'role', ('operator', 'specialist', 'department_head', 'supervisor',
                                  'administrator')))
    _indexes('staff', 'department_id')
    _sessions_tokens_and_phones()


def _sessions_tokens_and_phones() -> None:
    op.create_table(
        'api_tokens', _id(),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('revoked_at', _when(), nullable=True),
        *_timestamps(),
        sa.Column('expires_at', _when(), nullable=False),
        _pk('api_tokens'), _fk('api_tokens', 'staff_id', 'staff'),
        _unique('api_tokens', 'token_hash'))
    op.create_table(
        'web_sessions', _id(),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', _when(), nullable=False),
        sa.Column('expires_at', _when(), nullable=False),
        sa.Column('revoked_at', _when(), nullable=True),
        _pk('web_sessions'), _fk('web_sessions', 'staff_id', 'staff', ondelete='CASCADE'),
        _unique('web_sessions', 'token_hash'))
    op.create_table(
        'operator_phones', _id(),
        sa.Column('extension', sa.String(length=20), nullable=False),
        sa.Column('sip_password', sa.String(length=64), nullable=False),
        *_timestamps(),
        _pk('operator_phones'), _unique('operator_phones', 'extension'))
    op.create_table(
        'audit_log', _id(),
        sa.Column('at', _when(), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('object_type', sa.String(length=40), nullable=False),
        sa.Column('object_id', sa.String(length=60), nullable=False),
        sa.Column('details', sa.Text(), nullable=False),
        sa.Column('remote_addr', sa.String(length=60), nullable=False),
        _pk('audit_log'), _fk('audit_log', 'staff_id', 'staff'))
    _indexes('audit_log', 'at', 'staff_id')


def _citizens() -> None:
    op.create_table(
        'citizens', _id(),
        sa.Column('surname', sa.String(length=100), nullable=False),
        sa.Column('first_name', sa.String(length=100), nullable=False),
        sa.Column('patronymic', sa.String(length=100), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('postal_address', sa.Text(), nullable=False),
        _enum('preferred_channel', nullable=True),
        _enum('extra_channel', nullable=True),
        sa.Column('anonymised_at', _when(), nullable=True),
        *_timestamps(),
        _pk('citizens'),
        _one_of('citizens', 'preferred_channel', CHANNELS),
        _one_of('citizens', 'extra_channel', CHANNELS))
    _indexes('citizens', 'email')
    op.create_table(
        'citizen_phones', _id(),
        sa.Column('citizen_id', sa.Integer(), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        _pk('citizen_phones'),
        _fk('citizen_phones', 'citizen_id', 'citizens', ondelete='CASCADE'),
        _unique('citizen_phones', 'phone'))


def _knowledge_base() -> None:
    op.create_table(
        'kb_sections', _id(),
        sa.Column('department_id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=300), nullable=False),
        *_timestamps(),
        _pk('kb_sections'), _fk('kb_sections', 'department_id', 'departments'),
        _unique('kb_sections', 'department_id'))
    op.create_table(
        'kb_articles', _id(),
        sa.Column('section_id', sa.Integer(), nullable=False),
        _enum('kind', nullable=False),
        sa.Column('key', sa.String(length=100), nullable=True),
        sa.Column('title', sa.String(length=500), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.Column('review_due', sa.Date(), nullable=True),
        sa.Column('update_due', sa.Date(), nullable=True),
        sa.Column('archived', sa.Boolean(), nullable=False),
        *_timestamps(),
        _pk('kb_articles'), _fk('kb_articles', 'section_id', 'kb_sections'),
        _fk('kb_articles', 'updated_by_id', 'staff'), _unique('kb_articles', 'key'),
        _one_of('kb_articles', 'kind', ('legal_act', 'faq', 'template', 'solved_task',
                                        'contacts', 'script', 'internal', 'other')))
    _indexes('kb_articles', 'review_due', 'section_id', 'update_due')
    _knowledge_base_search()
    op.create_table(
        'kb_section_editors', _id(),
        sa.Column('section_id', sa.Integer(), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        _pk('kb_section_editors'),
        _fk('kb_section_editors', 'section_id', 'kb_sections', ondelete='CASCADE'),
        _fk('kb_section_editors', 'staff_id', 'staff', ondelete='CASCADE'),
        _unique('kb_section_editors', 'section_id', 'staff_id'))
    op.create_table(
        'kb_article_versions', _id(),
        sa.Column('article_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=500), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('editor_id', sa.Integer(), nullable=True),
        sa.Column('created_at', _when(), nullable=False),
        _pk('kb_article_versions'),
        _fk('kb_article_versions', 'article_id', 'kb_articles', ondelete='CASCADE'),
        _fk('kb_article_versions', 'editor_id', 'staff'),
        _unique('kb_article_versions', 'article_id', 'version'))


def _knowledge_base_search() -> None:
    if _sqlite():
        op.execute("CREATE VIRTUAL TABLE kb_fts USING fts5(title, body, "
                   "tokenize = 'unicode61 remove_diacritics 2')")
        return
    op.execute("ALTER TABLE kb_articles ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
               "(setweight(to_tsvector('russian', coalesce(title, '')), 'A') || "
               "setweight(to_tsvector('russian', coalesce(body, '')), 'B')) STORED")
    op.execute("CREATE INDEX ix_kb_articles_search_vector ON kb_articles "
               "USING gin (search_vector)")


def _appeals() -> None:
    op.create_table(
        'appeals', _id(),
        sa.Column('reg_number', sa.String(length=50), nullable=False),
        sa.Column('registered_on', sa.Date(), nullable=False),
        _enum('channel', nullable=False),
        sa.Column('citizen_id', sa.Integer(), nullable=True),
        sa.Column('contact_phone', sa.String(length=20), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=True),
        sa.Column('topic', sa.String(length=100), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('materials', sa.Text(), nullable=False),
        _enum('status', nullable=False),
        sa.Column('urgent', sa.Boolean(), nullable=False),
        sa.Column('urgency_reason', sa.Text(), nullable=False),
        sa.Column('abusive', sa.Boolean(), nullable=False),
        sa.Column('due_date', sa.Date(), nullable=True),
        sa.Column('executor_id', sa.Integer(), nullable=True),
        sa.Column('redirected_to_id', sa.Integer(), nullable=True),
        sa.Column('redirected_at', _when(), nullable=True),
        _enum('outcome', nullable=True),
        sa.Column('outcome_date', sa.Date(), nullable=True),
        sa.Column('answer_text', sa.Text(), nullable=True),
        sa.Column('refusal_reasons', sa.Text(), nullable=True),
        sa.Column('answered_at', _when(), nullable=True),
        sa.Column('completed_at', _when(), nullable=True),
        sa.Column('completed_by_id', sa.Integer(), nullable=True),
        sa.Column('anonymised_at', _when(), nullable=True),
        *_timestamps(),
        _pk('appeals'), _fk('appeals', 'citizen_id', 'citizens'),
        _fk('appeals', 'completed_by_id', 'staff'),
        _fk('appeals', 'department_id', 'departments'), _fk('appeals', 'executor_id', 'staff'),
        _fk('appeals', 'redirected_to_id', 'agencies'), _unique('appeals', 'reg_number'),
        _one_of('appeals', 'channel', CHANNELS),
        _one_of('appeals', 'status', ('registered', 'in_work', 'redirected', 'not_considered',
                                      'answered', 'completed')),
        _one_of('appeals', 'outcome', ('resolved', 'will_resolve_by', 'can_resolve_no_date',
                                       'cannot_resolve')))
    _indexes('appeals', 'citizen_id', 'due_date', 'executor_id', 'registered_on', 'status',
             'topic')


def _calls() -> None:
    op.create_table(
        'calls', _id(),
        sa.Column('linkedid', sa.String(length=150), nullable=False),
        sa.Column('caller_number', sa.String(length=40), nullable=False),
        sa.Column('dialed_number', sa.String(length=40), nullable=False),
        sa.Column('citizen_id', sa.Integer(), nullable=True),
        sa.Column('started_at', _when(), nullable=False),
        sa.Column('answered_at', _when(), nullable=True),
        sa.Column('ended_at', _when(), nullable=True),
        sa.Column('ivr_path', sa.String(length=200), nullable=False),
        sa.Column('topic', sa.String(length=50), nullable=True),
        sa.Column('queue', sa.String(length=80), nullable=True),
        sa.Column('queue_joined_at', _when(), nullable=True),
        sa.Column('queue_left_at', _when(), nullable=True),
        sa.Column('wait_seconds', sa.Integer(), nullable=True),
        sa.Column('operator_id', sa.Integer(), nullable=True),
        _enum('outcome', nullable=False),
        sa.Column('hangup_by', sa.String(length=20), nullable=True),
        sa.Column('journal_topic', sa.String(length=50), nullable=True),
        sa.Column('journal_question', sa.Text(), nullable=True),
        sa.Column('journal_answer', sa.Text(), nullable=True),
        _enum('journal_outcome', nullable=True),
        sa.Column('journal_agency_id', sa.Integer(), nullable=True),
        sa.Column('journal_article_id', sa.Integer(), nullable=True),
        sa.Column('journal_by_id', sa.Integer(), nullable=True),
        sa.Column('journal_at', _when(), nullable=True),
        *_timestamps(),
        _pk('calls'), _fk('calls', 'citizen_id', 'citizens'),
        _fk('calls', 'journal_agency_id', 'agencies'),
        _fk('calls', 'journal_article_id', 'kb_articles'),
        _fk('calls', 'journal_by_id', 'staff'), _fk('calls', 'operator_id', 'staff'),
        _unique('calls', 'linkedid'),
        _one_of('calls', 'outcome', ('in_progress', 'self_service', 'answered', 'abandoned',
                                     'callback_requested', 'after_hours', 'failed')),
        _one_of('calls', 'journal_outcome', ('answered', 'transferred', 'callback',
                                             'referred_to_agency', 'not_in_competence')))
    _indexes('calls', 'started_at')
    op.create_index('ix_calls_caller_started', 'calls', ['caller_number', 'started_at'])
    # A new call has neither yet, and a lookup is always by equality: no entry for NULL.
    for column in ('citizen_id', 'operator_id'):
        _partial_index(f'ix_calls_{column}', 'calls', [column], where=f'{column} IS NOT NULL')
    _call_legs_transfers_and_ratings()


def _call_legs_transfers_and_ratings() -> None:
    op.create_table(
        'call_legs', _id(),
        sa.Column('call_id', sa.Integer(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=True),
        sa.Column('channel', sa.String(length=150), nullable=False),
        sa.Column('answered_at', _when(), nullable=True),
        sa.Column('ended_at', _when(), nullable=True),
        sa.Column('talk_seconds', sa.Integer(), nullable=True),
        _pk('call_legs'), _fk('call_legs', 'call_id', 'calls', ondelete='CASCADE'),
        _fk('call_legs', 'operator_id', 'staff'), _unique('call_legs', 'call_id', 'channel'))
    _indexes('call_legs', 'operator_id')
    op.create_table(
        'transfers', _id(),
        sa.Column('call_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        _enum('kind', nullable=False),
        sa.Column('from_staff_id', sa.Integer(), nullable=True),
        sa.Column('to_staff_id', sa.Integer(), nullable=True),
        sa.Column('to_target', sa.String(length=100), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('requested_at', _when(), nullable=False),
        sa.Column('completed_at', _when(), nullable=True),
        _enum('outcome', nullable=False),
        _pk('transfers'), _fk('transfers', 'call_id', 'calls', ondelete='CASCADE'),
        _fk('transfers', 'from_staff_id', 'staff'), _fk('transfers', 'to_staff_id', 'staff'),
        _unique('transfers', 'call_id', 'seq'),
        _one_of('transfers', 'kind', ('blind', 'attended', 'panel')),
        _one_of('transfers', 'outcome', ('pending', 'completed', 'refused', 'failed',
                                         'cancelled')))
    op.create_table(
        'ratings', _id(),
        sa.Column('call_id', sa.Integer(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=True),
        sa.Column('answer_received', sa.Boolean(), nullable=True),
        _enum('quality', nullable=True),
        _enum('status', nullable=False),
        sa.Column('rated_at', _when(), nullable=False),
        _pk('ratings'), _fk('ratings', 'call_id', 'calls', ondelete='CASCADE'),
        _fk('ratings', 'operator_id', 'staff'), _unique('ratings', 'call_id'),
        _one_of('ratings', 'quality', ('satisfied', 'partly', 'not_satisfied')),
        _one_of('ratings', 'status', ('complete', 'partial', 'no_answer')))
    _indexes('ratings', 'operator_id', 'rated_at')


def _callbacks() -> None:
    op.create_table(
        'callbacks', _id(),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('citizen_id', sa.Integer(), nullable=True),
        sa.Column('call_id', sa.Integer(), nullable=True),
        _enum('source', nullable=False),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('question_key', sa.String(length=200), nullable=False),
        sa.Column('topic', sa.String(length=50), nullable=True),
        sa.Column('promised_date', sa.Date(), nullable=True),
        sa.Column('department_id', sa.Integer(), nullable=True),
        sa.Column('assignee_id', sa.Integer(), nullable=True),
        _enum('status', nullable=False),
        sa.Column('next_attempt_at', _when(), nullable=True),
        sa.Column('answer_text', sa.Text(), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        *_timestamps(),
        _pk('callbacks'), _fk('callbacks', 'assignee_id', 'staff'),
        _fk('callbacks', 'call_id', 'calls'), _fk('callbacks', 'citizen_id', 'citizens'),
        _fk('callbacks', 'created_by_id', 'staff'),
        _fk('callbacks', 'department_id', 'departments'),
        _one_of('callbacks', 'source', ('ivr_after_hours', 'ivr_queue', 'operator',
                                        'supervisor')),
        _one_of('callbacks', 'status', ('waiting_info', 'ready', 'calling', 'done', 'failed',
                                        'cancelled')))
    _indexes('callbacks', 'assignee_id', 'citizen_id', 'next_attempt_at', 'phone', 'status')
    # One open request per number and question.
    _partial_index('uq_callbacks_open_phone_question', 'callbacks', ['phone', 'question_key'],
                   where="status IN ('waiting_info', 'ready', 'calling')", unique=True)
    op.create_table(
        'callback_attempts', _id(),
        sa.Column('callback_id', sa.Integer(), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('started_at', _when(), nullable=False),
        sa.Column('ended_at', _when(), nullable=True),
        sa.Column('outcome', sa.String(length=30), nullable=True),
        sa.Column('linkedid', sa.String(length=150), nullable=True),
        _pk('callback_attempts'),
        _fk('callback_attempts', 'callback_id', 'callbacks', ondelete='CASCADE'),
        _fk('callback_attempts', 'staff_id', 'staff'))
    op.create_table(
        'callback_windows', _id(),
        sa.Column('callback_id', sa.Integer(), nullable=False),
        sa.Column('starts_at', _when(), nullable=False),
        sa.Column('ends_at', _when(), nullable=False),
        _pk('callback_windows'),
        _fk('callback_windows', 'callback_id', 'callbacks', ondelete='CASCADE'))


def _receptions() -> None:
    op.create_table(
        'officials', _id(),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=300), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('place', sa.Text(), nullable=False),
        sa.Column('directions', sa.Text(), nullable=False),
        _pk('officials'), _fk('officials', 'staff_id', 'staff'), _unique('officials', 'staff_id'))
    op.create_table(
        'reception_schedules', _id(),
        sa.Column('official_id', sa.Integer(), nullable=False),
        sa.Column('weekday', sa.Integer(), nullable=False),
        sa.Column('starts', sa.Time(), nullable=False),
        sa.Column('ends', sa.Time(), nullable=False),
        sa.Column('slot_minutes', sa.Integer(), nullable=False),
        _pk('reception_schedules'),
        _fk('reception_schedules', 'official_id', 'officials', ondelete='CASCADE'))
    op.create_table(
        'reception_slots', _id(),
        sa.Column('official_id', sa.Integer(), nullable=False),
        sa.Column('starts_at', _when(), nullable=False),
        sa.Column('ends_at', _when(), nullable=False),
        _pk('reception_slots'),
        _fk('reception_slots', 'official_id', 'officials', ondelete='CASCADE'),
        _unique('reception_slots', 'official_id', 'starts_at'))
    _indexes('reception_slots', 'starts_at')
    _bookings()


def _bookings() -> None:
    op.create_table(
        'reception_bookings', _id(),
        sa.Column('slot_id', sa.Integer(), nullable=False),
        sa.Column('citizen_id', sa.Integer(), nullable=False),
        sa.Column('topic', sa.Text(), nullable=False),
        _enum('status', nullable=False),
        sa.Column('booked_via', sa.String(length=30), nullable=False),
        sa.Column('booked_by_id', sa.Integer(), nullable=True),
        sa.Column('cancelled_at', _when(), nullable=True),
        sa.Column('cancelled_via', sa.String(length=30), nullable=True),
        sa.Column('accessibility_needs', sa.Text(), nullable=False),
        _enum('reminder_channel', nullable=True),
        sa.Column('remind_day_before', sa.Boolean(), nullable=False),
        sa.Column('remind_two_hours_before', sa.Boolean(), nullable=False),
        sa.Column('reminded_day_before_at', _when(), nullable=True),
        sa.Column('reminded_two_hours_before_at', _when(), nullable=True),
        *_timestamps(),
        sa.Column('confirmed_at', _when(), nullable=True),
        sa.Column('attendance_marked_at', _when(), nullable=True),
        _pk('reception_bookings'), _fk('reception_bookings', 'booked_by_id', 'staff'),
        _fk('reception_bookings', 'citizen_id', 'citizens'),
        _fk('reception_bookings', 'slot_id', 'reception_slots'),
        _one_of('reception_bookings', 'status', ('booked', 'cancelled', 'attended', 'no_show')),
        _one_of('reception_bookings', 'reminder_channel', CHANNELS))
    _indexes('reception_bookings', 'citizen_id', 'slot_id')
    # A slot holds one live booking; a cancelled one frees it.
    _partial_index('uq_reception_bookings_live_slot', 'reception_bookings', ['slot_id'],
                   where="status IN ('booked', 'attended')", unique=True)


def _notices_and_surveys() -> None:
    op.create_table(
        'notifications', _id(),
        sa.Column('dedup_key', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        _enum('channel', nullable=False),
        sa.Column('address', sa.String(length=300), nullable=False),
        sa.Column('citizen_id', sa.Integer(), nullable=True),
        sa.Column('appeal_id', sa.Integer(), nullable=True),
        sa.Column('booking_id', sa.Integer(), nullable=True),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        _enum('status', nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', _when(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('sent_at', _when(), nullable=True),
        *_timestamps(),
        sa.Column('heard_times', sa.Integer(), server_default='0', nullable=False),
        sa.Column('reply', sa.String(length=20), nullable=True),
        _pk('notifications'), _fk('notifications', 'appeal_id', 'appeals'),
        _fk('notifications', 'booking_id', 'reception_bookings'),
        _fk('notifications', 'citizen_id', 'citizens'), _unique('notifications', 'dedup_key'),
        _one_of('notifications', 'channel', CHANNELS),
        _one_of('notifications', 'status', ('pending', 'sending', 'sent', 'failed', 'outbox')))
    _indexes('notifications', 'appeal_id', 'citizen_id', 'status')
    op.create_table(
        'survey_responses', _id(),
        sa.Column('token_id', sa.String(length=64), nullable=False),
        sa.Column('appeal_id', sa.Integer(), nullable=True),
        sa.Column('booking_id', sa.Integer(), nullable=True),
        sa.Column('answers', sa.JSON(), nullable=False),
        sa.Column('answered_at', _when(), nullable=False),
        _pk('survey_responses'), _fk('survey_responses', 'appeal_id', 'appeals'),
        _fk('survey_responses', 'booking_id', 'reception_bookings'),
        _unique('survey_responses', 'token_id'))
    _indexes('survey_responses', 'appeal_id')


def _plain_language_terms() -> None:
    terms = op.create_table(
        'plain_language_terms', _id(),
        sa.Column('term', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('hint', sa.Text(), nullable=False),
        _pk('plain_language_terms'), _unique('plain_language_terms', 'term'))
    op.bulk_insert(terms, [{'term': term, 'kind': kind, 'hint': hint}
                           for term, kind, hint in STARTING_TERMS])


def upgrade() -> None:
    _staff_and_accounts()
    _citizens()
    _knowledge_base()
    _appeals()
    _calls()
    _callbacks()
    _receptions()
    _notices_and_surveys()
    _plain_language_terms()


def downgrade() -> None:
    if _sqlite():
        op.execute('DROP TABLE kb_fts')
    for table in reversed(TABLES):
        op.drop_table(table)
