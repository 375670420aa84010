"""Written appeals (R-A1–R-A10): intake, deadlines in working days, notices by the citizen's
channels with a single-use survey link (received by a real SMTP server), the five-year
purge."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import func, select

from ivr.db.models import (
    Appeal,
    AppealOutcome,
    AppealStatus,
    AuditEntry,
    Channel,
    Notification,
    NotificationStatus,
    SurveyResponse,
)
from ivr.notifier import NoticeSender
from ivr.services import appeals, intake, retention, surveys
from ivr.services.container import Services
from ivr.settings import Settings
from web.app import init_app

from .support.records import add_people, services_on
from .support.smtp import SmtpServer, body_of, free_port

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)   # 11:00 in Moscow, a working Wednesday

CSV_HEADER = ("reg_number;registered_on;channel;surname;first_name;patronymic;phone;email;"
              "topic;text;materials\n")


@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str) -> AsyncIterator[Services]:
    # One notice at a time: the registration notice has a test of its own.
    services = services_on(settings, db_url, NOW, appeals={"notify_registration": False})
    yield services
    await services.close()


async def _count(services: Services, model: type) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(func.count()).select_from(model)) or 0


async def test_csv_with_one_bad_row_is_reported_by_line_and_nothing_is_imported(
    svc: Services
) -> None:
    """R-A1: the document-flow export is imported whole or not at all."""
    good = ("2001;20.11.2026;почта;Иванов;Иван;Иванович;+7 900 111-22-33;;Субсидии;Текст;\n"
            "2002;2026-11-21;ЕПГУ;Петрова;Анна;;;petrova@example.org;Пособия;Текст;скан.pdf\n")
    bad = "2003;31.02.2026;лично;Сидоров;Пётр;;;;Пособия;Текст;\n"
    report = await intake.import_csv(svc.sessions, svc.settings, svc.calendar,
                                     CSV_HEADER + good + bad, now=NOW)
    assert report.imported == 0
    assert len(report.errors) == 1 and report.errors[0].startswith("строка 4: дата регистрации")
    assert await _count(svc, Appeal) == 0, "nothing half-imported"

    report = await intake.import_csv(svc.sessions, svc.settings, svc.calendar,
                                     "\ufeff" + CSV_HEADER + good, now=NOW)
    assert (report.imported, report.errors) == (2, [])
    async with svc.sessions() as s:
        first = await s.scalar(select(Appeal).where(Appeal.reg_number == "2001"))
    assert first is not None
    assert (first.channel, first.contact_phone, first.due_date) == (
        Channel.POST, "79001112233", date(2026, 12, 20))  # 30 calendar days (59-ФЗ)

    # The same numbers again, plus a row repeating a number within the file: all reported.
    again = good + "2004;22.11.2026;сайт;;;;;;Пособия;Текст;\n" + \
        "2004;22.11.2026;сайт;;;;;;Пособия;Текст;\n"
    report = await intake.import_csv(svc.sessions, svc.settings, svc.calendar,
                                     CSV_HEADER + again, now=NOW)
    assert report.imported == 0
    assert [e.split(":")[0] for e in report.errors] == ["строка 2", "строка 3", "строка 5"]
    assert "уже зарегистрировано" in report.errors[0]
    assert await _count(svc, Appeal) == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_api_intake_refuses_duplicates_bad_bodies_and_strangers(
    svc: Services, aiohttp_client  # type: ignore[no-untyped-def]
) -> None:
    from web.api import token_hash

    people = await add_people(svc)
    from ivr.db.models import ApiToken

    async with svc.sessions() as s, s.begin():
        s.add(ApiToken(name="СЭДД", token_hash=token_hash("secret-token"),
                       staff_id=people.head.id))
    client = await aiohttp_client(init_app(svc))
    auth = {"Authorization": "Bearer secret-token"}
    body = {"reg_number": "3001", "registered_on": "2026-11-24", "channel": "email",
            "surname": "Лебедева", "email": "lebedeva@example.org", "topic": "Пособия",
            "text": "Прошу разъяснить"}

    assert (await client.post("/api/v1/appeals", json=body)).status == 401
    assert (await client.post("/api/v1/appeals", json=body,
                              headers={"Authorization": "Bearer wrong"})).status == 401
    created = await client.post("/api/v1/appeals", json=body, headers=auth)
    assert created.status == 201
    duplicate = await client.post("/api/v1/appeals", json=body, headers=auth)
    assert duplicate.status == 409
    assert "3001 уже зарегистрировано" in (await duplicate.json())["error"]
    broken = await client.post("/api/v1/appeals", data=b"{not json", headers=auth)
    assert broken.status == 400
    wrong = await client.post("/api/v1/appeals", headers=auth, json={
        **body, "reg_number": "3002", "channel": "голубиная почта", "registered_on": "вчера"})
    assert wrong.status == 400
    message = (await wrong.json())["error"]
    assert "канал поступления" in message and "дата регистрации" in message
    csv_bad = CSV_HEADER + "3003;24.11.2026;почта;;;;;;;;\n3004;24.11.2026;;;;;;;;;\n"
    imported = await client.post("/api/v1/appeals/import", data=csv_bad.encode(), headers=auth)
    assert imported.status == 422
    assert (await imported.json())["errors"][0].startswith("строка 3: канал поступления")
    assert await _count(svc, Appeal) == 1
    await svc.recorder.sync()
    async with svc.sessions() as s:
        audit = (await s.scalars(select(AuditEntry))).all()
    assert [(a.action, a.staff_id, a.object_type) for a in audit] == [
        ("create", people.head.id, "appeal")]


async def _register(svc: Services, reg: str, registered: date, citizen_id: int,
                    topic: str = "Пособия") -> int:
    return await intake.register(svc.sessions, svc.settings, svc.calendar, intake.parse(
        {"reg_number": reg, "registered_on": registered.isoformat(), "channel": "post",
         "citizen_id": citizen_id, "topic": topic, "text": "Прошу помочь"}), now=NOW)


async def test_appeal_opens_by_phone_only_with_its_number_and_the_applicants_digits(
    svc: Services
) -> None:
    """R-A6 (issue 25): the status is for the applicant: the appeal's number and the last
    four digits of the citizen's phone, the same refusal for a wrong pair of any kind."""
    people = await add_people(svc)
    await _register(svc, "5001", date(2026, 11, 2), people.phone_citizen.id)  # …7654321
    async with svc.sessions() as s:
        found = await appeals.verified_appeal(s, "5001", "4321")
        assert found is not None and found.reg_number == "5001"
        for number, digits in (("5001", "0000"), ("5001", "4567"), ("5001", ""),
                               ("5001", "432"), ("5002", "4321"), ("", "4321"),
                               ("500%", "4321"), ("5001*", "4321")):
            assert await appeals.verified_appeal(s, number, digits) is None, (number, digits)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_urgent_deadline_counts_working_days_across_a_holiday_and_a_transferred_day(
    svc: Services
) -> None:
    """R-A3: registered Wed 29.10.2025; Sat 1.11 was a working day (moved from Mon 3.11),
    4.11 a holiday: five working days are 30.10, 31.10, 1.11, 5.11, 6.11."""
    people = await add_people(svc)
    earlier = await _register(svc, "4000", date(2025, 9, 1), people.phone_citizen.id)
    appeal_id = await _register(svc, "4001", date(2025, 10, 29), people.phone_citizen.id)
    async with svc.sessions() as s:
        appeal = await s.get(Appeal, appeal_id)
        assert appeal is not None
        reasons = await appeals.suggest_urgency(s, svc.settings, appeal)
    assert reasons and "повторное обращение по теме «Пособия»" in reasons[0], \
        "the citizen's earlier appeal on the topic is shown as the reason"

    with pytest.raises(appeals.AppealError):
        await appeals.mark_urgent(svc.sessions, svc.settings, svc.calendar, appeal_id,
                                  by=people.executor, reason="повторное")
    due = await appeals.mark_urgent(svc.sessions, svc.settings, svc.calendar, appeal_id,
                                    by=people.head, reason="повторное обращение")
    assert due == date(2025, 11, 6)
    async with svc.sessions() as s:
        overdue = [a.id for a in await appeals.overdue(s, date(2025, 11, 7))]
        soon = [a.id for a in await appeals.due_soon(s, svc.settings, svc.calendar,
                                                     date(2025, 11, 3))]
    assert overdue == [earlier, appeal_id] and soon == [appeal_id]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_abusive_appeal_notice_is_due_in_ten_working_days_and_tracked(
    svc: Services
) -> None:
    """R-A4: registered Thu 25.12.2025; 31.12.2025 and 1–11.01.2026 are days off, so the
    tenth working day is Tue 20.01.2026. Overdue until the notice is sent."""
    people = await add_people(svc)
    appeal_id = await _register(svc, "5001", date(2025, 12, 25), people.phone_citizen.id)
    due = await appeals.mark_abusive(svc.sessions, svc.settings, svc.calendar, appeal_id,
                                     now=NOW)
    assert due == date(2026, 1, 20)
    async with svc.sessions() as s:
        assert [a.id for a in await appeals.overdue(s, date(2026, 1, 21))] == [appeal_id]
        [notice] = (await s.scalars(select(Notification))).all()
    assert (notice.kind, notice.channel, notice.address) == (
        "appeal_not_considered", Channel.PHONE, "79007654321")
    async with svc.sessions() as s, s.begin():
        (await s.get(Notification, notice.id)).status = NotificationStatus.SENT  # type: ignore[union-attr]
    async with svc.sessions() as s:
        assert await appeals.overdue(s, date(2026, 1, 21)) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_plain_language_check_flags_jargon_archaisms_abbreviations_and_negation(
    svc: Services
) -> None:
    """R-A7: flagged before sending; sent only when the executor accepts the flags."""
    people = await add_people(svc)
    appeal_id = await _register(svc, "6001", date(2026, 11, 20), people.portal_citizen.id)
    text = ("Доводим до вашего сведения, что в данном случае выплата через ОСЗН "
            "не представляется возможным оформить. Справку выдаёт МФЦ.")
    given = appeals.AnswerInput(AppealOutcome.CANNOT_RESOLVE, text, people.executor.id,
                                refusal_reasons="нет права на выплату")
    with pytest.raises(appeals.PlainLanguageIssues) as issues:
        await appeals.answer(svc.sessions, svc.settings, appeal_id, given, now=NOW)
    found = {(f.kind, f.fragment.lower()) for f in issues.value.flags}
    assert found == {("archaism", "доводим до вашего сведения"), ("archaism", "данном"),
                     ("negative", "не представляется возможным"), ("abbreviation", "осзн")}, \
        "МФЦ is an allowed abbreviation"
    async with svc.sessions() as s:
        assert (await s.get(Appeal, appeal_id)).status == AppealStatus.REGISTERED  # type: ignore[union-attr]
    with pytest.raises(appeals.AppealError, match="причины"):
        await appeals.answer(svc.sessions, svc.settings, appeal_id, appeals.AnswerInput(
            AppealOutcome.CANNOT_RESOLVE, "Текст", people.executor.id), now=NOW)
    flags = await appeals.answer(svc.sessions, svc.settings, appeal_id, given, now=NOW,
                                 accept_flags=True)
    assert len(flags) == 4
    with pytest.raises(appeals.AppealError, match="ответ гражданину ещё не отправлен"):
        await appeals.complete(svc.sessions, appeal_id, by=people.head, now=NOW)


@pytest_asyncio.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


async def test_answer_notice_by_email_carries_a_survey_link_answered_once(
    settings: Settings, db_url: str, smtp: SmtpServer
) -> None:
    """R-A2, R-A5, R-A6, R-A8, R-A10: the citizen chose the state portal, so the answer goes
    to the portal's outbox and, duplicated, to her e-mail; the e-mail names the executor
    and carries a survey link that records one answer and refuses a second."""
    web_port = free_port()
    svc = services_on(settings, db_url, NOW, smtp={"port": smtp.port},
                      survey={"link_base_url": f"http://127.0.0.1:{web_port}/survey/"},
                      appeals={"notify_registration": False})
    runner = web.AppRunner(init_app(svc))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", web_port).start()
    try:
        people = await add_people(svc)
        appeal_id = await _register(svc, "7001", date(2026, 11, 2), people.portal_citizen.id)
        await appeals.answer(svc.sessions, svc.settings, appeal_id, appeals.AnswerInput(
            AppealOutcome.WILL_RESOLVE_BY, "Выплата будет назначена после проверки сведений.",
            people.executor.id, outcome_date=date(2026, 12, 15)), now=NOW)
        # Queuing the same notice again adds nothing: never sent twice.
        async with svc.sessions() as s, s.begin():
            appeal = await s.get(Appeal, appeal_id)
            assert appeal is not None
            await appeals._notify(s, svc.settings, appeal, appeals.letters.appeal_answer(
                appeal, None, svc.settings.organisation), "answer", NOW)

        sender = NoticeSender(svc, None)
        assert await sender.run_once() == 2
        assert await sender.run_once() == 0
        async with svc.sessions() as s:
            copies = {n.channel: n.status for n in (await s.scalars(select(Notification)))}
        assert copies == {Channel.STATE_PORTAL: NotificationStatus.OUTBOX,
                          Channel.EMAIL: NotificationStatus.SENT}
        [mail] = smtp.inbox.to("morozova@example.org")
        text = body_of(mail)
        assert mail["Subject"] == "Ответ на обращение № 7001"
        assert "будет решён до 15.12.2026" in text
        assert "Сидорова Е. В., телефон 84950001002" in text, "R-A8: executor and phone"
        [link] = re.findall(r"http://\S+/survey/\S+", text)

        async with aiohttp.ClientSession() as http:
            async with http.get(link) as page:
                assert page.status == 200 and "Получили ли вы ответ" in await page.text()
            async with http.post(link, data={"answer_received": "yes"}) as incomplete:
                assert incomplete.status == 400
            form = {"answer_received": "yes", "quality": "partly", "comment": "долго ждала"}
            async with http.post(link, data=form) as done:
                assert done.status == 200 and "Спасибо" in await done.text()
            async with http.post(link, data={**form, "quality": "satisfied"}) as again:
                assert again.status == 410 and "уже получен" in await again.text()
            async with http.get(link) as used:
                assert used.status == 410
            async with http.get(link[:-3] + "xyz") as forged:
                assert forged.status == 404
        async with svc.sessions() as s:
            [response] = (await s.scalars(select(SurveyResponse))).all()
        assert response.appeal_id == appeal_id
        assert response.answers == {"answer_received": "yes", "quality": "partly",
                                    "comment": "долго ждала"}
        async with svc.sessions() as s:
            seen = await surveys.summary(s, NOW - timedelta(days=1), NOW + timedelta(days=1),
                                         about="appeal")
        assert seen == surveys.Summary(responses=1, answer_received=1, satisfied=0, partly=1,
                                       not_satisfied=0)
        # Sent: the controlling official records the appeal done (R-A10).
        await appeals.complete(svc.sessions, appeal_id, by=people.head, now=NOW)
    finally:
        await runner.cleanup()
        await svc.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_email_to_an_absent_smtp_server_is_retried_then_sent(
    settings: Settings, db_url: str
) -> None:
    port = free_port()
    moment = [NOW]
    svc = services_on(settings, db_url, NOW, smtp={"port": port},
                      notices={"retry_seconds": 60}, appeals={"notify_registration": False})
    svc.clock = lambda: moment[0]
    try:
        people = await add_people(svc)
        appeal_id = await _register(svc, "7101", date(2026, 11, 2), people.portal_citizen.id)
        await appeals.redirect(svc.sessions, svc.settings, appeal_id, people.agency.id,
                               now=NOW)
        sender = NoticeSender(svc, None)
        assert await sender.run_once() == 2      # outbox + an e-mail that fails
        async with svc.sessions() as s:
            mail = await s.scalar(select(Notification).where(
                Notification.channel == Channel.EMAIL))
        assert mail is not None
        assert (mail.status, mail.attempts) == (NotificationStatus.PENDING, 1)
        assert mail.last_error and mail.last_error.startswith("SMTP")
        assert await sender.run_once() == 0, "not before notices.retry_seconds"
        server = SmtpServer(port)
        server.start()
        try:
            moment[0] = NOW + timedelta(seconds=61)
            assert await sender.run_once() == 1
        finally:
            server.stop()
        [received] = server.inbox.to("morozova@example.org")
        assert "Социальный фонд России" in body_of(received)
        async with svc.sessions() as s:
            sent = await s.get(Notification, mail.id)
        assert sent is not None and (sent.status, sent.attempts) == (NotificationStatus.SENT, 2)
    finally:
        await svc.close()


async def test_five_year_purge_removes_exactly_the_expired_records(svc: Services) -> None:
    """R-A9: kept five years from registration; the day before the cutoff goes, the
    cutoff day stays. Notices and survey answers go with their appeal."""
    people = await add_people(svc)
    today = date(2026, 11, 25)
    expired = await _register(svc, "8001", date(2021, 11, 24), people.portal_citizen.id)
    kept = await _register(svc, "8002", date(2021, 11, 25), people.portal_citizen.id)
    recent = await _register(svc, "8003", date(2026, 1, 15), people.portal_citizen.id)
    for appeal_id in (expired, kept):
        await appeals.redirect(svc.sessions, svc.settings, appeal_id, people.agency.id,
                               now=NOW)
    async with svc.sessions() as s, s.begin():
        s.add_all([SurveyResponse(token_id="a", appeal_id=expired, answers={"quality": "x"}),
                   SurveyResponse(token_id="b", appeal_id=kept, answers={"quality": "y"})])

    result = await retention.purge_expired(svc.sessions, svc.settings, today, NOW)
    assert (result.appeals, result.notices, result.surveys) == (1, 2, 1)
    async with svc.sessions() as s:
        assert set(await s.scalars(select(Appeal.id))) == {kept, recent}
        assert set(await s.scalars(select(Notification.appeal_id))) == {kept}
        assert set(await s.scalars(select(SurveyResponse.appeal_id))) == {kept}
        history = await retention.citizen_history(s, svc.settings, people.portal_citizen.id,
                                                  today)
    assert [a.reg_number for a in history] == ["8003", "8002"]
    csv_text = retention.history_csv(history)
    assert csv_text.splitlines()[1].startswith("8003;15.01.2026;Пособия;зарегистрировано")
    again = await retention.purge_expired(svc.sessions, svc.settings, today, NOW)
    assert again.appeals == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_purge_can_anonymise_instead(settings: Settings, db_url: str) -> None:
    svc = services_on(settings, db_url, NOW, appeals={"retention_mode": "anonymise",
                                                      "notify_registration": False})
    try:
        people = await add_people(svc)
        old = await _register(svc, "8101", date(2020, 3, 1), people.portal_citizen.id)
        await appeals.redirect(svc.sessions, svc.settings, old, people.agency.id, now=NOW)
        result = await retention.purge_expired(svc.sessions, svc.settings, date(2026, 11, 25),
                                               NOW)
        assert (result.appeals, result.notices) == (1, 2)
        async with svc.sessions() as s:
            appeal = await s.get(Appeal, old)
            bodies = set(await s.scalars(select(Notification.body)))
        assert appeal is not None and appeal.anonymised_at is not None
        assert (appeal.text, appeal.citizen_id, appeal.topic) == ("", None, "Пособия")
        assert bodies == {""}
        assert (await retention.purge_expired(svc.sessions, svc.settings, date(2026, 11, 25),
                                              NOW)).appeals == 0
    finally:
        await svc.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_status_notices_on_registration_and_assignment_and_the_reports(
    settings: Settings, db_url: str
) -> None:
    """R-A2: the citizen hears of each status change by the chosen channel (portal →
    duplicated to e-mail); R-A10: appeals by topic with the overdue ones, repeat appeals."""
    svc = services_on(settings, db_url, NOW)
    try:
        people = await add_people(svc)
        first = await _register(svc, "9001", date(2026, 11, 2), people.portal_citizen.id)
        await _register(svc, "9002", date(2026, 11, 10), people.portal_citizen.id)
        await _register(svc, "9003", date(2026, 9, 1), people.phone_citizen.id, "Субсидии")
        await appeals.assign(svc.sessions, svc.settings, first, people.executor.id, now=NOW)
        await appeals.assign(svc.sessions, svc.settings, first, people.head.id, now=NOW)
        async with svc.sessions() as s:
            rows = (await s.execute(select(Notification.kind, Notification.channel)
                                    .order_by(Notification.id))).all()
            in_work = await s.scalar(select(Notification.body).where(
                Notification.kind == "appeal_in_work", Notification.channel == Channel.EMAIL))
            appeal = await s.get(Appeal, first)
            by_topic = await appeals.report_by_topic(s, date(2026, 9, 1), date(2026, 11, 30),
                                                     date(2026, 11, 25))
            repeats = await appeals.repeat_appeals(s, date(2026, 1, 1))
        assert [(k, c.value) for k, c in rows] == [
            ("appeal_registered", "state_portal"), ("appeal_registered", "email"),
            ("appeal_registered", "state_portal"), ("appeal_registered", "email"),
            ("appeal_registered", "phone"),
            ("appeal_in_work", "state_portal"), ("appeal_in_work", "email")], \
            "a reassignment sends no second notice"
        assert in_work is not None and "Сидорова Е. В., телефон 84950001002" in in_work
        assert appeal is not None and (appeal.status, appeal.executor_id) == (
            AppealStatus.IN_WORK, people.head.id)
        assert by_topic == [("Пособия", 2, 0, 0), ("Субсидии", 1, 0, 1)]
        assert repeats == [(people.portal_citizen.id, "Пособия", 2)]
    finally:
        await svc.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_outbox_api_hands_post_and_portal_copies_to_the_external_system(
    settings: Settings, db_url: str, aiohttp_client  # type: ignore[no-untyped-def]
) -> None:
    from ivr.db.models import ApiToken
    from web.api import token_hash

    svc = services_on(settings, db_url, NOW, smtp={"port": free_port()})
    try:
        people = await add_people(svc)
        async with svc.sessions() as s, s.begin():
            s.add(ApiToken(name="ЕПГУ", token_hash=token_hash("portal-token"),
                           staff_id=people.head.id))
        await _register(svc, "9101", date(2026, 11, 20), people.portal_citizen.id)
        await NoticeSender(svc, None).run_once()    # portal → outbox; e-mail fails, retried
        client = await aiohttp_client(init_app(svc))
        auth = {"Authorization": "Bearer portal-token"}
        assert (await client.get("/api/v1/outbox?channel=post", headers=auth)).status == 200
        assert (await client.get("/api/v1/outbox?channel=fax", headers=auth)).status == 400
        listed = await client.get("/api/v1/outbox?channel=state_portal", headers=auth)
        [item] = (await listed.json())["items"]
        assert "9101" in item["subject"] and item["citizen_id"] == people.portal_citizen.id
        path = f"/api/v1/outbox/{item['id']}"
        assert (await client.post(path, data=b"[", headers=auth)).status == 400
        assert (await client.post(path, json={"delivered": "yes"}, headers=auth)).status == 400
        assert (await client.post(path, json={"delivered": True}, headers=auth)).status == 200
        assert (await client.post(path, json={"delivered": True}, headers=auth)).status == 409
        await svc.recorder.sync()
        async with svc.sessions() as s:
            notice = await s.get(Notification, item["id"])
            audit = (await s.execute(select(AuditEntry.action, AuditEntry.object_type)
                                     .order_by(AuditEntry.id))).all()
        assert notice is not None and notice.status == NotificationStatus.SENT
        assert [tuple(a) for a in audit] == [("view", "notification"), ("view", "notification"),
                                             ("update", "notification")]
    finally:
        await svc.close()
