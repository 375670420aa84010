"""Employees read the audit log in words, never in codes (issue 29's human labels): every
action and object kind the source writes has a Russian name, and the page shows it."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp.test_utils import TestClient

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
