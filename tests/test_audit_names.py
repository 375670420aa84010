"""Employees read the audit log in words, never in codes (issue 29's human labels): every
action and object kind the source writes has a Russian name, and the page shows it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from ivr.db.models import AuditEntry, Staff
from ivr.services.container import Services
from web.audit_names import ACTIONS, OBJECTS

from .support.panel_client import log_in

ROOT = Path(__file__).resolve().parent.parent
# audit(svc, who, "action", "object", …) and audit.write(session, who, "action", "object", …)
CALL = re.compile(r'(?:audit|_audit|write)\(\s*[\w.]+,\s*[^,()]+(?:\([^()]*\))?,\s*'
                  r'"([a-z_]+)",\s*"([a-z_]+)"', re.S)
POLICY = re.compile(r'(audit|refused)="([a-z_]+)"')


def _written() -> tuple[set[str], set[str]]:
    actions, objects = set(), set()
    for path in [*ROOT.glob("web/*.py"), *ROOT.glob("ivr/**/*.py"), *ROOT.glob("agi/**/*.py")]:
        text = path.read_text()
        for action, kind in CALL.findall(text):
            actions.add(action)
            objects.add(kind)
        for key, code in POLICY.findall(text):
            (objects if key == "audit" else actions).add(code)
    return actions, objects


def test_every_code_the_source_writes_has_a_name() -> None:
    actions, objects = _written()
    assert len(actions) > 20 and len(objects) > 30, "the source scan found the calls"
    assert actions - ACTIONS.keys() == set()
    assert objects - OBJECTS.keys() == set()


async def test_the_audit_page_shows_names_not_codes(client: TestClient) -> None:
    await log_in(client, "smirnova")
    page = await (await client.get("/panel/audit")).text()
    assert "<td>вход</td>" in page and "<td>login</td>" not in page
    assert ">журнал доступа<" in page.replace("</option>", "<")


async def test_the_audit_page_reads_changes_refusals_and_people_in_words(
        svc: Services, client: TestClient) -> None:
    """A menu change (JSON before/after), a refusal, an employee's card and a list's search
    read as words: no JSON, no error ids, no bare numbers for people (issue 31's walk)."""
    menu_change = json.dumps({"before": {"digit": "6", "code": "inspections", "title": "Проверки",
                                         "action": "queue", "queue": "hotline-inspections"},
                              "after": None}, ensure_ascii=False)
    async with svc.sessions() as session, session.begin():
        petrov = await session.scalar(select(Staff).where(Staff.login == "petrov"))
        assert petrov is not None
        session.add(AuditEntry(staff_id=None, action="delete", object_type="menu_topic",
                               object_id="6", details=menu_change))
    await log_in(client, "petrov")
    assert (await client.get("/panel/admin/staff")).status == 403
    assert (await client.get("/panel/callbacks")).status == 200
    await log_in(client, "orlov")
    await client.get("/panel/appeals?q=Иванов&status=answered")
    await client.get(f"/panel/admin/staff/{petrov.id}")
    page = await (await client.get("/panel/audit")).text()
    assert "цифра: «6»; код: «inspections»; название: «Проверки»" in page
    assert "действие: «соединить с оператором»" in page
    assert "отказано: недостаточно прав; адрес: /panel/admin/staff" in page
    assert f"сотрудник {petrov.initials_name}" in page
    assert "поиск: «Иванов», статус: дан ответ, найдено: 0" in page
    assert re.search(r"<td>обратные звонки мои</td><td>показано: \d+</td>", page)
    for raw in ('"before"', "role: GET", "q=&#39;", f"сотрудник {petrov.id}<"):
        assert raw not in page
