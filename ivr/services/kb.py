"""The knowledge base: the lookups the IVR needs — the scripts it speaks (R-H3), agency
contacts (R-H7) — and its keeping by the departments (R-K1–R-K4): sections editable only
by their own department, versions of every change, quarterly reviews and «изменились
сведения» marks, full-text search in Russian."""

from __future__ import annotations

import calendar as calendar_module
import difflib
import string
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement

from ..calendar import WorkCalendar
from ..db.models import (
    Agency,
    ArticleKind,
    KbArticle,
    KbArticleVersion,
    KbSection,
    KbSectionEditor,
    Role,
    Staff,
)
from ..hygiene import LinkError, web_link
from ..text_search import fts_query, stem_text, words
from .container import Services

GREETING = "script.greeting"
FAREWELL = "script.farewell"
# Before the queue, with recording.notice (issue 30).
RECORDING_NOTICE = "script.recording_notice"


async def agency_by_name(session: AsyncSession, name: str) -> Agency | None:
    return await session.scalar(select(Agency).where(Agency.name == name))


# --- the agency directory (R-H7): the knowledge base's contacts of other bodies ----------

AGENCY_FIELDS = ("name", "competence", "phone", "address", "website")


def _agency_stems(agency: Agency) -> set[str]:
    return set(stem_text(f"{agency.name} {agency.competence}").split())


async def agencies(session: AsyncSession, query: str = "", *, limit: int = 200) -> list[Agency]:
    """The directory, by name; with ``query``, the agencies whose name or competence holds
    every word of it (Russian stems, as the articles' search: «пенсии» finds «пенсионный
    фонд»'s «пенсионное обеспечение»). A directory is tens of rows: matched here."""
    rows = list((await session.scalars(select(Agency).order_by(Agency.name))).all())
    wanted = [w for w in stem_text(query).split() if len(w) >= 3]  # not «в», «по»
    if wanted:
        rows = [a for a in rows if all(any(stem.startswith(w) or w.startswith(stem)
                                           for stem in _agency_stems(a)) for w in wanted)]
    return rows[:limit]


class AgencyError(ValueError):
    pass


async def save_agency(session: AsyncSession, agency_id: int | None,
                      values: dict[str, str]) -> tuple[Agency, list[str]]:
    """Create or change an agency; returns it and the changes («поле: было → стало»)."""
    clean = {k: (values.get(k) or "").strip() for k in AGENCY_FIELDS}
    if not clean["name"]:
        raise AgencyError("Укажите название ведомства.")
    if not (clean["phone"] or clean["website"] or clean["address"]):
        raise AgencyError("Укажите, как связаться: телефон, адрес или сайт.")
    if clean["website"]:
        try:
            clean["website"] = web_link(clean["website"])
        except LinkError as exc:   # javascript:, data: … never become a link (issue 25)
            raise AgencyError(str(exc)) from None
    clash = await session.scalar(select(Agency.id).where(Agency.name == clean["name"]))
    if clash is not None and clash != agency_id:
        raise AgencyError("Ведомство с таким названием уже есть в справочнике.")
    if agency_id is None:
        agency = Agency(**clean)
        session.add(agency)
        changes = [f"{k}: {v}" for k, v in clean.items() if v]
    else:
        found = await session.get(Agency, agency_id)
        if found is None:
            raise AgencyError("Такого ведомства нет.")
        agency = found
        changes = [f"{k}: {getattr(agency, k)} → {v}" for k, v in clean.items()
                   if getattr(agency, k) != v]
        for k, v in clean.items():
            setattr(agency, k, v)
    await session.flush()
    return agency, changes


# R-H9: what operators don't do for callers; the workspace reads it by this key
# (this text when the knowledge base has none).
OPERATOR_LIMITS_KEY = "script.operator_limits"
OPERATOR_LIMITS = ("Оператор не действует за гражданина: не заполняет за него заявления и "
                   "формы и не ведёт переговоров с другими организациями и людьми от его "
                   "имени. Оператор объясняет, как сделать это самому, и называет, куда "
                   "обратиться.")


# The operator's greeting on the workspace (R-H3): the only script with fields.
OPERATOR_GREETING_KEY = "script.operator_greeting"
GREETING_FIELDS = frozenset({"org", "name", "position"})
DEFAULT_OPERATOR_GREETING = "Здравствуйте! {org}, {position} {name}. Слушаю вас."


def _greeting_parts(text: str) -> list[tuple[str, str | None]]:
    """(literal, field) pieces; a field with a format spec or a conversion is "?"; a stray
    brace raises ValueError."""
    return [(literal, None if field is None else
             field if not spec and conversion is None else "?")
            for literal, field, spec, conversion in string.Formatter().parse(text)]


def check_script(key: str, text: str) -> None:
    """Every write of a ``script.*`` article passes here, whoever makes it (the scripts
    page, a section's editor, the API): callers hear the spoken ones, and the operator's
    greeting is filled in on the workspace, so no brace may reach either but the
    greeting's own plain fields."""
    if key == OPERATOR_GREETING_KEY:
        try:
            fields = {field for _, field in _greeting_parts(text) if field is not None}
        except ValueError:
            fields = {"?"}
        if not fields <= GREETING_FIELDS:
            raise KbError("В приветствии оператора можно использовать только {org}, "
                          "{name} и {position}; фигурные скобки — только для них.")
    elif "{" in text or "}" in text:
        raise KbError("В тексте скрипта не должно быть фигурных скобок.")


def fill_greeting(template: str, values: dict[str, str]) -> str:
    """The operator's greeting with its plain fields filled; any other field (a format
    spec, an unknown name) is left out: an editor's text never reaches ``str.format``."""
    try:
        parts = _greeting_parts(template)
    except ValueError:
        parts = _greeting_parts(DEFAULT_OPERATOR_GREETING)
    return "".join(literal + (values.get(field, "") if field in GREETING_FIELDS else "")
                   for literal, field in parts)


async def script_texts(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(KbArticle.key, KbArticle.body).where(
        KbArticle.key.like("script.%"), KbArticle.archived.is_(False)))
    return {key: body for key, body in rows.tuples() if key}


async def refresh_scripts(services: Services) -> bool:
    """The knowledge base's scripts rendered ahead of calls and handed to the flows in
    memory, so no call waits for a query or for speech synthesis. Run at the FastAGI's
    start and then by every serving process (FastAGI, panel), whichever process made the
    change: one small query; they are rendered only when one differs from what this
    process has. True when they were."""
    async with services.sessions() as session:
        texts = await script_texts(session)
    if texts == services.scripts:
        return False
    for script in texts.values():
        await services.prompts.prepare(script, personal=False)  # fixed scripts, no one's data
    services.scripts = texts
    return True


# --- keeping the knowledge base (R-K1–R-K4) ----------------------------------------------

class KbError(Exception):
    """A knowledge-base change refused, phrased for the employee."""


class KbForbidden(KbError):
    """Editing a section of another department (R-K1)."""


REVIEW_MONTHS = 3              # every article is reviewed quarterly (R-K3)
UPDATE_WORKING_DAYS = 10       # «изменились сведения»: updated within ten working days


def _months_later(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar_module.monthrange(year, month)[1]))


async def editable_sections(session: AsyncSession, staff_id: int) -> set[int]:
    """The sections this employee may edit: their department's, when they head it; the
    ones their head made them an editor of."""
    staff = await session.get(Staff, staff_id)
    if staff is None or not staff.active:
        return set()
    ids = set(await session.scalars(select(KbSectionEditor.section_id).where(
        KbSectionEditor.staff_id == staff_id)))
    if staff.role == Role.DEPARTMENT_HEAD:
        ids |= set(await session.scalars(select(KbSection.id).where(
            KbSection.department_id == staff.department_id)))
    return ids


async def _check(session: AsyncSession, staff_id: int, section_id: int) -> None:
    if section_id not in await editable_sections(session, staff_id):
        raise KbForbidden("Раздел ведёт другое подразделение: изменять его могут только "
                          "его руководитель и назначенные им редакторы.")


async def set_editor(sessions: async_sessionmaker[AsyncSession], *, head_id: int,
                     section_id: int, staff_id: int, editor: bool) -> None:
    """A department head makes an employee of the department an editor of its section."""
    async with sessions() as session, session.begin():
        head = await session.get(Staff, head_id)
        section = await session.get(KbSection, section_id)
        member = await session.get(Staff, staff_id)
        if section is None or member is None:
            raise KbError("Раздел или сотрудник не найден.")
        if head is None or head.role != Role.DEPARTMENT_HEAD \
                or head.department_id != section.department_id:
            raise KbForbidden("Редакторов раздела назначает руководитель его подразделения.")
        if member.department_id != section.department_id:
            raise KbError("Редактором может быть только сотрудник этого подразделения.")
        await toggle_editor(session, section_id, staff_id, editor)


async def toggle_editor(session: AsyncSession, section_id: int, staff_id: int,
                        editor: bool) -> bool:
    """Make or unmake an editor of a section (the caller checked who may); whether that
    changed anything."""
    row = await session.scalar(select(KbSectionEditor).where(
        KbSectionEditor.section_id == section_id, KbSectionEditor.staff_id == staff_id))
    if editor and row is None:
        session.add(KbSectionEditor(section_id=section_id, staff_id=staff_id))
    elif not editor and row is not None:
        await session.delete(row)
    else:
        return False
    return True


@dataclass(frozen=True)
class ArticleInput:
    kind: ArticleKind
    title: str
    body: str
    key: str | None = None


async def _index(session: AsyncSession, article: KbArticle) -> None:
    if session.bind.dialect.name != "sqlite":
        return  # PostgreSQL: the generated search_vector column
    await session.execute(text("DELETE FROM kb_fts WHERE rowid = :id"), {"id": article.id})
    if not article.archived:
        await session.execute(
            text("INSERT INTO kb_fts (rowid, title, body) VALUES (:id, :title, :body)"),
            {"id": article.id, "title": stem_text(article.title),
             "body": stem_text(article.body)})


async def reindex(session: AsyncSession) -> int:
    """Rebuild SQLite's search index from the articles (after a bulk load: the demo, an
    import); PostgreSQL's generated column needs nothing. The number indexed."""
    if session.bind.dialect.name != "sqlite":
        return 0
    await session.execute(text("DELETE FROM kb_fts"))
    articles = (await session.scalars(select(KbArticle).where(
        KbArticle.archived.is_(False)))).all()
    for article in articles:
        await _index(session, article)
    return len(articles)


async def save_article(sessions: async_sessionmaker[AsyncSession], calendar: WorkCalendar, *,
                       staff_id: int, section_id: int, given: ArticleInput, now: datetime,
                       article_id: int | None = None) -> int:
    """Create or change an article in its own transaction (:func:`write_article`)."""
    async with sessions() as session, session.begin():
        return await write_article(session, calendar, staff_id=staff_id,
                                   section_id=section_id, given=given, now=now,
                                   article_id=article_id)


def _check_script_of(key: str | None, body: str) -> None:
    if key and key.startswith("script."):
        check_script(key, body.strip())


async def write_article(session: AsyncSession, calendar: WorkCalendar, *, staff_id: int,
                        section_id: int, given: ArticleInput, now: datetime,
                        article_id: int | None = None, checked: bool = True) -> int:
    """Create or change an article; every change is a new version (who, when, what) and
    sets the next quarterly review; a pending «изменились сведения» mark is cleared.
    ``checked=False`` only for an administrator's scripts (R-H3), which belong to no
    department's own work."""
    if not given.title.strip() or not given.body.strip():
        raise KbError("Заполните заголовок и текст статьи.")
    today = calendar.today(now)
    if article_id is None:
        _check_script_of(given.key, given.body)
        if checked:
            await _check(session, staff_id, section_id)
        article = KbArticle(section_id=section_id, kind=given.kind, key=given.key or None,
                            title=given.title.strip(), body=given.body.strip(), version=1,
                            updated_by_id=staff_id, created_at=now, updated_at=now)
        session.add(article)
    else:
        found = await session.get(KbArticle, article_id, with_for_update=True)
        if found is None:
            raise KbError("Статья не найдена.")
        article = found
        if checked:
            await _check(session, staff_id, article.section_id)
        _check_script_of(article.key, given.body)
        article.kind, article.title, article.body = (given.kind, given.title.strip(),
                                                     given.body.strip())
        article.version += 1
        article.updated_by_id, article.updated_at = staff_id, now
    article.review_due = _months_later(today, REVIEW_MONTHS)
    article.update_due = None
    await session.flush()
    session.add(KbArticleVersion(article_id=article.id, version=article.version,
                                 title=article.title, body=article.body,
                                 editor_id=staff_id, created_at=now))
    await _index(session, article)
    return article.id


async def mark_changed(sessions: async_sessionmaker[AsyncSession], calendar: WorkCalendar, *,
                       article_id: int, staff_id: int, now: datetime) -> date:
    """«Изменились сведения»: anyone who notices marks the article; its department must
    update it within ten working days (R-K3). The due date."""
    async with sessions() as session, session.begin():
        article = await session.get(KbArticle, article_id, with_for_update=True)
        if article is None:
            raise KbError("Статья не найдена.")
        due = calendar.add_working_days(calendar.today(now), UPDATE_WORKING_DAYS)
        article.update_due = min(due, article.update_due) if article.update_due else due
        return article.update_due


async def search(session: AsyncSession, query: str, *, limit: int = 20) -> list[KbArticle]:
    """Full-text search in Russian (stems: «пособия» finds «пособие»), best first."""
    if not words(query):
        return []
    if session.bind.dialect.name == "sqlite":
        match = fts_query(query)
        ids = [row[0] for row in await session.execute(text(
            "SELECT rowid FROM kb_fts WHERE kb_fts MATCH :q ORDER BY bm25(kb_fts, 5.0, 1.0) "
            "LIMIT :n"), {"q": match, "n": limit})]
        if not ids:
            return []
        found = {a.id: a for a in await session.scalars(select(KbArticle).where(
            KbArticle.id.in_(ids), KbArticle.archived.is_(False)))}
        return [found[i] for i in ids if i in found]
    vector: ColumnElement[Any] = literal_column("kb_articles.search_vector")
    tsquery = func.websearch_to_tsquery(literal_column("'russian'::regconfig"), query)
    return list((await session.scalars(
        select(KbArticle).where(vector.op("@@")(tsquery), KbArticle.archived.is_(False))
        .order_by(func.ts_rank(vector, tsquery).desc(), KbArticle.id).limit(limit))).all())


async def stale(session: AsyncSession, today: date, *,
                department_id: int | None = None) -> list[KbArticle]:
    """Articles due for review, or marked «изменились сведения» (R-K3): a department's own
    list, or every department's for the supervisor. The most overdue first."""
    due = func.coalesce(KbArticle.update_due, KbArticle.review_due)
    query = (select(KbArticle).options(selectinload(KbArticle.section))
             .where(KbArticle.archived.is_(False),
                    or_(KbArticle.update_due.is_not(None), KbArticle.review_due <= today))
             .order_by(due, KbArticle.id))
    if department_id is not None:
        query = query.join(KbSection).where(KbSection.department_id == department_id)
    return list((await session.scalars(query)).all())


async def versions(session: AsyncSession, article_id: int) -> list[KbArticleVersion]:
    return list((await session.scalars(select(KbArticleVersion).where(
        KbArticleVersion.article_id == article_id).order_by(KbArticleVersion.version))).all())


def diff(old: KbArticleVersion | None, new: KbArticleVersion) -> list[str]:
    """What one version changed, as unified-diff lines (title, then body)."""
    before = [] if old is None else [old.title, "", *old.body.splitlines()]
    after = [new.title, "", *new.body.splitlines()]
    return list(difflib.unified_diff(before, after, f"версия {old.version if old else 0}",
                                     f"версия {new.version}", lineterm="", n=2))
