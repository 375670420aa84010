"""Who is calling, before anything personal is said by phone (issue 25; R-A6, R-P4, 152-FZ).

A caller names a record (an appeal's registration number, a booking's number) and types the
last four digits of the applicant's phone kept with it. Caller ID alone proves nothing (it
is trivially spoofed). Until both match, the caller hears the same thing whether the record
exists or not; after ``MAX_ATTEMPTS`` failures in one call they are put through to a person.
Every attempt, right or wrong, goes to the audit log.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import CitizenPhone
from ..phone import normalise
from ..recorder import Audited
from .container import Services

MAX_ATTEMPTS = 3
LAST_DIGITS = 4
VERIFIED = "ivr_verified"
NOT_VERIFIED = "ivr_not_verified"


def phone_ends_with(phones: Iterable[str], last_four: str) -> bool:
    """Do ``last_four`` typed digits end one of ``phones``? Compared in constant time."""
    if len(last_four) != LAST_DIGITS or not last_four.isdecimal():
        return False
    ends = [normalise(p)[-LAST_DIGITS:] for p in phones]
    return any(len(end) == LAST_DIGITS and hmac.compare_digest(end, last_four) for end in ends)


async def citizen_phones(session: AsyncSession, citizen_id: int | None) -> list[str]:
    if citizen_id is None:
        return []
    return list(await session.scalars(select(CitizenPhone.phone).where(
        CitizenPhone.citizen_id == citizen_id)))


def audit_by_phone(svc: Services, *, caller: str, action: str, object_type: str,
                   object_id: str, details: str) -> None:
    """An entry of the audit log for what a caller did by phone: no employee, the calling
    number in place of an address."""
    svc.recorder.put(Audited(
        linkedid="", at=svc.clock(), staff_id=None, action=action[:40],
        object_type=object_type[:40], object_id=object_id[:60], details=details[:2000],
        remote=normalise(caller)[:60]))


def audit_attempt(svc: Services, *, caller: str, linkedid: str, object_type: str,
                  number: str, ok: bool, attempt: int) -> None:
    """One attempt: the record as the caller named it (never the digits of the phone they
    typed), and the call to find it by."""
    outcome = "подтверждено" if ok else "не подтверждено"
    audit_by_phone(svc, caller=caller, action=VERIFIED if ok else NOT_VERIFIED,
                   object_type=object_type, object_id=number,
                   details=f"Проверка заявителя по телефону, попытка {attempt} из "
                           f"{MAX_ATTEMPTS}: {outcome}. Звонок {linkedid}.")
