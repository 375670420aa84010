"""The knowledge base in the panel (R-K1–R-K4): search, sections, articles with their
versions and diffs, editing by the section's own department, «изменились сведения», the
staleness list (own department; every department for the supervisor)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr.db.models import ArticleKind, KbArticle, KbSection, KbSectionEditor, Role, Staff
from ivr.services import kb

from . import auth, scopes
from .errors import NotFound
from .policy import HEADS, OVERSEERS, STAFF, panel
from .records import _render, _svc

KIND_NAMES = {
    ArticleKind.LEGAL_ACT: "нормативный акт", ArticleKind.FAQ: "частый вопрос",
    ArticleKind.TEMPLATE: "шаблон ответа", ArticleKind.SOLVED_TASK: "пример решения",
    ArticleKind.CONTACTS: "контакты для консультаций", ArticleKind.SCRIPT: "скрипт",
    ArticleKind.INTERNAL: "внутренний документ", ArticleKind.OTHER: "другое",
}


@panel(*STAFF)
async def kb_home(request: web.Request) -> web.Response:
    svc = _svc(request)
    me = auth.current(request)
    q = request.query.get("q", "").strip()
    today = svc.calendar.today(svc.clock())
    async with svc.sessions() as session:
        found = await kb.search(session, q) if q else []
        sections = list((await session.scalars(select(KbSection).order_by(KbSection.title))).all())
        stale = await kb.stale(session, today, department_id=None if me.role in OVERSEERS
                               else me.department_id)
        editable = await kb.editable_sections(session, me.staff_id)
    return _render(request, "kb.html", {"q": q, "found": found, "sections": sections,
                                        "stale": stale, "editable": editable,
                                        "kinds": KIND_NAMES, "today": today})


async def _section_context(request: web.Request, section_id: int) -> dict[str, Any]:
    svc = _svc(request)
    me = auth.current(request)
    async with svc.sessions() as session:
        section = await session.get(KbSection, section_id)
        if section is None:
            raise NotFound("Раздел не найден.", "kb_section_not_found")
        articles = list((await session.scalars(select(KbArticle).where(
            KbArticle.section_id == section_id, KbArticle.archived.is_(False))
            .order_by(KbArticle.title))).all())
        editors = list((await session.scalars(select(Staff).join(
            KbSectionEditor, KbSectionEditor.staff_id == Staff.id).where(
            KbSectionEditor.section_id == section_id))).all())
        members = list((await session.scalars(select(Staff).where(
            Staff.department_id == section.department_id, Staff.active)
            .order_by(Staff.surname))).all())
        editable = section_id in await kb.editable_sections(session, me.staff_id)
    is_head = me.role == Role.DEPARTMENT_HEAD and me.department_id == section.department_id
    return {"section": section, "articles": articles, "editors": editors,
            "members": members, "editable": editable, "is_head": is_head,
            "kinds": KIND_NAMES, "error": "", "form": {}}


@panel(*STAFF)
async def section_page(request: web.Request) -> web.Response:
    context = await _section_context(request, int(request.match_info["id"]))
    return _render(request, "kb_section.html", context)


def _input(form: dict[str, str]) -> kb.ArticleInput:
    try:
        kind = ArticleKind(form.get("kind", "faq"))
    except ValueError:
        raise kb.KbError("Неизвестный вид статьи.") from None
    return kb.ArticleInput(kind, form.get("title", ""), form.get("body", ""))


async def _refused(request: web.Request, exc: kb.KbError, what: str) -> None:
    if isinstance(exc, kb.KbForbidden):
        me = auth.current(request)
        await auth.audit(_svc(request), me.staff_id, "kb_refused", "kb_section", what,
                         str(exc), request.remote or "")


@panel(*STAFF, check=scopes.own_kb_section, audit="kb_section", refused="kb_refused")
async def section_post(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    me = auth.current(request)
    section_id = int(request.match_info["id"])
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        if "editor_id" in form:
            await kb.set_editor(svc.sessions, head_id=me.staff_id, section_id=section_id,
                                staff_id=int(form["editor_id"] or 0),
                                editor=form.get("editor") == "1")
            await auth.audit(svc, me.staff_id, "kb_editor", "kb_section", section_id,
                             form["editor_id"], request.remote or "")
            raise web.HTTPSeeOther(f"/panel/kb/sections/{section_id}")
        article = await kb.save_article(svc.sessions, svc.calendar, staff_id=me.staff_id,
                                        section_id=section_id, given=_input(form),
                                        now=svc.clock())
    except kb.KbError as exc:
        await _refused(request, exc, str(section_id))
        context = await _section_context(request, section_id)
        context.update(error=str(exc), form=form)
        return _render(request, "kb_section.html", context,
                       403 if isinstance(exc, kb.KbForbidden) else 400)
    await auth.audit(svc, me.staff_id, "create", "kb_article", article, "",
                     request.remote or "")
    raise web.HTTPSeeOther(f"/panel/kb/articles/{article}")


async def _article_context(request: web.Request, article_id: int) -> dict[str, Any]:
    svc = _svc(request)
    me = auth.current(request)
    async with svc.sessions() as session:
        article = await session.get(KbArticle, article_id,
                                    options=[selectinload(KbArticle.section)])
        if article is None:
            raise NotFound("Статья не найдена.", "kb_article_not_found")
        history = await kb.versions(session, article_id)
        editors = {s.id: s.initials_name for s in (await session.scalars(select(Staff).where(
            Staff.id.in_([v.editor_id for v in history if v.editor_id])))).all()}
        editable = article.section_id in await kb.editable_sections(session, me.staff_id)
    changes = [(v, kb.diff(history[i - 1] if i else None, v)) for i, v in enumerate(history)]
    return {"article": article, "changes": list(reversed(changes)), "editors": editors,
            "editable": editable, "kinds": KIND_NAMES, "error": "", "form": {}}


@panel(*STAFF)
async def article_page(request: web.Request) -> web.Response:
    return _render(request, "kb_article.html",
                   await _article_context(request, int(request.match_info["id"])))


@panel(*STAFF, check=scopes.own_kb_section, audit="kb_section", refused="kb_refused")
async def article_post(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    me = auth.current(request)
    article_id = int(request.match_info["id"])
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        if form.get("action") == "changed":
            await kb.mark_changed(svc.sessions, svc.calendar, article_id=article_id,
                                  staff_id=me.staff_id, now=svc.clock())
        else:
            await kb.save_article(svc.sessions, svc.calendar, staff_id=me.staff_id,
                                  section_id=0, given=_input(form), now=svc.clock(),
                                  article_id=article_id)
    except kb.KbError as exc:
        await _refused(request, exc, f"article {article_id}")
        context = await _article_context(request, article_id)
        context.update(error=str(exc), form=form)
        return _render(request, "kb_article.html", context,
                       403 if isinstance(exc, kb.KbForbidden) else 400)
    await auth.audit(svc, me.staff_id, form.get("action") or "update", "kb_article",
                     article_id, "", request.remote or "")
    raise web.HTTPSeeOther(f"/panel/kb/articles/{article_id}")


# --- the agency directory (R-H7) ---------------------------------------------------------

AGENCY_KEEPERS = HEADS


async def agencies_page(request: web.Request, *, error: str = "", form: dict[str, str] | None
                        = None, status: int = 200) -> web.Response:
    """Other bodies' contacts, for questions outside the ministry's competence: everyone
    reads, department heads, supervisors and administrators keep it."""
    svc = _svc(request)
    me = auth.current(request)
    q = request.query.get("q", "").strip()
    async with svc.sessions() as session:
        found = await kb.agencies(session, q)
    return _render(request, "kb_agencies.html", {
        "q": q, "agencies": found, "can_edit": me.role in AGENCY_KEEPERS, "error": error,
        "form": form or {}}, status)


@panel(*STAFF)
async def agencies_get(request: web.Request) -> web.Response:
    return await agencies_page(request)


@panel(*AGENCY_KEEPERS, audit="agency", refused="kb_refused")
async def agency_post(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    me = auth.current(request)
    agency_id = int(request.match_info["id"]) if "id" in request.match_info else None
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        async with svc.sessions() as session, session.begin():
            agency, changes = await kb.save_agency(session, agency_id, form)
            saved_id = agency.id
    except kb.AgencyError as exc:
        return await agencies_page(request, error=str(exc), form=form, status=400)
    await auth.audit(svc, me.staff_id, "update" if agency_id else "create", "agency",
                     saved_id, "; ".join(changes)[:2000], request.remote or "")
    raise web.HTTPSeeOther(f"/panel/kb/agencies#agency-{saved_id}")


def setup(app: web.Application) -> None:
    app.router.add_get("/panel/kb/agencies", agencies_get)
    app.router.add_post("/panel/kb/agencies", agency_post)
    app.router.add_post(r"/panel/kb/agencies/{id:\d{1,9}}", agency_post)
    app.router.add_get("/panel/kb", kb_home)
    app.router.add_get(r"/panel/kb/sections/{id:\d{1,9}}", section_page)
    app.router.add_post(r"/panel/kb/sections/{id:\d{1,9}}", section_post)
    app.router.add_get(r"/panel/kb/articles/{id:\d{1,9}}", article_page)
    app.router.add_post(r"/panel/kb/articles/{id:\d{1,9}}", article_post)
