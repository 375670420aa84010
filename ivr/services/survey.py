"""«На оценку»: the operator ends the conversation from the panel and the caller goes on to
the rating (R-H8), whoever would have hung up first.

The operator's own leg is hung up, not the caller's channel redirected: every way a caller
reaches an operator already continues to the rating when the operator's side ends (the
queue's option ``c``, the transfer gate's Dial ``g``, a callback's Dial ``F``), with the
operator named in the rating step's arguments, so the rating is credited as it would be
after the operator put the phone down.
"""

from __future__ import annotations

import re

from ..ami import AMIClient

# An Asterisk channel name (PJSIP/1001-0000002a, Local/1002@operator-sim-00000012;1). It
# never starts with "/": AMI Hangup reads "/…/" as a pattern over every channel.
CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9_.@;:+/-]{0,149}")


class SurveyError(Exception):
    """The conversation cannot be ended to the rating; the message is for the operator."""


async def to_survey(ami: AMIClient, operator_channel: str) -> str:
    """End the operator's leg so the caller (its bridge peer) continues to the rating; the
    caller's channel. ``operator_channel`` is the operator's current call as the panel's
    AMI link reported it, never a value from a form."""
    if not CHANNEL.fullmatch(operator_channel):
        raise SurveyError("разговор не найден")
    reply = await ami.action({"Action": "Getvar", "Channel": operator_channel,
                              "Variable": "BRIDGEPEER"}, check=False)
    caller = str(reply.get("Value", "") or "")
    if str(reply.get("Response", "")).lower() != "success" or not caller:
        raise SurveyError("вы сейчас не разговариваете с гражданином")
    await ami.action({"Action": "Hangup", "Channel": operator_channel, "Cause": "16"})
    return caller
