"""The operator hub's view of a queue call's end (the screen-pop's "ended", R-H6's wrap-up)."""

from __future__ import annotations

from web.workspace import OperatorHub

MEMBER = "Local/1002@operator-sim/n"


def _connected(hub: OperatorHub, linkedid: str) -> None:
    hub._on_connect({"Event": "AgentConnect", "Interface": MEMBER, "Linkedid": linkedid,
                     "CallerIDNum": "79001234567", "Queue": "hotline-services",
                     "DestChannel": "Local/1002@operator-sim-00000003;1"})


async def test_a_call_ends_even_when_asterisk_leaves_out_the_callers_ids() -> None:
    # Seen on Asterisk 22 when the caller hangs up first: AgentComplete has the member's
    # Interface and Reason "caller", but no Linkedid or Channel.
    hub = OperatorHub(None)
    page = hub.listen("1002")
    _connected(hub, "call-1")
    hub._on_complete({"Event": "AgentComplete", "Interface": MEMBER, "Queue": "hotline-services",
                      "Reason": "caller", "TalkTime": "1"})
    assert "1002" not in hub.current
    assert page.get_nowait()["type"] == "call"
    assert page.get_nowait() == {"type": "ended", "linkedid": ""}


async def test_an_older_calls_late_report_leaves_the_current_call_alone() -> None:
    hub = OperatorHub(None)
    page = hub.listen("1002")
    _connected(hub, "call-2")
    hub._on_complete({"Event": "AgentComplete", "Interface": MEMBER, "Linkedid": "call-1",
                      "Reason": "agent"})
    assert hub.current["1002"]["linkedid"] == "call-2"
    assert page.get_nowait()["type"] == "call"
    assert page.empty()
