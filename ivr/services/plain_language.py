"""The plain-language check of an answer before it is sent (R-A7, R-X1).

Flags what the regulation names: abbreviations (words of two or more capital letters, unless
the dictionary allows them), jargon, archaisms and rare terms, and negative phrasing, from
the editable dictionary (``plain_language_terms``). A dictionary term matches a whole word
or phrase at the start of a word form, so «данный» also catches «данного», «данным».
The check only advises: the executor may send an answer with flags after reading them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import PlainLanguageTerm

KIND_NAMES = {
    "abbreviation": "сокращение",
    "jargon": "жаргон",
    "archaism": "канцелярит или устаревшее слово",
    "rare": "редкий термин",
    "negative": "негативная формулировка",
}
FLAGGED_KINDS = ("jargon", "archaism", "rare", "negative")
_ABBREVIATION = re.compile(r"(?<![\w-])[A-ZА-ЯЁ]{2,}(?![\w-])")
# How much a dictionary word may change at its end (Russian endings) and still match.
_ENDING = r"[а-яё]{0,4}"


@dataclass(frozen=True)
class Flag:
    kind: str
    fragment: str
    hint: str

    @property
    def message(self) -> str:
        hint = f": {self.hint}" if self.hint else ""
        return f"{KIND_NAMES.get(self.kind, self.kind)} «{self.fragment}»{hint}"


@dataclass(frozen=True)
class Dictionary:
    flagged: list[tuple[str, str, str]]   # term, kind, hint
    allowed_abbreviations: frozenset[str]


async def load_dictionary(session: AsyncSession) -> Dictionary:
    rows = (await session.execute(select(PlainLanguageTerm.term, PlainLanguageTerm.kind,
                                         PlainLanguageTerm.hint))).all()
    return Dictionary(
        flagged=[(t, k, h) for t, k, h in rows if k in FLAGGED_KINDS],
        allowed_abbreviations=frozenset(t for t, k, _ in rows if k == "abbreviation_ok"))


def _pattern(term: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in term.lower().split()]
    body = r"\s+".join(f"{w[:-2]}{_ENDING}" if len(w) > 5 else w for w in words)
    return re.compile(rf"(?<![\w-]){body}(?![\w-])", re.IGNORECASE)


def check(text: str, dictionary: Dictionary) -> list[Flag]:
    flags: list[Flag] = []
    seen: set[tuple[str, str]] = set()
    for term, kind, hint in dictionary.flagged:
        for m in _pattern(term).finditer(text):
            key = (kind, m.group(0).lower())
            if key not in seen:
                seen.add(key)
                flags.append(Flag(kind, m.group(0), hint))
    for m in _ABBREVIATION.finditer(text):
        word = m.group(0)
        if word not in dictionary.allowed_abbreviations and ("abbreviation", word) not in seen:
            seen.add(("abbreviation", word))
            flags.append(Flag("abbreviation", word, "напишите полностью"))
    return flags
