"""The panel's fields that reach AMI (issue 25), through the real panel over HTTP and the real
Asterisk: a line break in the pause reason, the state, the transfer's extension or note is
refused with a Russian message and leaves no trace in Asterisk; the call a transfer moves is
the operator's own, from the OperatorHub, never a channel from the form; the target is a
known, active colleague; the transfer gate (R-H4) still counts the real transfer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import Call, Callback, Staff, Transfer, TransferKind, TransferOutcome
from ivr.simulate import EventRecorder, caller_channel, is_event, place_call, wait_until
from web.workspace import HUB, PAUSE_REASONS

from ..conftest import Stack
from ..support.panel_client import PETROV_MEMBER, member_state, ready_operator
from .ami_trace import assert_no_trace, marker, originate_payload

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MEMBER = PETROV_MEMBER


@pytest_asyncio.fixture
async def petrov(seeded: Stack) -> AsyncIterator[tuple[TestClient, str]]:
    """Петров (extension 1002) logged in to a panel with its own AMI link, ready."""
    async with ready_operator(seeded.services) as ready:
        yield ready


async def test_status_fields_reach_asterisk_only_from_the_fixed_lists(
    seeded: Stack, ami: AMIClient, events: EventRecorder, petrov: tuple[TestClient, str]
) -> None:
    client, csrf = petrov
    number = marker()
    forged = [
        ({"state": "pause", "reason": originate_payload(number)}, "Причину паузы"),
        ({"state": "pause", "reason": "обед"}, "Причину паузы"),   # harmless, not listed
        ({"state": "pause", "reason": "перерыв\0"}, "Причину паузы"),
        ({"state": originate_payload(number)}, "Неизвестное состояние"),
        ({"state": "ready\r\n"}, "Неизвестное состояние"),
    ]
    for form, message in forged:
        refused = await client.post("/panel/workspace/status", allow_redirects=False,
                                    data={"_csrf": csrf, **form})
        location = unquote(refused.headers["Location"])
        assert refused.status == 303 and "error=" in location and message in location, form
    page = await (await client.get(refused.headers["Location"])).text()
    assert "Неизвестное состояние" in page, "the operator reads why"
    assert await member_state(ami) == ("0", ""), "nothing reached Asterisk: still ready"
    await assert_no_trace(ami, events, number)

    for reason in PAUSE_REASONS[1:3]:
        chosen = await client.post("/panel/workspace/status", allow_redirects=False,
                                   data={"_csrf": csrf, "state": "pause", "reason": reason})
        assert "error" not in chosen.headers["Location"]
        assert await member_state(ami) == ("1", reason)


async def _transfers(stack: Stack, linkedid: str) -> list[Transfer]:
    async with stack.services.sessions() as s:
        return list(await s.scalars(select(Transfer).join(Call).where(
            Call.linkedid == linkedid).order_by(Transfer.seq)))


async def test_transfer_moves_only_the_operators_own_call_to_a_known_colleague(
    seeded: Stack, ami: AMIClient, events: EventRecorder, petrov: tuple[TestClient, str]
) -> None:
    client, csrf = petrov
    headers = {"X-CSRF-Token": csrf}
    number = marker()
    url = "/panel/workspace/transfer"
    # Not on a call: a channel and a linkedid in the form are nobody's call.
    forged = await client.post(url, headers=headers, data={
        "extension": "1003", "linkedid": "sim-anything",
        "channel": f"Local/{number}@citizen-sim-00000001;1"})
    assert forged.status == 409 and "не разговариваете" in (await forged.json())["error"]

    await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": "60"})
    try:
        call = await place_call(ami, caller="79001234567", number="88001234567", dtmf="2",
                                hold=60)
        hub = client.app[HUB]

        async def on_the_call() -> bool:
            return hub.current.get("1002", {}).get("linkedid") == call.linkedid
        await wait_until(on_the_call, 40, "Петров's screen-pop")
        refusals = [
            ({"extension": "1003" + originate_payload(number)}, "нет в справочнике"),
            ({"extension": "9999"}, "нет в справочнике"),
            ({"extension": "1002"}, "ваш собственный"),
            ({"extension": "1003", "note": originate_payload(number)}, "недопустимые"),
            ({"extension": "1003", "note": "Уточняет\0сроки"}, "недопустимые"),
        ]
        for data, message in refusals:
            refused = await client.post(url, headers=headers, data=data)
            assert refused.status == 422 and message in (await refused.json())["error"], data
        await assert_no_trace(ami, events, number)
        assert await _transfers(seeded, call.linkedid) == [], "no refused field was a transfer"

        # A real one, with a forged channel beside it: the hub's call is moved, through the
        # gate, and counted (R-H4).
        done = await client.post(url, headers=headers, data={
            "extension": "1003", "note": "Уточняет сроки", "channel": "Local/1@forged;1"})
        assert done.status == 200 and (await done.json())["used"] == 1
        await events.wait_for(lambda e: call.ours(e) and is_event(
            "Newexten", Context="hotline-whisper", Application="Playback")(e), 30,
            "the colleague's whisper")
        async with seeded.services.sessions() as s:
            staff = {str(ext): id_ for ext, id_ in await s.execute(
                select(Staff.extension, Staff.id).where(Staff.extension.in_(["1002", "1003"])))}
        rows = await _transfers(seeded, call.linkedid)
        assert [(t.kind, t.from_staff_id, t.to_staff_id, t.note, t.outcome) for t in rows] == [
            (TransferKind.BLIND, staff["1002"], staff["1003"], "Уточняет сроки",
             TransferOutcome.COMPLETED)]
        await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)})
    finally:
        await ami.action({"Action": "Setvar", "Variable": "OP_TALK", "Value": ""})


async def test_callbacks_typed_in_the_panel_pass_the_dialling_policy(
    seeded: Stack, petrov: tuple[TestClient, str]
) -> None:
    client, csrf = petrov
    headers = {"X-CSRF-Token": csrf}
    url = "/panel/workspace/callback"
    for phone, message in [("8-809-123-45-67", "платные"), ("810 375 29 123-45-67",
                                                            "международные"),
                           ("112", "Короткие"), ("+7 900 123 45 67\r\nX: 1", "только цифры")]:
        refused = await client.post(url, headers=headers, data={"phone": phone,
                                                                "question": "Пособие"})
        body = await refused.json()
        assert refused.status == 422 and message in body["error"], phone
        assert body["error"].startswith("Обратный звонок невозможен")
    taken = await client.post(url, headers=headers, data={
        "phone": "8 (900) 765-43-21", "question": "Пособие", "deadline": "2026-11-26",
        "window": "2026-11-25T13:00"})   # R-H5: the deadline told, a window chosen
    assert taken.status == 200, await taken.text()
    async with seeded.services.sessions() as s:
        phones = list(await s.scalars(select(Callback.phone)))
    assert phones == ["79007654321"], "only the allowed number was taken"

    # A number stored before the policy shows on the worklist as one that is not dialled.
    async with seeded.services.sessions() as s, s.begin():
        cb = await s.scalar(select(Callback))
        assert cb is not None
        cb.phone = "78091234567"
    page = await (await client.get("/panel/callbacks?which=mine")).text()
    assert "Номер не набирается: На платные номера" in page
