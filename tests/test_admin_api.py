"""Administration through the JSON API and the CLI (issue 28): the same services, checks
and audit entries as the panel pages; an administrator's token only."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from ivr.cli import build_parser
from ivr.db.models import ApiToken, Department, Official, Staff
from ivr.services.accounts import token_hash
from ivr.services.container import Services
from ivr.settings import load_settings

from .conftest import hotline_environ
from .support.panel_client import audit_rows

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
ADMIN = {"Authorization": "Bearer admin-token"}
SUPERVISOR = {"Authorization": "Bearer supervisor-token"}


async def _tokens(svc: Services) -> int:
    """Tokens for Орлов (administrator) and Смирнова (supervisor); a department's id."""
    async with svc.sessions() as s, s.begin():
        for login, token in (("orlov", "admin-token"), ("smirnova", "supervisor-token")):
            staff = await s.scalar(select(Staff.id).where(Staff.login == login))
            s.add(ApiToken(name=login, token_hash=token_hash(token), staff_id=staff))
        department = await s.scalar(select(Department.id).where(
            Department.short_name == "Госуслуги"))
    assert department is not None
    return department


async def test_staff_and_reception_through_the_api(svc: Services, client: TestClient) -> None:
    department = await _tokens(svc)
    new = {"login": "zaitsev", "surname": "Зайцев", "first_name": "Игорь",
           "role": "operator", "department_id": department}
    refused = await client.post("/api/v1/admin/staff", json=new, headers=SUPERVISOR)
    assert refused.status == 403 and (await refused.json())["id"] == "role"
    assert ("refused", "staff", "role: POST /api/v1/admin/staff") in await audit_rows(svc)

    made = await client.post("/api/v1/admin/staff", json=new, headers=ADMIN)
    body = await made.json()
    assert made.status == 201 and body["login"] == "zaitsev" and len(body["password"]) >= 10
    taken = await client.post("/api/v1/admin/staff", headers=ADMIN, json={
        **new, "login": "zaitsev2", "extension": "1002"})
    assert taken.status == 409 and await taken.json() == {
        "error": "Внутренний номер 1002 уже закреплён за сотрудником Петров С. И. (petrov).",
        "id": "admin_refused"}
    edited = await client.put(f"/api/v1/admin/staff/{body['id']}", headers=ADMIN,
                              json={**new, "position": "старший консультант"})
    assert edited.status == 200 and (await edited.json())["position"] == "старший консультант"
    bad = await client.put(f"/api/v1/admin/staff/{body['id']}", headers=ADMIN,
                           json={**new, "role": "root"})
    assert bad.status == 400 and "роль" in (await bad.json())["error"]
    nested = await client.post("/api/v1/admin/staff", headers=ADMIN, json={"login": ["x"]})
    assert nested.status == 400

    async with svc.sessions() as s:
        minister = await s.scalar(select(Official.id).where(Official.kind == "minister"))
    day = svc.calendar.today(svc.clock()) + timedelta(days=1)
    schedule = await client.post(f"/api/v1/admin/officials/{minister}/schedule",
                                 headers=ADMIN, json={"weekday": 2, "starts": "15:00",
                                                      "ends": "17:00"})
    assert schedule.status == 400 and "пересекается" in (await schedule.json())["error"]
    vacation = await client.post(f"/api/v1/admin/officials/{minister}/exception",
                                 headers=ADMIN, json={"kind": "vacation",
                                                      "starts_on": day.isoformat()})
    assert vacation.status == 200 and "bookings_cancelled" in await vacation.json()
    script = await client.put("/api/v1/admin/scripts/script.farewell", headers=ADMIN,
                              json={"text": "До свидания!"})
    assert script.status == 200 and svc.scripts["script.farewell"] == "До свидания!"


async def test_staff_and_departments_from_the_command_line(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The verbs' own code, in a thread of this process (each runs its own event loop, as
    from the shell; the ``hotline`` entry point itself is run by test_records_cli.py)."""
    settings = load_settings(environ=hotline_environ(HOTLINE_DATABASE__URL=db_url))

    async def hotline(*argv: str) -> tuple[int, str, str]:
        args = build_parser().parse_args(argv)
        code = await asyncio.to_thread(args.func, settings, args)
        out = capsys.readouterr()
        return code, out.out, out.err

    code, _, _ = await hotline("departments", "add", "Отдел опеки", "--short-name", "Опека")
    assert code == 0
    code, _, err = await hotline("departments", "add", "Отдел опеки")
    assert code == 2 and "«Отдел опеки» уже есть" in err
    assert "Опека\tОтдел опеки" in (await hotline("departments", "list"))[1]
    staff = ("staff", "add", "belova", "--surname", "Белова", "--first-name", "Ирина",
             "--role", "operator", "--department", "Опека", "--extension", "1001")
    assert (await hotline(*staff))[0] == 0
    code, _, err = await hotline(*staff[:2], "belov", *staff[3:])
    assert code == 2 and "1001 уже закреплён" in err
    code, _, err = await hotline("staff", "edit", "belova", "--position",
                                 "старший консультант", "--extension", "")
    assert code == 0, err
    listed = (await hotline("staff", "list"))[1]
    assert "belova\tБелова Ирина\tстарший консультант\toperator\tОпека\t-\tactive" in listed

    code, _, _ = await hotline("officials", "add", "belova", "--title",
                               "Специалист отдела опеки", "--kind", "specialist")
    assert code == 0
    assert (await hotline("officials", "schedule", "1", "1", "09:00", "12:00"))[0] == 0
    code, _, err = await hotline("officials", "schedule", "1", "1", "11:00", "13:00")
    assert code == 2 and "пересекается с уже назначенным приёмом: вторник 09:00–12:00" in err
    assert "вторник 09:00–12:00, по 30 мин." in (await hotline("officials", "list"))[1]
    code, out, _ = await hotline("officials", "off", "1", "vacation", "2030-01-09",
                                 "--last", "2030-01-20")
    assert code == 0 and "notified: 0" in out
