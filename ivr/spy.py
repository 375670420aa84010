"""Listen / whisper / barge (issue 30): the supervisor's phone is originated into ChanSpy on
an operator's channel.

The phone is the supervisor's extension dialled as every employee's phone is
(``asterisk.operator_dial``): their SIP phone, or the panel's browser phone registered on
the same extension. It rings, and on answer runs ``[hotline-spy]`` at the mode's extension,
where ChanSpy takes its target from ``HOTLINE_SPY_TARGET``. The target is a channel the
panel learnt from Asterisk itself (the operator's ``AgentConnect``), checked here once more
against a strict pattern, since ChanSpy would read a comma in it as its options and an
empty one as "any channel".
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from .ami import AMIActionError, AMIClient, AMIError
from .dialplan import SPY_CONTEXT, SPY_TARGET
from .settings import Settings

# Mode → what the supervisor is told it does (Russian, for the page and the audit log).
# The dialplan maps each to ChanSpy's options: listen q, whisper qw, barge qB.
MODES = {"listen": "прослушивание", "whisper": "подсказка оператору",
         "barge": "разговор с обоими"}
# A channel Asterisk named: technology/resource-<8 hex digits>, a Local half's ;1 or ;2.
CHANNEL = re.compile(r"(?:PJSIP|Local)/[A-Za-z0-9@._+-]{1,80}-[0-9a-f]{8}(?:;[12])?")
EXTENSION = re.compile(r"[0-9]{2,10}")
RING_SECONDS = 30


class SpyRefused(Exception):
    """Listening cannot start; the message is for the supervisor."""

    def __init__(self, message: str, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


@dataclass(frozen=True)
class SpyRequest:
    mode: str
    phone: str          # the supervisor's extension
    target: str         # the operator's channel, from the panel's AMI state
    operator: str       # the operator's extension, for the caller ID and the audit


def check(request: SpyRequest) -> None:
    if request.mode not in MODES:
        raise SpyRefused("Выберите режим: прослушивание, подсказка оператору или разговор "
                         "с обоими.", "spy_mode")
    if not EXTENSION.fullmatch(request.phone):
        raise SpyRefused("У вас в карточке сотрудника нет внутреннего номера телефона: "
                         "звонить некуда.", "spy_no_phone")
    if not EXTENSION.fullmatch(request.operator) or not CHANNEL.fullmatch(request.target):
        raise SpyRefused("Оператор сейчас не разговаривает по звонку горячей линии.",
                         "spy_no_call")


async def start(ami: AMIClient, settings: Settings, request: SpyRequest) -> str:
    """Ring the supervisor's phone into ChanSpy on the operator's live channel; the id the
    spy channel gets (``Uniqueid``; a Local phone's other half is ``<id>-phone``)."""
    check(request)
    try:   # still there: ChanSpy with S would end at once, leaving a puzzled supervisor
        await ami.action({"Action": "Status", "Channel": request.target}, as_list=True)
    except AMIActionError:
        raise SpyRefused("Разговор оператора уже закончился.", "spy_call_ended") from None
    channel_id = f"spy-{uuid.uuid4().hex[:16]}"
    try:
        await ami.originate(
            Channel=settings.asterisk.operator_dial.format(extension=request.phone),
            Context=SPY_CONTEXT, Exten=request.mode, Priority="1",
            CallerID=f"Контроль {request.operator} <{request.operator}>",
            Timeout=str(RING_SECONDS * 1000), ChannelId=channel_id,
            OtherChannelId=f"{channel_id}-phone",
            Variable=[f"{SPY_TARGET}={request.target}"])
    except AMIError as exc:
        raise SpyRefused(f"Asterisk не принял вызов: {exc}", "spy_originate") from None
    return channel_id
