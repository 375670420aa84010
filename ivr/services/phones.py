"""Operator phones' SIP passwords: one per phone (PJSIP endpoint = extension), generated
and kept in ``operator_phones``, rendered into Asterisk's pjsip.conf.

A phone listed in ``asterisk.operator_extensions`` gets its password the first time the
Asterisk config is rendered; ``hotline phones regenerate`` replaces one. Asterisk reads a
new password when pjsip.conf is rendered again and ``res_pjsip`` reloaded (the development
Asterisk: done by the command; a production one: ``hotline asterisk render`` and
``asterisk -rx "module reload res_pjsip.so"``). The service's AMI user has no right to
reload modules, on purpose.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..ami import AMIActionError, AMIClient, AMIError
from ..db.engine import read_for_render
from ..db.models import OperatorPhone
from ..settings import Settings
from . import audit

log = logging.getLogger(__name__)

PASSWORD_LENGTH = 24
# What a phone password may be where it is written into pjsip.conf.
SAFE_PASSWORD = re.compile(r"^[A-Za-z0-9]{16,64}$")
_ALPHABET = string.ascii_letters + string.digits


class PhoneError(Exception):
    """Phrased for the administrator: what is wrong and what to do."""


def new_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))


async def ensure_passwords(session: AsyncSession, extensions: Sequence[str]) -> dict[str, str]:
    """Every listed phone's password, in the order given; a phone without one gets one."""
    rows = await session.scalars(select(OperatorPhone).where(
        OperatorPhone.extension.in_(extensions)))
    known = {row.extension: row.sip_password for row in rows}
    for extension in extensions:
        if extension not in known:
            known[extension] = new_password()
            session.add(OperatorPhone(extension=extension, sip_password=known[extension]))
    return {extension: known[extension] for extension in extensions}


async def regenerate(session: AsyncSession, settings: Settings, extension: str, *,
                     who: int | None = None) -> str:
    if extension not in settings.asterisk.operator_extensions:
        raise PhoneError(f"Телефона {extension} нет в asterisk.operator_extensions.")
    row = await session.scalar(select(OperatorPhone).where(
        OperatorPhone.extension == extension))
    if row is None:
        row = OperatorPhone(extension=extension)
        session.add(row)
    row.sip_password = new_password()
    audit.write(session, who, "regenerate", "operator_phone", extension, "новый пароль SIP")
    return row.sip_password


# QueueRemove's refusals that mean "nothing to remove there".
NOT_A_MEMBER = ("not there", "no such queue")


async def leave_queues(ami: AMIClient | None, interface: str, queues: Sequence[str]) -> bool:
    """``interface`` out of every queue (a disabled employee's phone, an extension given to
    someone else); False when Asterisk could not be asked. A queue it is not in is no
    error."""
    if ami is None or not ami.connected.is_set():
        return False
    try:
        for queue in queues:
            try:
                await ami.queue_remove(queue, interface)
            except AMIActionError as exc:
                if not any(part in exc.message.lower() for part in NOT_A_MEMBER):
                    raise
    except AMIError as exc:
        log.warning("%s not removed from the queues: %s", interface, exc)
        return False
    return True


def passwords_for_render(settings: Settings) -> dict[str, str]:
    """For the config rendering: each operator phone's password, made where missing."""
    found = read_for_render(settings.database.url, OperatorPhone.__tablename__,
                            lambda s: ensure_passwords(s, settings.asterisk.operator_extensions))
    if found is None:
        raise PhoneError("the database has no operator_phones table: run "
                         "`hotline db upgrade` first")
    return found
