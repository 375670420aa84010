"""The panel's access rules (issue 5) and its records pages (issue 6 intake, R-P2, R-P4):
login with argon2, server-side sessions that expire and are revoked on logout, CSRF on
every form, slowed and locked failed logins, masked phones in lists, every view of personal
data in the audit log."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from ivr.db.models import (
    Appeal,
    AuditEntry,
    Booking,
    BookingStatus,
    Citizen,
    Staff,
    WebSession,
)
from ivr.demo import DEMO_PASSWORD
from ivr.services.container import Services
from web import auth

from .support.panel_client import put_on_call
from .support.records import kb_sections_of

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def _login(client: TestClient, login: str, password: str = DEMO_PASSWORD) -> int:
    resp = await client.post("/login", data={"login": login, "password": password,
                                             "next": "/panel"}, allow_redirects=False)
    return resp.status


async def _csrf(client: TestClient, path: str = "/panel") -> str:
    page = await client.get(path)
    m = re.search(r'name="_csrf" value="([^"]+)"', await page.text())
    assert m, "every panel page carries the form token"
    return m.group(1)


async def _audit(svc: Services) -> list[tuple[str, str]]:
    await svc.recorder.sync()   # audit entries go through the recorder's batches
    async with svc.sessions() as s:
        rows = (await s.execute(select(AuditEntry.action, AuditEntry.object_type)
                                .order_by(AuditEntry.id))).all()
    return [(a, o) for a, o in rows]


async def test_login_session_cookie_csrf_and_logout(svc: Services, client: TestClient) -> None:
    first = await client.get("/panel", allow_redirects=False)
    assert first.status == 303 and first.headers["Location"].startswith("/login")
    assert await _login(client, "ivanova", "wrong password") == 401
    resp = await client.post("/login", data={"login": "ivanova", "password": DEMO_PASSWORD,
                                             "next": "https://evil.example/"},
                             allow_redirects=False)
    # No open redirect: the panel's own page, for an operator their workspace (issue 29).
    assert resp.status == 303 and resp.headers["Location"] == "/panel/workspace"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=36000" in cookie
    token = resp.cookies[auth.COOKIE].value
    async with svc.sessions() as s:
        stored = await s.scalar(select(WebSession))
    assert stored is not None and token not in stored.token_hash, "only a hash is stored"
    assert stored.expires_at == NOW + timedelta(hours=auth.SESSION_HOURS)

    # A form posted without its token (a cross-site request) is refused and logged.
    refused = await client.post("/panel/appeals/new", data={"reg_number": "1"})
    assert refused.status == 403 and "CSRF" in await refused.text()
    forged = await client.post("/panel/appeals/new", data={"reg_number": "1",
                                                           "_csrf": "guess"})
    assert forged.status == 403
    async with svc.sessions() as s:
        assert await s.scalar(select(Appeal).where(Appeal.reg_number == "1")) is None

    # The session expires on the server, whatever the browser keeps.
    clock = svc.clock
    svc.clock = lambda: stored.expires_at + timedelta(seconds=1)
    late = await client.get("/panel", allow_redirects=False)
    svc.clock = clock
    assert late.status == 303 and late.headers["Location"].startswith("/login"), "expired"
    assert (await client.get("/panel", allow_redirects=False)).status == 200

    csrf = await _csrf(client)
    out = await client.post("/logout", data={"_csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    client.session.cookie_jar.update_cookies({auth.COOKIE: token})   # the old cookie again
    again = await client.get("/panel", allow_redirects=False)
    assert again.status == 303, "revoked on logout"
    actions = [a for a, _ in await _audit(svc)]
    assert actions == ["login_failed", "login", "csrf_refused", "csrf_refused", "logout"]


async def test_failed_logins_are_slowed_then_locked(
    svc: Services, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [auth.login_delay(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    monkeypatch.setattr(auth, "SLOWDOWN_SECONDS", 0.001)
    for _ in range(auth.LOCK_AFTER):
        assert await _login(client, "petrov", "not the password") == 401
    locked = await client.post("/login", data={"login": "petrov", "password": DEMO_PASSWORD})
    assert locked.status == 401 and "заблокирована" in await locked.text()
    assert await _login(client, "nobody", "x") == 401, "unknown logins answer the same"
    async with svc.sessions() as s:
        petrov = await s.scalar(select(Staff).where(Staff.login == "petrov"))
    assert petrov is not None and petrov.locked_until == NOW + timedelta(
        minutes=auth.LOCK_MINUTES)
    # After the lock the right password works again.
    svc.clock = lambda: NOW + timedelta(minutes=auth.LOCK_MINUTES, seconds=1)
    assert await _login(client, "petrov") == 303


async def test_register_an_appeal_in_the_panel_list_masked_card_audited(
    svc: Services, client: TestClient
) -> None:
    assert await _login(client, "kuznetsov") == 303     # a department head
    csrf = await _csrf(client, "/panel/appeals/new")
    form = {"_csrf": csrf, "reg_number": "7777", "registered_on": "2026-11-24",
            "channel": "email", "surname": "Лебедева", "first_name": "Мария",
            "phone": "74951112233", "topic": "Пособия", "text": "Прошу разъяснить"}
    bad = await client.post("/panel/appeals/new", data={**form, "registered_on": "завтра"})
    assert bad.status == 400 and "дата регистрации" in await bad.text()
    made = await client.post("/panel/appeals/new", data=form, allow_redirects=False)
    assert made.status == 303
    card_path = made.headers["Location"]
    dup = await client.post("/panel/appeals/new", data=form)
    assert dup.status == 400 and "7777 уже зарегистрировано" in await dup.text()

    listing = await (await client.get("/panel/appeals?q=Лебедева")).text()
    assert "7777" in listing and "7495***2233" in listing and "74951112233" not in listing
    card = await (await client.get(card_path)).text()
    assert "+7 495 111-22-33" in card, "the card shows the number in full, and is audited"
    assert "Признать срочным" in card

    # Urgent from the card: 5 working days from 24.11.2026 → 01.12.2026.
    urgent = await client.post(f"{card_path}/urgent", data={
        "_csrf": csrf, "reason": "повторное обращение"}, allow_redirects=False)
    assert urgent.status == 303
    async with svc.sessions() as s:
        appeal = await s.scalar(select(Appeal).where(Appeal.reg_number == "7777"))
    assert appeal is not None and appeal.urgent and str(appeal.due_date) == "2026-12-01"
    # A plain-language flag stops the answer until accepted. The head signs it himself
    # (R-A8: the executor is the signing employee or one the head picks).
    async with svc.sessions() as s:
        head_id = await s.scalar(select(Staff.id).where(Staff.login == "kuznetsov"))
    flagged = await client.post(f"{card_path}/answer", data={
        "_csrf": csrf, "outcome": "resolved", "text": "Данный вопрос решён.",
        "executor_id": str(head_id)})
    assert flagged.status == 422 and "канцелярит" in await flagged.text()
    assert ("view", "appeal_list") in await _audit(svc)
    assert [a for a in await _audit(svc) if a == ("view", "appeal")] == [("view", "appeal")]
    assert ("create", "appeal") in await _audit(svc) and ("urgent", "appeal") in await _audit(svc)


async def test_book_and_cancel_a_reception_in_the_panel(svc: Services,
                                                        client: TestClient) -> None:
    assert await _login(client, "ivanova") == 303
    page = await (await client.get("/panel/receptions")).text()
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    slot_id = re.search(r'<option value="(\d+)">', page).group(1)  # type: ignore[union-attr]
    form = {"_csrf": csrf, "slot_id": slot_id, "phone": "+7 900 765-43-21",
            "topic": "Пособие", "accessibility_needs": "доступ без ступеней",
            "remind_day_before": "on"}
    made = await client.post("/panel/receptions/book", data=form, allow_redirects=False)
    assert made.status == 303
    taken = await client.post("/panel/receptions/book", data=form)
    assert taken.status == 409 and "уже занято" in await taken.text()
    unknown = await client.post("/panel/receptions/book", data={**form, "phone": "70000000000"})
    assert unknown.status == 400
    listing = await (await client.get("/panel/receptions")).text()
    assert "доступ без ступеней" in listing
    async with svc.sessions() as s:
        booking = await s.scalar(select(Booking).where(Booking.topic == "Пособие"))
    assert booking is not None
    gone = await client.post(f"/panel/receptions/{booking.id}/cancel", data={"_csrf": csrf},
                             allow_redirects=False)
    assert gone.status == 303
    async with svc.sessions() as s:
        cancelled = await s.get(Booking, booking.id)
    assert cancelled is not None and (cancelled.status, cancelled.cancelled_via) == (
        BookingStatus.CANCELLED, "panel")


async def test_an_operator_books_and_cancels_a_reception_beside_the_call(
    svc: Services, client: TestClient
) -> None:
    """The card books the caller from the free times and cancels a booking (R-P1, R-P4);
    a caller not yet known is registered with the name given; both are audited. The card
    is the call's the operator is on (Asterisk's AgentConnect tells the panel)."""
    assert await _login(client, "ivanova") == 303
    csrf = await _csrf(client, "/panel/workspace")
    headers = {"X-CSRF-Token": csrf}
    put_on_call(client, "1001", "call-1", "79007654321")
    card = await (await client.get("/panel/workspace/card?linkedid=call-1")).text()
    assert "Показать свободное время" in card and 'name="surname"' not in card
    # The dialogs list every colleague with a phone, never the operator herself.
    async with svc.sessions() as s:
        me = await s.scalar(select(Staff).where(Staff.login == "ivanova"))
        others = list(await s.scalars(select(Staff).where(
            Staff.extension.is_not(None), Staff.active, Staff.login != "ivanova")))
    assert me is not None and me.extension and others
    transfer = re.search(r'<select name="extension">(.*?)</select>', card).group(1)  # type: ignore[union-attr]
    assert sorted(re.findall(r'<option value="([^"]+)"', transfer)) == sorted(
        str(o.extension) for o in others)
    assert f"{others[0].initials_name}, {others[0].position}" in transfer
    assignee = re.search(r'<select name="assignee_id">(.*?)</select>', card).group(1)  # type: ignore[union-attr]
    assert f'value="{me.id}"' not in assignee and f'value="{others[0].id}"' in assignee
    slots = (await (await client.get("/panel/workspace/slots")).json())["items"]
    assert len(slots) >= 2 and all(s["label"] for s in slots)

    form = {"phone": "79007654321", "slot_id": str(slots[0]["id"]), "topic": "Пособие",
            "accessibility_needs": "сурдопереводчик", "reminder_channel": "phone"}
    refused = await client.post("/panel/workspace/book", data=form)
    assert refused.status == 403, "no CSRF token, no booking"
    booked = await client.post("/panel/workspace/book", data=form, headers=headers)
    assert booked.status == 200 and "Записан на" in (await booked.json())["ok"]
    taken = await client.post("/panel/workspace/book", data=form, headers=headers)
    assert taken.status == 409 and "занято" in (await taken.json())["error"]

    newcomer = {**form, "phone": "79005550011", "slot_id": str(slots[1]["id"])}
    nameless = await client.post("/panel/workspace/book", data=newcomer, headers=headers)
    assert nameless.status == 400 and "фамилию" in (await nameless.json())["error"]
    named = await client.post("/panel/workspace/book", headers=headers, data={
        **newcomer, "surname": "Зайцева", "first_name": "Ольга", "patronymic": "Петровна"})
    assert named.status == 200

    put_on_call(client, "1001", "call-2", "79005550011")
    card = await (await client.get("/panel/workspace/card?linkedid=call-2")).text()
    assert "Зайцева Ольга Петровна" in card
    booking_id = int(re.search(r'data-booking="(\d+)"', card).group(1))  # type: ignore[union-attr]
    cancelled = await client.post("/panel/workspace/cancel-booking", headers=headers,
                                  data={"booking_id": str(booking_id)})
    assert cancelled.status == 200 and (await cancelled.json())["ok"] == "Запись отменена."
    again = await client.post("/panel/workspace/cancel-booking", headers=headers,
                              data={"booking_id": str(booking_id)})
    assert again.status == 409
    async with svc.sessions() as s:
        rows = [(b.id, b.status, b.booked_via, b.accessibility_needs) for b in await s.scalars(
            select(Booking).where(Booking.topic == "Пособие").order_by(Booking.id))]
        gone = await s.get(Booking, booking_id)
    assert [r[1:] for r in rows] == [
        (BookingStatus.BOOKED, "hotline", "сурдопереводчик"),
        (BookingStatus.CANCELLED, "hotline", "сурдопереводчик")]
    assert rows[1][0] == booking_id and gone is not None and gone.cancelled_via == "panel"
    audit = await _audit(svc)
    assert {("create", "booking"), ("cancel", "booking"), ("create", "citizen")} <= set(audit)


async def test_a_department_head_edits_only_their_own_kb_section(
    svc: Services, client: TestClient
) -> None:
    """R-K1 in the panel: the own section takes a new article and a new version (with its
    diff); another department's section refuses, and the refusal is audited."""
    assert await _login(client, "kuznetsov") == 303
    _, own, other = await kb_sections_of(svc, "kuznetsov")
    csrf = await _csrf(client, f"/panel/kb/sections/{own}")
    made = await client.post(f"/panel/kb/sections/{own}", data={
        "_csrf": csrf, "kind": "faq", "title": "Сроки оказания услуги",
        "body": "Десять рабочих дней."}, allow_redirects=False)
    assert made.status == 303
    article_path = made.headers["Location"]
    edited = await client.post(article_path, data={
        "_csrf": csrf, "kind": "faq", "title": "Сроки оказания услуги",
        "body": "Пять рабочих дней."}, allow_redirects=False)
    assert edited.status == 303
    page = await (await client.get(article_path)).text()
    assert "версия 2" in page and "-Десять рабочих дней." in page and \
        "+Пять рабочих дней." in page
    refused = await client.post(f"/panel/kb/sections/{other}", data={
        "_csrf": csrf, "kind": "faq", "title": "Чужая статья", "body": "Текст"})
    assert refused.status == 403 and "другое подразделение" in await refused.text()
    found = await (await client.get("/panel/kb?q=сроки+услуг")).text()
    assert "Сроки оказания услуги" in found
    assert ("kb_refused", "kb_section") in await _audit(svc)


async def test_the_agency_directory_is_kept_by_heads_and_found_beside_the_call(
    svc: Services, client: TestClient
) -> None:
    """R-H7: the knowledge base's directory of other bodies. An operator finds an agency by
    the question («пенсия» → the Social Fund's «пенсии») beside the call; only heads,
    supervisors and administrators change it, every change audited with what changed."""
    assert await _login(client, "ivanova") == 303
    beside = await (await client.get("/panel/workspace/kb?q=пенсия")).json()
    [fund] = [i for i in beside["items"] if i.get("agency")]
    assert fund["title"].startswith("Социальный фонд") and "88001001000" in fund["body"]
    csrf = await _csrf(client, "/panel/kb/agencies")
    refused = await client.post("/panel/kb/agencies", data={
        "_csrf": csrf, "name": "Прокуратура области", "phone": "84950000000"})
    assert refused.status == 403
    await client.post("/logout", data={"_csrf": csrf})

    assert await _login(client, "kuznetsov") == 303
    csrf = await _csrf(client, "/panel/kb/agencies")
    nameless = await client.post("/panel/kb/agencies", data={"_csrf": csrf, "phone": "1"})
    assert nameless.status == 400 and "название" in await nameless.text()
    made = await client.post("/panel/kb/agencies", allow_redirects=False, data={
        "_csrf": csrf, "name": "Прокуратура области", "phone": "84950000000",
        "competence": "жалобы на нарушение закона должностными лицами"})
    assert made.status == 303
    agency_id = int(made.headers["Location"].rsplit("-", 1)[1])
    changed = await client.post(f"/panel/kb/agencies/{agency_id}", allow_redirects=False,
                                data={"_csrf": csrf, "name": "Прокуратура области",
                                      "phone": "84950000001",
                                      "competence": "жалобы на нарушение закона"})
    assert changed.status == 303
    page = await (await client.get("/panel/kb/agencies?q=нарушения+закона")).text()
    assert "84950000001" in page and "Социальный фонд" not in page
    await svc.recorder.sync()
    async with svc.sessions() as s:
        details = list(await s.scalars(select(AuditEntry.details).where(
            AuditEntry.object_type == "agency", AuditEntry.action == "update")))
    assert details == ["competence: жалобы на нарушение закона должностными лицами → "
                       "жалобы на нарушение закона; phone: 84950000000 → 84950000001"]
    assert ("kb_refused", "agency") in await _audit(svc)


async def test_appeal_reports_history_and_the_plain_language_dictionary(
    svc: Services, client: TestClient
) -> None:
    """R-A10 reports, R-A9 a citizen's five-year history (printable, CSV), R-A7 the
    dictionary edited by a head: a new word stops the next answer."""
    assert await _login(client, "kuznetsov") == 303
    report = await client.get("/panel/appeals/reports?since=2026-01-01&until=2026-12-31")
    assert report.status == 200 and "Меры социальной поддержки" in await report.text()
    async with svc.sessions() as s:
        citizen_id = await s.scalar(select(Appeal.citizen_id).where(Appeal.reg_number == "1024"))
    page = await client.get(f"/panel/citizens/{citizen_id}/history")
    assert page.status == 200 and "1024" in await page.text()
    exported = await client.get(f"/panel/citizens/{citizen_id}/history?format=csv")
    assert exported.headers["Content-Type"].startswith("text/csv")
    assert "1024;" in (await exported.read()).decode("utf-8-sig")
    csrf = await _csrf(client, "/panel/dictionary")
    added = await client.post("/panel/dictionary", data={
        "_csrf": csrf, "term": "ввиду", "kind": "archaism", "hint": "«потому что»"},
        allow_redirects=False)
    assert added.status == 303
    twice = await client.post("/panel/dictionary", data={
        "_csrf": csrf, "term": "ввиду", "kind": "archaism"})
    assert twice.status == 400
    from ivr.services import plain_language

    async with svc.sessions() as s:
        flags = plain_language.check("Ввиду изменений сроки другие.",
                                     await plain_language.load_dictionary(s))
    assert [(f.kind, f.fragment) for f in flags] == [("archaism", "Ввиду")]
    overdue = await client.get("/panel/appeals?status=due_soon")
    assert overdue.status == 200
    actions = await _audit(svc)
    assert ("view", "citizen_history") in actions and ("update", "plain_language") in actions


async def test_the_booking_form_keeps_what_was_typed_and_says_what_to_do(
    svc: Services, client: TestClient
) -> None:
    """A malformed number gets its format, an unknown one the way to register the citizen;
    the form comes back as typed. With the names, the citizen is registered and booked."""
    assert await _login(client, "ivanova") == 303
    page = await (await client.get("/panel/receptions")).text()
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    slot_id = re.search(r'<option value="(\d+)">', page).group(1)  # type: ignore[union-attr]
    form = {"_csrf": csrf, "slot_id": slot_id, "phone": "abc", "topic": "Субсидия на жильё"}
    malformed = await client.post("/panel/receptions/book", data=form)
    text = await malformed.text()
    assert malformed.status == 400 and "11 цифр, например +7 900 123-45-67" in text
    assert 'name="phone" value="abc"' in text and 'value="Субсидия на жильё"' in text
    assert f'<option value="{slot_id}" selected>' in text
    unknown = await client.post("/panel/receptions/book",
                                data={**form, "phone": "+7 900 111-22-33"})
    text = await unknown.text()
    assert unknown.status == 400 and "укажите его фамилию и имя" in text
    assert 'value="+7 900 111-22-33"' in text and "не найден" not in text
    made = await client.post("/panel/receptions/book", allow_redirects=False, data={
        **form, "phone": "+7 900 111-22-33", "surname": "Белова", "first_name": "Ирина"})
    assert made.status == 303
    async with svc.sessions() as s:
        booking = await s.scalar(select(Booking).where(Booking.topic == "Субсидия на жильё"))
        citizen = await s.get(Citizen, booking.citizen_id) if booking else None
    assert citizen is not None and (citizen.surname, citizen.first_name) == ("Белова", "Ирина")
    assert ("create", "citizen") in await _audit(svc)


async def test_pages_show_only_the_links_a_role_may_open_and_label_their_fields(
    client: TestClient
) -> None:
    """A specialist is not offered the reports (403 for them); overseers find the
    recordings; search and date fields carry labels; an empty search is a sentence."""
    assert await _login(client, "sidorova") == 303      # a specialist
    appeals = await (await client.get("/panel/appeals")).text()
    assert "/panel/appeals/reports" not in appeals
    assert (await client.get("/panel/appeals/reports")).status == 403
    assert '<label>Поиск <input name="q"' in appeals and "<label>Состояние <select" in appeals
    assert 'href="/panel/recordings"' not in appeals
    kb = await (await client.get("/panel/kb?q=щзщзщз")).text()
    assert '<label>Поиск <input name="q"' in kb
    assert '<p id="kb-nothing">Ничего не найдено.</p>' in kb and "<li>Ничего" not in kb
    for login in ("smirnova", "orlov"):
        assert await _login(client, login) == 303
        home = await (await client.get("/panel")).text()
        assert '<a href="/panel/recordings">Записи разговоров</a>' in home, login
    assert await _login(client, "kuznetsov") == 303     # a department head
    assert "/panel/appeals/reports" in await (await client.get("/panel/appeals")).text()
    report = await (await client.get("/panel/appeals/reports")).text()
    assert '<label>с <input type="date" name="since"' in report
    assert '<label>по <input type="date" name="until"' in report


async def test_the_appeal_card_formats_phones_and_login_keeps_the_name(
    svc: Services, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "SLOWDOWN_SECONDS", 0.001)
    wrong = await client.post("/login", data={"login": "kuznetsov", "password": "не тот"})
    text = await wrong.text()
    assert wrong.status == 401 and 'name="login" value="kuznetsov"' in text
    assert "не тот" not in text, "the password is never sent back"
    assert await _login(client, "kuznetsov") == 303
    async with svc.sessions() as s:
        appeal_id = await s.scalar(select(Appeal.id).where(Appeal.reg_number == "1024"))
    card = await (await client.get(f"/panel/appeals/{appeal_id}")).text()
    phones = card.split("<dt>Телефоны</dt>")[1].split("</dd>")[0]
    assert "+7 900 123-45-67" in phones and "79001234567" not in phones
