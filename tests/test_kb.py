"""The knowledge base (R-K1–R-K4): sections editable only by their department (also through
the API), versions with diffs, quarterly reviews and «изменились сведения», full-text
search in Russian on SQLite (FTS5 + Snowball stems) and PostgreSQL (tsvector 'russian')."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from ivr.db.models import ApiToken, ArticleKind, AuditEntry, KbSection, Staff
from ivr.services import kb
from ivr.services.container import Services
from web.api import token_hash
from web.app import init_app

from .support.records import kb_sections_of

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


async def _ids(svc: Services) -> tuple[int, int, int, int]:
    """(the head of «Госуслуги», their section, another department's section, a specialist
    of «Соцподдержка»)."""
    head, own, other = await kb_sections_of(svc, "kuznetsov")
    async with svc.sessions() as s:
        specialist = await s.scalar(select(Staff.id).where(Staff.login == "sidorova"))
    assert specialist is not None
    return head, own, other, specialist


async def test_russian_full_text_search_finds_other_word_forms(svc: Services) -> None:
    head, own, _, _ = await _ids(svc)
    for title, body in (
        ("Пособие на ребёнка до трёх лет", "Назначается по заявлению через портал."),
        ("Справка о составе семьи", "Выдаёт МФЦ по месту жительства в день обращения."),
        ("Ежемесячные выплаты", "Пособия и компенсации назначаются органами соцзащиты."),
    ):
        await kb.save_article(svc.sessions, svc.calendar, staff_id=head, section_id=own,
                              given=kb.ArticleInput(ArticleKind.FAQ, title, body), now=NOW)
    async with svc.sessions() as s:
        found = [a.title for a in await kb.search(s, "пособия")]
        housing = [a.title for a in await kb.search(s, "компенсацию жилья")]
        family = [a.title for a in await kb.search(s, "семьи справки")]
        none = await kb.search(s, "космодром")
        odd = await kb.search(s, 'пособие" * (')
        empty = await kb.search(s, "  ?! ")
    assert found[0] == "Пособие на ребёнка до трёх лет", "a title match ranks first"
    assert set(found) == {"Пособие на ребёнка до трёх лет", "Ежемесячные выплаты"}
    assert housing == ["Как получить компенсацию расходов на оплату жилья"], \
        "the demo's article, indexed after its bulk load"
    assert family == ["Справка о составе семьи"]
    assert none == [] and empty == []
    assert [a.title for a in odd][:1] == ["Пособие на ребёнка до трёх лет"], \
        "search syntax in a query is just words"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_only_the_department_edits_its_section_with_versions_and_reviews(
    svc: Services
) -> None:
    head, own, other, specialist = await _ids(svc)
    given = kb.ArticleInput(ArticleKind.TEMPLATE, "Шаблон ответа", "Первая редакция.\nСтрока.")
    with pytest.raises(kb.KbForbidden):
        await kb.save_article(svc.sessions, svc.calendar, staff_id=head, section_id=other,
                              given=given, now=NOW)
    with pytest.raises(kb.KbForbidden):
        await kb.set_editor(svc.sessions, head_id=head, section_id=other,
                            staff_id=specialist, editor=True)
    with pytest.raises(kb.KbError, match="сотрудник этого подразделения"):
        await kb.set_editor(svc.sessions, head_id=head, section_id=own, staff_id=specialist,
                            editor=True)
    article = await kb.save_article(svc.sessions, svc.calendar, staff_id=head,
                                    section_id=own, given=given, now=NOW)
    with pytest.raises(kb.KbForbidden):   # a specialist of another department
        await kb.save_article(svc.sessions, svc.calendar, staff_id=specialist,
                              section_id=own, given=given, now=NOW, article_id=article)
    later = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    await kb.save_article(svc.sessions, svc.calendar, staff_id=head, section_id=own,
                          given=kb.ArticleInput(ArticleKind.TEMPLATE, "Шаблон ответа",
                                                "Вторая редакция.\nСтрока."),
                          now=later, article_id=article)
    async with svc.sessions() as s:
        history = await kb.versions(s, article)
    assert [(v.version, v.editor_id) for v in history] == [(1, head), (2, head)]
    change = kb.diff(history[0], history[1])
    assert "-Первая редакция." in change and "+Вторая редакция." in change

    # Quarterly review from the last change; «изменились сведения» → 10 working days.
    async with svc.sessions() as s:
        from ivr.db.models import KbArticle

        saved = await s.get(KbArticle, article)
    assert saved is not None and saved.review_due == date(2027, 3, 1)
    due = await kb.mark_changed(svc.sessions, svc.calendar, article_id=article,
                                staff_id=specialist, now=NOW)
    assert due == date(2026, 12, 9)
    async with svc.sessions() as s:
        mine = [a.id for a in await kb.stale(s, date(2026, 11, 25), department_id=(
            await s.get(KbSection, own)).department_id)]  # type: ignore[union-attr]
        others = await kb.stale(s, date(2026, 11, 25), department_id=(
            await s.get(KbSection, other)).department_id)  # type: ignore[union-attr]
        everyone = [a.id for a in await kb.stale(s, date(2027, 6, 1))]
    assert mine == [article] and others == []
    assert article in everyone and len(everyone) > 1, "the demo's articles are due by then"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_api_keeps_the_same_rule(
    svc: Services, aiohttp_client  # type: ignore[no-untyped-def]
) -> None:
    head, own, other, _ = await _ids(svc)
    async with svc.sessions() as s, s.begin():
        s.add(ApiToken(name="интеграция", token_hash=token_hash("head-token"), staff_id=head))
    client = await aiohttp_client(init_app(svc))
    auth = {"Authorization": "Bearer head-token"}
    body = {"kind": "faq", "title": "Как записаться на приём", "body": "По телефону."}
    made = await client.post("/api/v1/kb/articles", json={**body, "section_id": own},
                             headers=auth)
    assert made.status == 201
    refused = await client.post("/api/v1/kb/articles", json={**body, "section_id": other},
                                headers=auth)
    assert refused.status == 403 and "другое подразделение" in (await refused.json())["error"]
    broken = await client.post("/api/v1/kb/articles", json={"section_id": own}, headers=auth)
    assert broken.status == 400
    found = await (await client.get("/api/v1/kb/search?q=записаться", headers=auth)).json()
    assert [i["title"] for i in found["items"]] == ["Как записаться на приём"]
    await svc.recorder.sync()
    async with svc.sessions() as s:
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["create", "kb_refused"]
