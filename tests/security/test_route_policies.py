"""Roles on every route (issue 25): every route of the panel and the API declares who may
call it, in one place (``web.policy``); a route without a declaration fails this test and is
refused at run time. The state-changing routes' policies are pinned here, so a change to
who may change what is a visible change to this file. Errors answer through one middleware
(issue 26): Russian pages, JSON with an error id on the API and fetch routes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from ivr.db.models import ApiToken, Staff
from ivr.services.container import Services
from web import auth
from web.api import token_hash
from web.app import init_app
from web.policy import policy_of

from ..support.panel_client import audit_rows, log_in

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
PATTERN, PLAIN = re.compile(r"\{(\w+):[^}]+\}"), r"{\1}"
CHANGES = {"POST", "PUT", "DELETE", "PATCH", "*"}

# Reached without a login: the status page, the login form, and pages a citizen reaches by
# a signed link from an e-mail (the link is the credential).
PUBLIC = {
    "GET /", "GET /healthz", "GET /login", "POST /login", "GET /api/v1/openapi.json",
    "GET /static/{name}",
    "GET /survey/{token}", "POST /survey/{token}",
    "GET /reception/cancel/{token}", "POST /reception/cancel/{token}",
}

# Machines without a login, by their address (issue 28: Prometheus, `[metrics] allow`).
BY_ADDRESS = {"GET /metrics": "address(-) + metrics_allowed"}

# Who may change what (R-A8, R-H6, R-K1 …): panel(roles) + the object-level check.
STAFF = "administrator, department_head, operator, specialist, supervisor"
HEADS = "administrator, department_head, supervisor"
OVERSEERS = "administrator, supervisor"
APPEAL_STAFF = "administrator, department_head, specialist, supervisor"
CHANGING = {
    "POST /logout": f"panel({STAFF})",
    "POST /panel/appeals/new": f"panel({APPEAL_STAFF})",
    "POST /panel/appeals/{id}/urgent": f"panel({HEADS}) + appeal_department",
    "POST /panel/appeals/{id}/assign": f"panel({APPEAL_STAFF}) + appeal_executor",
    "POST /panel/appeals/{id}/abusive": f"panel({HEADS}) + appeal_department",
    "POST /panel/appeals/{id}/redirect": f"panel({APPEAL_STAFF}) + appeal_department",
    "POST /panel/appeals/{id}/answer": f"panel({APPEAL_STAFF}) + appeal_executor",
    "POST /panel/appeals/{id}/complete": f"panel({HEADS}) + appeal_department",
    "POST /panel/dictionary": f"panel({HEADS})",
    "POST /panel/receptions/book": f"panel({STAFF})",
    "POST /panel/receptions/{id}/{action}": f"panel({STAFF}) + booking_keeper",
    "POST /panel/workspace/status": f"panel({STAFF})",
    "POST /panel/workspace/journal": f"panel({STAFF}) + spoke_on_the_call",
    "POST /panel/workspace/transfer": f"panel({STAFF})",
    "POST /panel/workspace/survey": f"panel({STAFF}) + talking_on_the_call",
    "POST /panel/workspace/callback": f"panel({STAFF})",
    "POST /panel/workspace/book": f"panel({STAFF})",
    "POST /panel/workspace/cancel-booking": f"panel({STAFF}) + booking_of_the_caller",
    "POST /panel/kb/sections/{id}": f"panel({STAFF}) + own_kb_section",
    "POST /panel/kb/articles/{id}": f"panel({STAFF}) + own_kb_section",
    "POST /panel/kb/agencies": f"panel({HEADS})",
    "POST /panel/kb/agencies/{id}": f"panel({HEADS})",
    "POST /panel/supervisor/callback": f"panel({HEADS})",
    # Listening in (issue 30): the contact centre's supervisor and administrators only.
    "POST /panel/wallboard/spy": "panel(administrator, supervisor)",
    "POST /panel/callbacks/{id}/take": f"panel({STAFF}) + callback_department",
    "POST /panel/callbacks/{id}/ready": f"panel({STAFF}) + callback_assignee",
    "POST /panel/callbacks/{id}/call": f"panel({STAFF}) + callback_assignee",
    "POST /panel/callbacks/{id}/done": f"panel({STAFF}) + callback_assignee",
    "POST /api/v1/appeals": f"api({APPEAL_STAFF})",
    "POST /api/v1/appeals/import": f"api({APPEAL_STAFF})",
    "POST /api/v1/outbox/{id}": f"api({APPEAL_STAFF})",
    "POST /api/v1/kb/articles": f"api({STAFF})",
    "PUT /api/v1/kb/articles/{id}": f"api({STAFF})",
    # Issue 28: the IVR menu, queues, skills and calendar are the administrator's alone.
    "POST /panel/admin/ivr/queues": "panel(administrator)",
    "POST /panel/admin/ivr/queues/{name}/edit": "panel(administrator)",
    "POST /panel/admin/ivr/queues/{name}/delete": "panel(administrator)",
    "POST /panel/admin/ivr/topics": "panel(administrator)",
    "POST /panel/admin/ivr/topics/{digit}/delete": "panel(administrator)",
    "POST /panel/admin/ivr/skills": "panel(administrator)",
    "POST /panel/admin/ivr/calendar": "panel(administrator)",
    "POST /panel/admin/ivr/calendar/{day}/delete": "panel(administrator)",
    "PUT /api/v1/ivr/queues/{name}": "api(administrator)",
    "DELETE /api/v1/ivr/queues/{name}": "api(administrator)",
    "PUT /api/v1/ivr/topics/{digit}": "api(administrator)",
    "DELETE /api/v1/ivr/topics/{digit}": "api(administrator)",
    "PUT /api/v1/ivr/skills/{staff_id}/{name}": "api(administrator)",
    "DELETE /api/v1/ivr/skills/{staff_id}/{name}": "api(administrator)",
    "PUT /api/v1/ivr/calendar/{day}": "api(administrator)",
    "DELETE /api/v1/ivr/calendar/{day}": "api(administrator)",
    # Issue 28: staff, departments and sections, scripts, reception: administrators only.
    "POST /panel/admin/staff": "panel(administrator)",
    "POST /panel/admin/staff/{id}/{action}": "panel(administrator)",
    "POST /panel/admin/departments": "panel(administrator)",
    "POST /panel/admin/departments/{id}/{action}": "panel(administrator)",
    "POST /panel/admin/scripts": "panel(administrator)",
    "POST /panel/admin/officials": "panel(administrator)",
    "POST /panel/admin/officials/{id}/{action}": "panel(administrator)",
    "POST /panel/admin/slots": "panel(administrator)",
    "POST /api/v1/admin/staff": "api(administrator)",
    "PUT /api/v1/admin/staff/{id}": "api(administrator)",
    "POST /api/v1/admin/staff/{id}/{action}": "api(administrator)",
    "POST /api/v1/admin/departments": "api(administrator)",
    "POST /api/v1/admin/departments/{id}/{action}": "api(administrator)",
    "PUT /api/v1/admin/scripts/{key}": "api(administrator)",
    "POST /api/v1/admin/officials": "api(administrator)",
    "POST /api/v1/admin/officials/{id}/{action}": "api(administrator)",
}

# Call recordings (issue 30): the voices of citizens; the overseers (supervisor,
# administrator) hear any, an employee (a department head too) the calls they spoke on;
# only the overseers download.
RECORDINGS = {
    "GET /panel/recordings": f"panel({STAFF}) + call_recordings_reader",
    "GET /panel/recordings/{id}/audio": f"panel({STAFF}) + recording_listener",
    "GET /panel/recordings/{id}/download": f"panel({OVERSEERS}) + recording_listener",
}


def _routes(app: web.Application) -> dict[str, object]:
    """``METHOD /path`` → handler, path patterns without their regular expressions."""
    return {f"{r.method} {PATTERN.sub(PLAIN, r.resource.canonical)}": r.handler
            for r in app.router.routes() if r.resource is not None}


def test_every_route_declares_its_policy() -> None:
    routes = _routes(init_app())
    assert len(routes) > 50, "the whole panel and API are enumerated"
    missing = sorted(name for name, handler in routes.items() if policy_of(handler) is None)
    assert missing == [], f"routes without a policy: {missing}"
    policies = {name: policy_of(handler) for name, handler in routes.items()}
    public = {name for name, found in policies.items() if found and found.kind == "public"}
    assert public - {f"HEAD {n[4:]}" for n in PUBLIC if n.startswith("GET ")} == PUBLIC
    changing = {name: found.describe() for name, found in policies.items()
                if found and name.split()[0] in CHANGES and found.kind != "public"}
    assert changing == CHANGING
    recordings = {name: found.describe() for name, found in policies.items()
                  if found and name.startswith("GET /panel/recordings")}
    assert recordings == RECORDINGS
    by_address = {name: found.describe() for name, found in policies.items()
                  if found and found.kind == "address" and not name.startswith("HEAD ")}
    assert by_address == BY_ADDRESS
    for name, found in policies.items():
        path = name.split()[1]
        assert found is not None
        # A panel route always passes the session middleware (login, CSRF): never under
        # a public prefix; an API route always passes the token middleware.
        if found.kind == "panel":
            assert not auth._is_public(path), f"{name}: panel route under a public prefix"
        if found.kind == "api":
            assert path.startswith("/api/") and path != "/api/v1/openapi.json", name


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_route_without_a_policy_is_refused_and_errors_are_russian(
    svc: Services
) -> None:
    """Fail closed: a handler someone forgot to declare is refused even to the supervisor.
    aiohttp's English error pages are replaced by Russian ones (JSON with an id on the
    API); a domain error's id is stable."""
    app = init_app(svc)

    async def forgotten(request: web.Request) -> web.Response:
        return web.Response(text="changed")

    app.router.add_post("/panel/forgotten", forgotten)
    app.router.add_get("/survey/x/forgotten", forgotten)
    async with svc.sessions() as s, s.begin():
        boss = await s.scalar(select(Staff.id).where(Staff.login == "smirnova"))
        s.add(ApiToken(name="BI", token_hash=token_hash("bi-token"), staff_id=boss))
    async with TestClient(TestServer(app)) as client:
        csrf = await log_in(client, "smirnova")
        refused = await client.post("/panel/forgotten", data={"_csrf": csrf})
        assert refused.status == 403 and "не объявлены права доступа" in await refused.text()
        assert "no_policy" in await refused.text()
        assert (await client.get("/survey/x/forgotten")).status == 403, "public prefix too"

        unknown = await client.get("/panel/no-such-page")
        assert unknown.status == 404 and unknown.content_type == "text/html"
        text = await unknown.text()
        assert "Страница не найдена" in text and "Not Found" not in text
        wrong = await client.get("/panel/appeals/1/assign")
        assert wrong.status == 405 and "не принимает такой запрос" in await wrong.text()
        gone = await client.get("/panel/appeals/999999")
        assert gone.status == 404 and "Обращение не найдено" in await gone.text()
        assert "appeal_not_found" in await gone.text()
        bad = await client.get("/panel/appeals/reports?since=вчера")
        assert bad.status == 400 and "ГГГГ-ММ-ДД" in await bad.text()
        # A fetch route answers JSON that the page's script shows.
        journal = await client.post("/panel/workspace/journal", headers={
            "X-CSRF-Token": csrf}, data={"linkedid": "no-such-call", "outcome": "answered"})
        assert journal.status == 400 and await journal.json() == {
            "error": "Звонок ещё не записан: повторите через секунду.",
            "id": "call_not_recorded"}
        token = {"Authorization": "Bearer bi-token"}
        api = await client.get("/api/v1/nothing-here", headers=token)
        assert api.status == 404 and await api.json() == {
            "error": "Страница не найдена. Проверьте адрес или вернитесь на главную.",
            "id": "not_found"}
        query = await client.get("/api/v1/calls?after_id=x", headers=token)
        assert query.status == 400 and await query.json() == {
            "error": "after_id: целое число", "id": "bad_query"}
    assert ("refused", "request", "no_policy: POST /panel/forgotten") in await audit_rows(svc)
