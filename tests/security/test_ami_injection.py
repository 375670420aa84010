"""AMI header injection (issue 25): panoramisk writes ``key: value`` lines unescaped, so a
line break in a value would end the header and smuggle in another action. Our client refuses
any header name or value with CR, LF or NUL, whoever calls it, and sends nothing; checked
against the real Asterisk: no channel, no event of the smuggled ``Originate``."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.ami import AMIClient, AMIError, AMIHeaderError
from ivr.simulate import EventRecorder

from .ami_trace import assert_no_trace, marker, originate_payload

BREAKS = {"CRLF": "\r\n", "CR": "\r", "LF": "\n", "NUL": "\0"}


@pytest.mark.parametrize("brk", BREAKS.values(), ids=BREAKS.keys())
async def test_a_line_break_in_a_value_is_refused_and_nothing_runs(
    ami: AMIClient, events: EventRecorder, brk: str
) -> None:
    number = marker()
    payload = originate_payload(number).replace("\r\n", brk)
    with pytest.raises(AMIHeaderError) as refused:
        await ami.action({"Action": "QueuePause", "Interface": "Local/1002@operator-sim/n",
                          "Paused": "true", "Reason": payload}, as_list=False)
    assert isinstance(refused.value, AMIError) and isinstance(refused.value, ValueError)
    assert "\n" not in str(refused.value) and "\r" not in str(refused.value)
    await assert_no_trace(ami, events, number)


@pytest.mark.parametrize("send", ["name", "list item", "originate", "queue_add"])
async def test_every_send_path_refuses_a_smuggled_action(
    ami: AMIClient, events: EventRecorder, send: str
) -> None:
    """A header's name, one item of a multi-line header (``Variable``), and the wrapper's
    own helpers all go through the same check."""
    number = marker()
    smuggled = originate_payload(number)
    calls: dict[str, Any] = {
        "name": lambda: ami.action({"Action": "Ping", smuggled: "1"}),
        "list item": lambda: ami.action({"Action": "Setvar", "Variable": ["A=1", smuggled]}),
        "originate": lambda: ami.originate(Channel="Local/s@hotline-end", Application="Wait",
                                           Data="1", Variable=[f"X={smuggled}"]),
        "queue_add": lambda: ami.queue_add("hotline-general", "Local/1@hotline-end/n",
                                           smuggled),
    }
    with pytest.raises(AMIHeaderError):
        await calls[send]()
    await assert_no_trace(ami, events, number)


async def test_refused_before_anything_is_sent_even_without_a_link() -> None:
    """The check comes first: not even a connection is needed to be refused."""
    client = AMIClient("127.0.0.1", 1, "u", "secret-123")
    with pytest.raises(AMIHeaderError):
        await client.action({"Action": "QueuePause", "Reason": "x\r\nAction: Originate"})


async def test_clean_values_still_pass(ami: AMIClient) -> None:
    """Russian text, spaces and punctuation are fine: only CR, LF and NUL are refused."""
    reply = await ami.action({"Action": "Setvar", "Variable": "HOTLINE_SECURITY_PROBE",
                              "Value": "перерыв: обучение, 5 мин; «кавычки»"})
    assert reply.success
    got = await ami.action({"Action": "Getvar", "Variable": "HOTLINE_SECURITY_PROBE"})
    assert got.get("Value") == "перерыв: обучение, 5 мин; «кавычки»"
    await ami.action({"Action": "Setvar", "Variable": "HOTLINE_SECURITY_PROBE", "Value": ""})
