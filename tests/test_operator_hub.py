"""The operator hub's view of a queue call's end (the screen-pop's "ended", R-H6's wrap-up),
and of a transfer's outcome for the operator who made it (issue 29)."""

from __future__ import annotations

from panoramisk.message import Message

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
    # The end names the call the operator was on, for the page and the wrap-up.
    assert page.get_nowait() == {"type": "ended", "linkedid": "call-1"}


async def test_an_older_calls_late_report_leaves_the_current_call_alone() -> None:
    hub = OperatorHub(None)
    page = hub.listen("1002")
    _connected(hub, "call-2")
    hub._on_complete({"Event": "AgentComplete", "Interface": MEMBER, "Linkedid": "call-1",
                      "Reason": "agent"})
    assert hub.current["1002"]["linkedid"] == "call-2"
    assert page.get_nowait()["type"] == "call"
    assert page.empty()


async def test_the_sender_learns_whether_the_colleague_answered() -> None:
    hub = OperatorHub(None)
    page = hub.listen("1002")
    hub.transfers["1003"] = "1002"
    hub._on_user_event(Message({"Event": "UserEvent", "UserEvent": "HotlineTransferFailed",
                                "Target": "1003", "Status": "NOANSWER"}))
    assert page.get_nowait() == {"type": "transfer", "outcome": "failed", "target": "1003"}
    hub.transfers["1003"] = "1002"
    hub._on_user_event(Message({"Event": "UserEvent", "UserEvent": "HotlineTransferred",
                                "Extension": "1003", "Linkedid": "x", "Transferee": "c"}))
    assert page.get_nowait()["outcome"] == "answered"


def _rung(hub: OperatorHub, extension: str, linkedid: str) -> None:
    hub._on_called({"Event": "AgentCalled", "Interface": f"PJSIP/{extension}",
                    "Linkedid": linkedid, "CallerIDNum": "79001234567",
                    "Queue": "hotline-services"})


async def test_with_ringall_the_operators_who_did_not_answer_lose_the_call() -> None:
    """The card's rule lets a ringing phone's operator open it: once another member
    answers, or the caller leaves or hangs up, nobody else's phone counts as ringing."""
    hub = OperatorHub(None)
    for extension in ("1001", "1002", "1003"):
        _rung(hub, extension, "c-1")
    _rung(hub, "1004", "c-2")
    other = hub.listen("1001")
    hub._on_connect({"Event": "AgentConnect", "Interface": "PJSIP/1002", "Linkedid": "c-1",
                     "CallerIDNum": "79001234567"})
    assert set(hub.ringing) == {"1004"} and hub.current["1002"]["linkedid"] == "c-1"
    assert other.get_nowait() == {"type": "missed", "linkedid": "c-1"}
    # A rung phone hanging up alone leaves the rest ringing; the caller's hang-up does not.
    _rung(hub, "1005", "c-2")
    hub._on_hangup({"Event": "Hangup", "Uniqueid": "c-2.7", "Linkedid": "c-2"})
    assert set(hub.ringing) == {"1004", "1005"}
    hub._on_hangup({"Event": "Hangup", "Uniqueid": "c-2", "Linkedid": "c-2"})
    assert not hub.ringing
    _rung(hub, "1001", "c-3")
    hub._on_caller_leave({"Event": "QueueCallerLeave", "Linkedid": "c-3"})
    assert not hub.ringing
