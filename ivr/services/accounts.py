"""Staff accounts and API tokens: the first administrator, new employees, passwords,
disabling, tokens with an expiry. Used by the ``hotline`` CLI and, through
:mod:`ivr.services.admin`, the administration pages and API; every change is written to
the audit log in the same transaction.

A changed password or a disabled employee ends every panel session of theirs at once; a
disabled employee's API tokens stop working (the token check reads ``Staff.active``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import ApiToken, Department, Role, Staff, WebSession
from . import audit

LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
EXTENSION = re.compile(r"^\d{2,6}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TOKEN_DAYS = 730


class AccountError(Exception):
    """Phrased for the person who asked (Russian): what is wrong and what to do."""


@dataclass(frozen=True, kw_only=True)
class StaffDetails:
    """What an administrator edits of an employee (the login stays)."""

    surname: str
    first_name: str
    role: Role
    department: str            # id, name or short name of an existing department
    patronymic: str = ""
    position: str = ""
    extension: str | None = None
    email: str | None = None


@dataclass(frozen=True, kw_only=True)
class NewStaff(StaffDetails):
    login: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_audit = audit.write


async def staff_by_login(session: AsyncSession, login: str) -> Staff:
    staff = await session.scalar(select(Staff).where(Staff.login == login.strip()))
    if staff is None:
        raise AccountError(f"Сотрудника с логином «{login}» нет.")
    return staff


async def find_department(session: AsyncSession, given: str) -> Department | None:
    given = given.strip()
    clauses = [Department.name == given, Department.short_name == given]
    if given.isdigit():
        clauses.append(Department.id == int(given))
    return await session.scalar(select(Department).where(or_(*clauses)).limit(1))


async def _check_new(session: AsyncSession, new: NewStaff) -> None:
    if not LOGIN.match(new.login):
        raise AccountError("Логин: от 2 до 64 латинских букв, цифр, точек, дефисов.")
    if not new.surname.strip() or not new.first_name.strip():
        raise AccountError("Укажите фамилию и имя.")
    if new.extension is not None and not EXTENSION.match(new.extension):
        raise AccountError("Внутренний номер: от 2 до 6 цифр.")
    if new.email is not None and not EMAIL.match(new.email):
        raise AccountError("Адрес электронной почты указан неверно.")
    if await session.scalar(select(Staff.id).where(Staff.login == new.login)) is not None:
        raise AccountError(f"Логин «{new.login}» уже занят.")
    if new.extension is not None and await session.scalar(
            select(Staff.login).where(Staff.extension == new.extension)) is not None:
        raise AccountError(f"Внутренний номер {new.extension} уже закреплён за сотрудником.")


async def add_staff(session: AsyncSession, new: NewStaff, password_hash: str, *,
                    who: int | None = None) -> Staff:
    await _check_new(session, new)
    department = await find_department(session, new.department)
    if department is None:
        raise AccountError(f"Отдела «{new.department}» нет.")
    staff = Staff(login=new.login, surname=new.surname.strip(),
                  first_name=new.first_name.strip(), patronymic=new.patronymic.strip(),
                  position=new.position.strip(), department_id=department.id, role=new.role,
                  extension=new.extension, email=new.email, password_hash=password_hash)
    session.add(staff)
    await session.flush()
    _audit(session, who, "create", "staff", staff.id,
           f"{staff.login}: {new.role.value}, {department.short_name or department.name}")
    return staff


async def first_administrator(session: AsyncSession, new: NewStaff,
                              password_hash: str) -> Staff:
    """``hotline init``: only while the database has no administrator at all. The
    department is made when it does not exist yet (a fresh database has none)."""
    admins = await session.scalar(select(func.count()).select_from(Staff).where(
        Staff.role == Role.ADMINISTRATOR))
    if admins:
        raise AccountError("Администратор уже есть: новых сотрудников добавляет он "
                           "(hotline staff add).")
    if await find_department(session, new.department) is None:
        session.add(Department(name=new.department, short_name=new.department[:100]))
        await session.flush()
    return await add_staff(session, new, password_hash)


async def revoke_sessions(session: AsyncSession, staff_id: int, now: datetime) -> int:
    result = await session.execute(
        update(WebSession).where(WebSession.staff_id == staff_id,
                                 WebSession.revoked_at.is_(None)).values(revoked_at=now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def set_password(session: AsyncSession, staff: Staff, password_hash: str,
                       now: datetime, *, who: int | None = None) -> int:
    """The new password; unlocks the account and ends its open sessions (how many)."""
    staff.password_hash = password_hash
    staff.failed_logins, staff.locked_until = 0, None
    ended = await revoke_sessions(session, staff.id, now)
    _audit(session, who, "password_set", "staff", staff.id, f"сеансов завершено: {ended}")
    return ended


async def disable(session: AsyncSession, staff: Staff, now: datetime, *,
                  who: int | None = None) -> int:
    staff.active = False
    ended = await revoke_sessions(session, staff.id, now)
    _audit(session, who, "disable", "staff", staff.id, f"сеансов завершено: {ended}")
    return ended


async def create_token(session: AsyncSession, staff: Staff, name: str, days: int,
                       now: datetime, *, who: int | None = None) -> str:
    """A new token, returned once: only its hash is kept."""
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise AccountError(f"Срок действия токена: от 1 до {MAX_TOKEN_DAYS} дней.")
    if not staff.active:
        raise AccountError(f"Сотрудник «{staff.login}» отключён.")
    if not name.strip():
        raise AccountError("Укажите, кто будет пользоваться токеном.")
    token = secrets.token_urlsafe(32)
    row = ApiToken(name=name.strip()[:100], token_hash=token_hash(token), staff_id=staff.id,
                   created_at=now, expires_at=now + timedelta(days=days))
    session.add(row)
    await session.flush()
    _audit(session, who, "create", "api_token", row.id, f"{row.name}: {staff.login}, {days} дн.")
    return token


async def revoke_token(session: AsyncSession, token_id: int, now: datetime, *,
                       who: int | None = None) -> ApiToken:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise AccountError(f"Токена {token_id} нет.")
    if row.revoked_at is None:
        row.revoked_at = now
        _audit(session, who, "revoke", "api_token", row.id, row.name)
    return row


async def tokens(session: AsyncSession) -> list[tuple[ApiToken, str]]:
    """Every token with its employee's login, newest first."""
    rows = await session.execute(select(ApiToken, Staff.login)
                                 .join(Staff, Staff.id == ApiToken.staff_id)
                                 .order_by(ApiToken.id.desc()))
    return [(token, login) for token, login in rows.tuples()]
