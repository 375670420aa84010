"""The journal in the panel (R-H6, R-H9): the operator's list of answered calls still without
their entry, with a link to fill each; the supervisor's count of such calls per operator for
today, 7 and 30 days; what operators don't do for callers, read from the knowledge base and
shown beside the greeting line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from ivr.db.models import Call, CallLeg, CallOutcome, KbArticle, Staff
from ivr.services import kb
from ivr.services.container import Services
from web.supervisor import FIGURES

from .support.panel_client import log_in, put_on_call

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CALLER = "79001234567"   # Морозова, the demo's citizen


async def _answered(svc: Services, login: str, linkedid: str, ago: timedelta) -> None:
    async with svc.sessions() as s, s.begin():
        staff_id = await s.scalar(select(Staff.id).where(Staff.login == login))
        call = Call(linkedid=linkedid, caller_number=CALLER, started_at=NOW - ago,
                    answered_at=NOW - ago, ended_at=NOW - ago + timedelta(minutes=3),
                    operator_id=staff_id, topic="state_services",
                    outcome=CallOutcome.ANSWERED)
        s.add(call)
        await s.flush()
        s.add(CallLeg(call_id=call.id, operator_id=staff_id, channel=f"PJSIP/{linkedid}",
                      answered_at=call.answered_at, ended_at=call.ended_at))


def _missing(page: str) -> list[str]:
    """The linkedids the workspace's «без записи в журнале» list links to."""
    listed = page.split('id="journal-missing"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r"journal/fill\?linkedid=([\w.-]+)", listed)


async def test_calls_without_an_entry_are_listed_and_counted(
        svc: Services, client: TestClient) -> None:
    """R-H6: Петров answered three calls (one 20 days ago) and wrote one entry: the other
    two recent ones are linked in his workspace, the supervisor counts 1 / 2 / 3 for him;
    once filled through the link's form, the call leaves the list."""
    for n, ago in enumerate((timedelta(hours=1), timedelta(days=3), timedelta(days=20))):
        await _answered(svc, "petrov", f"jp-{n}", ago)
    await _answered(svc, "petrov", "jp-done", timedelta(minutes=30))
    csrf = await log_in(client, "petrov")
    entry = {"topic": "state_services", "question": "Сроки", "answer": "30 дней",
             "outcome": "answered"}
    saved = await client.post("/panel/workspace/journal", headers={"X-CSRF-Token": csrf},
                              data={**entry, "linkedid": "jp-done"})
    assert saved.status == 200

    page = await (await client.get("/panel/workspace")).text()
    assert _missing(page) == ["jp-1", "jp-0"], "oldest first, within 7 days"
    form = await client.get("/panel/workspace/journal/fill?linkedid=jp-1")
    assert form.status == 200 and 'name="linkedid" value="jp-1"' in await form.text()
    await client.post("/panel/workspace/journal", headers={"X-CSRF-Token": csrf},
                      data={**entry, "linkedid": "jp-1"})
    assert _missing(await (await client.get("/panel/workspace")).text()) == ["jp-0"]

    await log_in(client, "smirnova")
    assert client.app is not None
    client.app[FIGURES].cache.clear()   # warmed at start-up, before these calls
    dashboard = await (await client.get("/panel/supervisor?period=today")).text()
    table = dashboard.split('id="journal-missing"', 1)[1].split("</table>", 1)[0]
    row = re.search(r"<tr><td>Петров Сергей</td>((?:<td>\d+</td>){3})</tr>", table)
    assert row is not None, table
    assert re.findall(r"\d+", row.group(1)) == ["1", "1", "2"]


async def test_what_operators_dont_do_is_shown_from_the_knowledge_base(
        svc: Services, client: TestClient) -> None:
    """R-H9: the card beside the greeting says the operator does not fill in forms or
    negotiate for the caller — the knowledge base's article, and its edited text once the
    scripts are read again."""
    await _answered(svc, "petrov", "jp-now", timedelta(minutes=1))
    async with svc.sessions() as s:
        svc.scripts = await kb.script_texts(s)
    assert svc.scripts[kb.OPERATOR_LIMITS_KEY] == kb.OPERATOR_LIMITS
    put_on_call(client, "1002", "jp-now", CALLER)
    await log_in(client, "petrov")
    card = await (await client.get("/panel/workspace/card?linkedid=jp-now")).text()
    limits = card.split('<details class="limits">', 1)[1].split("</details>", 1)[0]
    assert "не заполняет за него заявления" in limits
    assert "не ведёт переговоров" in limits

    async with svc.sessions() as s, s.begin():
        await s.execute(update(KbArticle).where(KbArticle.key == kb.OPERATOR_LIMITS_KEY)
                        .values(body="Не заполняем формы за гражданина."))
    async with svc.sessions() as s:
        svc.scripts = await kb.script_texts(s)
    card = await (await client.get("/panel/workspace/card?linkedid=jp-now")).text()
    assert "Не заполняем формы за гражданина." in card
