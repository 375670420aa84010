"""Agent states as facts (issue 29), from the real Asterisk: an operator joins two queues
paused, takes a break with a reason, is ready, and leaves the queues. Asterisk reports each
change once per queue; the recorder keeps one row per change, with the operator's id."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ivr.agent_states import AgentStates, member_state, recording
from ivr.asterisk_dev import DevAsterisk
from ivr.db.models import AgentState, AgentStateChange, Staff
from ivr.runner import make_ami
from ivr.services.container import Services
from ivr.simulate import wait_until

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
QUEUES = ("hotline-services", "hotline-general")


async def _rows(svc: Services) -> list[tuple[str, str, int | None]]:
    await svc.recorder.sync()
    async with svc.sessions() as s:
        rows = (await s.execute(select(AgentStateChange.state, AgentStateChange.reason,
                                       AgentStateChange.staff_id)
                                .where(AgentStateChange.extension == "1001")
                                .order_by(AgentStateChange.at, AgentStateChange.id))).all()
    return [(state.value, reason, staff_id) for state, reason, staff_id in rows]


async def test_queue_member_events_become_one_fact_per_change(
        svc: Services, asterisk: DevAsterisk) -> None:
    ami = make_ami(svc.settings)
    AgentStates(ami, recording(svc.recorder))
    await ami.start()
    await ami.wait_connected(10)
    interface = svc.settings.asterisk.operator_dial.format(extension="1001")
    try:
        for queue in QUEUES:
            await ami.action({"Action": "QueueAdd", "Queue": queue, "Interface": interface,
                              "MemberName": "1001", "Paused": "true"}, as_list=False)
        await ami.action({"Action": "QueuePause", "Interface": interface, "Paused": "true",
                          "Reason": "обучение"}, as_list=False)
        assert await member_state(ami, interface) == (AgentState.PAUSED, "обучение")
        await ami.action({"Action": "QueuePause", "Interface": interface, "Paused": "false"},
                         as_list=False)
        assert await member_state(ami, interface) == (AgentState.READY, "")
    finally:
        for queue in QUEUES:
            await ami.action({"Action": "QueueRemove", "Queue": queue,
                              "Interface": interface}, as_list=False, check=False)
    expected = [("paused", ""), ("paused", "обучение"), ("ready", ""), ("offline", "")]

    async def recorded() -> bool:
        return [(state, reason) for state, reason, _ in await _rows(svc)] == expected
    try:
        await wait_until(recorded, 5, "the four changes recorded")
        assert await member_state(ami, interface) == (AgentState.OFFLINE, "")
    finally:
        await ami.close()
    async with svc.sessions() as s:
        ivanova = await s.scalar(select(Staff.id).where(Staff.extension == "1001"))
    assert {staff_id for *_, staff_id in await _rows(svc)} == {ivanova}
