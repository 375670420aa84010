"""The caller proves they are the applicant before anything personal is said (issue 25).

Each attempt asks the same two things whatever was typed: the record's number, then the
last four digits of the applicant's phone. A wrong pair gets the same short answer whether
the record exists or not. After ``MAX_ATTEMPTS`` the caller is put through to the general
queue, the reason in the call's path for the operator; every attempt is audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from ivr.services.verification import LAST_DIGITS, MAX_ATTEMPTS, audit_attempt

from .common import CallFlow

T = TypeVar("T")

# A topic's result after the last wrong attempt: the general queue, whatever the topic's.
NOT_VERIFIED = "not_verified"
# What the operator reads in the call's path (calls.ivr_path) about why the caller came.
REASON = "не подтверждён"


@dataclass(frozen=True)
class Check(Generic[T]):
    """What one kind of record asks for, and how it is looked up."""

    object_type: str       # in the audit log: "appeal", "booking"
    number_prompt: str     # «Введите номер … и нажмите решётку.»
    number_digits: int
    digits_prompt: str     # «… последние четыре цифры номера телефона …»
    failed_prompt: str     # the same whether the number exists or not
    # (session, number, last four digits) → the record, or None for any mismatch.
    lookup: Callable[[AsyncSession, str, str], Awaitable[T | None]]


async def verify(flow: CallFlow, check: Check[T]) -> T | None:
    """The record once the caller proved it is theirs, None after ``MAX_ATTEMPTS`` wrong
    attempts (the reason is then recorded in the call's path with the general queue)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        number = await flow.collect(check.number_prompt, check.number_digits)
        last_four = await flow.collect(check.digits_prompt, LAST_DIGITS) if number else ""
        async with flow.svc.sessions() as session:
            found = await check.lookup(session, number, last_four)
        audit_attempt(flow.svc, caller=flow.caller, linkedid=flow.linkedid,
                      object_type=check.object_type, number=number,
                      ok=found is not None, attempt=attempt)
        if found is not None:
            flow.record(f"#{attempt}")
            return found
        await _say_through(flow, check.failed_prompt if number else "invalid")
    flow.record(REASON, queue=flow.settings.ivr.general_queue)
    await _say_through(flow, "connecting")
    return None


async def _say_through(flow: CallFlow, prompt: str) -> None:
    # Not cut short by a key: a caller typing the next number early would lose its first
    # digit to the interruption.
    await flow.agi.stream_file(flow.prompts.path(prompt), "")
