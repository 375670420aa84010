"""Russian stemming for SQLite's full-text index (PostgreSQL stems with its own
``to_tsvector('russian', …)``): words are lower-cased and cut to their Snowball stems, so
«пособия» finds «пособие», «компенсацию» finds «компенсация»."""

from __future__ import annotations

import re

import snowballstemmer

_WORD = re.compile(r"[0-9a-zа-яё]+", re.IGNORECASE)
_stemmer = snowballstemmer.stemmer("russian")


def words(text: str) -> list[str]:
    return [w.lower().replace("ё", "е") for w in _WORD.findall(text)]


def stem_text(text: str) -> str:
    return " ".join(_stemmer.stemWords(words(text)))


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression: every stemmed word of the query, as a quoted token."""
    return " AND ".join(f'"{stem}"' for stem in _stemmer.stemWords(words(query)))
