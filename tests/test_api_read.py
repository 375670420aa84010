"""The integration API's read side: token auth, keyset pages, clear errors, every read of
personal data audit-logged; the OpenAPI document lists every path the app serves."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from ivr.db.models import ApiToken, AuditEntry, Staff
from ivr.demo import seed_demo
from ivr.settings import Settings
from web.api import token_hash
from web.app import init_app

from .support.records import services_on

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_read_api_pages_by_keyset_and_audits(
    settings: Settings, db_url: str, aiohttp_client  # type: ignore[no-untyped-def]
) -> None:
    svc = services_on(settings, db_url, NOW)
    try:
        await seed_demo(svc.settings, today=NOW.date())
        async with svc.sessions() as s, s.begin():
            staff_id = await s.scalar(select(Staff.id).where(Staff.login == "smirnova"))
            s.add(ApiToken(name="BI", token_hash=token_hash("bi-token"), staff_id=staff_id))
        app = init_app(svc)
        client = await aiohttp_client(app)
        auth = {"Authorization": "Bearer bi-token"}

        spec = await (await client.get("/api/v1/openapi.json")).json()
        served = {re.sub(r"\{(\w+):[^}]+\}", r"{\1}", r.canonical)
                  for r in app.router.resources() if r.canonical.startswith("/api/")}
        assert served - {"/api/v1/openapi.json"} == set(spec["paths"])
        assert (await client.get("/api/v1/appeals")).status == 401

        first = await (await client.get("/api/v1/appeals?limit=1", headers=auth)).json()
        [one] = first["items"]
        second = await (await client.get(f"/api/v1/appeals?limit=1&after_id={one['id']}",
                                          headers=auth)).json()
        assert [one["reg_number"], second["items"][0]["reg_number"]] == ["1024", "1031"]
        only = await (await client.get("/api/v1/appeals?reg_number=1031", headers=auth)).json()
        assert [a["status"] for a in only["items"]] == ["answered"]
        bad = await client.get("/api/v1/calls?since=yesterday", headers=auth)
        assert bad.status == 400 and "ISO 8601" in (await bad.json())["error"]
        naive = await client.get("/api/v1/calls?since=2026-11-25T09:00:00", headers=auth)
        assert naive.status == 400
        assert (await client.get("/api/v1/calls?after_id=x", headers=auth)).status == 400
        calls = await client.get("/api/v1/calls?since=2026-11-25T00:00:00%2B03:00",
                                 headers=auth)
        assert calls.status == 200 and (await calls.json())["items"] == []
        slots = await (await client.get("/api/v1/receptions/slots?limit=3",
                                        headers=auth)).json()
        assert len(slots["items"]) == 3
        bookings = await (await client.get("/api/v1/receptions/bookings",
                                           headers=auth)).json()
        assert [b["topic"] for b in bookings["items"]] == ["Назначение ежемесячной выплаты"]
        for path in ("/api/v1/ratings", "/api/v1/callbacks"):
            assert (await client.get(path, headers=auth)).status == 200
        await svc.recorder.sync()
        async with svc.sessions() as s:
            seen = list(await s.scalars(select(AuditEntry.object_type)
                                        .order_by(AuditEntry.id)))
        assert seen == ["appeal_list", "appeal_list", "appeal_list", "call_list",
                        "booking_list", "rating_list", "callback_list"]
    finally:
        await svc.close()
