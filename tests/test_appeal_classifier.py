"""Appeals classified and analysed (R-A1, R-A10, issue 27): the topic comes from the
ministry's classifier (a table, seeded by the migration), never free text; completion
records the violations found and their causes; the analysis report groups appeals by the
classifier's topics and the violations by topic, kind and cause."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from ivr.db.models import Appeal, AppealStatus, AppealTopic, AppealViolation
from ivr.services import appeals, intake, topics
from ivr.services.container import Services
from ivr.settings import Settings

from .conftest import BACKENDS, hotline_environ
from .support.panel_client import log_in
from .support.records import People, services_on
from .test_notice_channels import AUTH, staff_with_passwords

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str) -> AsyncIterator[Services]:
    services = services_on(settings, db_url, NOW, appeals={"notify_registration": False})
    yield services
    await services.close()


async def _register(svc: Services, reg: str, topic: str, citizen_id: int) -> int:
    return await intake.register(svc.sessions, svc.settings, svc.calendar, intake.parse(
        {"reg_number": reg, "registered_on": "2026-11-10", "channel": "post",
         "citizen_id": citizen_id, "topic": topic, "text": "Прошу помочь"}), now=NOW)


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_the_classifier_refuses_an_unknown_or_retired_topic(
    svc: Services, client: TestClient
) -> None:
    """R-A1: a topic by code or title (any case), from the seeded classifier; an unknown
    topic is refused by the API (422), the CSV import (by line) and the panel's form, a
    retired one takes no new appeals but keeps its old ones."""
    people = await staff_with_passwords(svc)
    async with svc.sessions() as s:
        seeded = {t.code: t.title for t in await topics.active(s)}
    assert seeded["01.01"] == "Пособия" and len(seeded) >= 10
    first = await _register(svc, "8001", "01.02", people.phone_citizen.id)
    second = await _register(svc, "8002", "  меры   СОЦИАЛЬНОЙ поддержки ", people.phone_citizen.id)
    async with svc.sessions() as s:
        got = [(a.topic, a.topic_id is not None) for a in (
            await s.get(Appeal, first), await s.get(Appeal, second)) if a]
    assert got == [("Субсидии", True), ("Меры социальной поддержки", True)]

    resp = await client.post("/api/v1/appeals", headers=AUTH, json={
        "reg_number": "8003", "registered_on": "2026-11-10", "channel": "post",
        "topic": "Жалоба на погоду"})
    assert resp.status == 422
    assert (await resp.json())["error"] == \
        "тема: «Жалоба на погоду» нет в классификаторе тем обращений"
    csv = ("reg_number;registered_on;channel;topic\n8004;10.11.2026;почта;01.01\n"
           "8005;10.11.2026;почта;42.42\n")
    report = await intake.import_csv(svc.sessions, svc.settings, svc.calendar, csv, now=NOW)
    assert (report.imported, report.errors) == (
        0, ["строка 3: тема: «42.42» нет в классификаторе тем обращений"])

    async with svc.sessions() as s, s.begin():
        await s.execute(update(AppealTopic).where(AppealTopic.code == "01.02")
                        .values(active=False))
    with pytest.raises(intake.IntakeError, match="нет в классификаторе"):
        await _register(svc, "8006", "Субсидии", people.phone_citizen.id)
    csrf = await log_in(client, "head")
    resp = await client.post("/panel/appeals/new", data={
        "_csrf": csrf, "reg_number": "8007", "registered_on": "2026-11-10",
        "channel": "post", "topic": "01.02"}, allow_redirects=False)
    assert resp.status == 422 and "«01.02» нет в классификаторе" in await resp.text()
    form = await (await client.get("/panel/appeals/new")).text()
    assert "01.01 Пособия" in form and "Субсидии" not in form, "retired: not offered"
    async with svc.sessions() as s:
        assert len((await s.scalars(select(Appeal.id))).all()) == 2
        old = await s.get(Appeal, first)
    assert old is not None and old.topic == "Субсидии", "the old appeal keeps its topic"


async def _answered(svc: Services, people: People, *regs_topics: tuple[str, str]) -> list[int]:
    ids = [await _register(svc, reg, topic, people.phone_citizen.id)
           for reg, topic in regs_topics]
    async with svc.sessions() as s, s.begin():
        await s.execute(update(Appeal).values(
            status=AppealStatus.ANSWERED, department_id=people.head.department_id,
            answered_at=NOW))
    return ids


@pytest.mark.parametrize("db_url", BACKENDS, indirect=True)
async def test_completion_records_violations_and_the_report_groups_them(
    svc: Services, client: TestClient
) -> None:
    """R-A10: the controlling official completes an appeal in the panel with the violations
    found and their causes (a kind from the list, or «другое» described, each with a
    cause); a bad row refuses the whole completion; the report groups by topic and by
    violation and cause."""
    people = await staff_with_passwords(svc)
    first, second, third = await _answered(
        svc, people, ("8101", "Пособия"), ("8102", "01.01"), ("8103", "Субсидии"))
    csrf = await log_in(client, "head")

    async def complete(appeal_id: int, **rows: str) -> tuple[int, str]:
        resp = await client.post(f"/panel/appeals/{appeal_id}/complete",
                                 data={"_csrf": csrf, **rows}, allow_redirects=False)
        return resp.status, await resp.text()

    for rows, error in [
        ({"violation_kind_1": "sabotage", "violation_cause_1": "х"}, "выберите вид"),
        ({"violation_kind_1": "other", "violation_cause_1": "нехватка кадров"}, "опишите"),
        ({"violation_kind_1": "deadline", "violation_cause_1": "  "}, "укажите его причину"),
        ({"violation_kind_1": "deadline", "violation_cause_1": "отпуск исполнителя",
          "violation_kind_2": "incomplete_answer"}, "нарушение 2: укажите его причину"),
    ]:
        status, page = await complete(first, **rows)
        assert status == 400 and error in page, rows
    async with svc.sessions() as s:
        assert (await s.get(Appeal, first)).status == AppealStatus.ANSWERED  # type: ignore[union-attr]
        assert await s.scalar(select(AppealViolation.id)) is None, "nothing half-recorded"

    late = {"violation_kind_1": "deadline", "violation_cause_1": "отпуск исполнителя"}
    assert (await complete(first, **late, violation_kind_2="other",
                           violation_description_2="не приложены копии",
                           violation_cause_2="нет контроля"))[0] == 303
    assert (await complete(second, **late))[0] == 303
    assert (await complete(third, **late))[0] == 303
    card = await (await client.get(f"/panel/appeals/{first}")).text()
    assert "нарушен срок рассмотрения" in card and "не приложены копии" in card

    async with svc.sessions() as s:
        found = await appeals.report_violations(s, date(2026, 11, 1), date(2026, 11, 30))
        by_topic = await appeals.report_by_topic(s, date(2026, 11, 1), date(2026, 11, 30),
                                                 date(2026, 11, 25))
    assert found == [
        ("Пособия", "нарушен срок рассмотрения", "отпуск исполнителя", 2),
        ("Пособия", "не приложены копии", "нет контроля", 1),
        ("Субсидии", "нарушен срок рассмотрения", "отпуск исполнителя", 1)]
    assert by_topic == [("Пособия", 2, 2, 0), ("Субсидии", 1, 1, 0)]

    report = await client.get("/panel/appeals/reports?since=2026-11-01&until=2026-11-30")
    assert report.status == 200
    page = await report.text()
    assert ("<tr><td>Пособия</td><td>нарушен срок рассмотрения</td>"
            "<td>отпуск исполнителя</td><td>2</td></tr>") in page
    assert '<tr class=""><td>Субсидии</td><td>1</td><td>1</td><td>0</td></tr>' in page


def test_administrators_keep_the_classifier_from_the_command_line(sqlite_url: str) -> None:
    """R-A1: ``hotline appeals topics list|add|retire``; a bad code or a title taken by
    another code is refused with a Russian message and changes nothing."""
    env = hotline_environ(HOTLINE_DATABASE__URL=sqlite_url)

    def hotline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ivr.cli", "appeals", "topics", *args],
                              env=env, capture_output=True, text=True, timeout=60,
                              check=False)

    run = hotline("add", "06.01", "  Доступная   среда ")
    assert run.returncode == 0 and "06.01\tДоступная среда" in run.stdout.splitlines()
    run = hotline("retire", "01.02")
    assert run.returncode == 0 and "01.02\tСубсидии\t(выведена)" in run.stdout.splitlines()
    for args, error in [(("add", "06 01; DROP", "Тема"), "код темы"),
                        (("add", "06.02", "Пособия"), "уже есть под кодом 01.01"),
                        (("retire", "77.77"), "темы с кодом 77.77 нет")]:
        run = hotline(*args)
        assert run.returncode == 1 and error in run.stderr, args
    assert "06.02" not in hotline("list").stdout
