"""knowledge base full-text search in Russian

SQLite: an FTS5 table ``kb_fts`` (rowid = article id) holding Snowball-stemmed title and
body, kept by the knowledge-base service in the article's own transaction; the articles
already there are indexed here.
PostgreSQL: a generated ``search_vector`` column (``to_tsvector('russian', …)``, title
weighted above body) with a GIN index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 07:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ivr.text_search import stem_text

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE kb_fts USING fts5(title, body, "
                   "tokenize = 'unicode61 remove_diacritics 2')")
        bind = op.get_bind()
        for id_, title, body in bind.execute(sa.text("SELECT id, title, body FROM kb_articles")):
            bind.execute(sa.text("INSERT INTO kb_fts (rowid, title, body) VALUES (:i, :t, :b)"),
                         {"i": id_, "t": stem_text(title), "b": stem_text(body)})
    else:
        op.execute("ALTER TABLE kb_articles ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
                   "(setweight(to_tsvector('russian', coalesce(title, '')), 'A') || "
                   "setweight(to_tsvector('russian', coalesce(body, '')), 'B')) STORED")
        op.execute("CREATE INDEX ix_kb_articles_search_vector ON kb_articles "
                   "USING gin (search_vector)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE kb_fts")
    else:
        op.execute("DROP INDEX ix_kb_articles_search_vector")
        op.execute("ALTER TABLE kb_articles DROP COLUMN search_vector")
