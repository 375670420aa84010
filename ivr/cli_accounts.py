"""``hotline init``, ``hotline staff …``, ``hotline api-token …``, ``hotline phones …``:
accounts and credentials from the command line. A generated password or token is printed
once; only its hash is kept (phone passwords excepted: a phone is provisioned with it)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .db.engine import make_engine, make_sessionmaker
from .db.models import Role, Staff
from .passwords import MIN_LENGTH, generate_password, hash_password
from .services import accounts, phones
from .settings import Settings

T = TypeVar("T")


def _transaction(settings: Settings, job: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``job`` in one transaction: an AccountError inside leaves nothing written."""
    async def run() -> T:
        engine = make_engine(settings.database.url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await job(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _fail(command: str, message: object) -> int:
    print(f"hotline {command}: {message}", file=sys.stderr)
    return 2


def _now() -> datetime:
    return datetime.now(UTC)


def _shown_once(login: str, password: str) -> None:
    print(f"login: {login}")
    print(f"password: {password}")
    print("The password is shown this once: hand it over in person; the employee can be "
          f"given a new one with `hotline staff password {login}`.")


def init(settings: Settings, args: argparse.Namespace) -> int:
    from .db.migrate import upgrade

    upgrade(settings.database.url)
    password = generate_password()
    new = accounts.NewStaff(login=args.login, surname=args.surname,
                            first_name=args.first_name, role=Role.ADMINISTRATOR,
                            department=args.department, position="администратор системы",
                            email=args.email)
    hashed = hash_password(password)
    try:
        _transaction(settings, lambda s: accounts.first_administrator(s, new, hashed))
    except accounts.AccountError as exc:
        return _fail("init", exc)
    print(f"administrator created in {args.department!r}")
    _shown_once(args.login, password)
    return 0


def staff_add(settings: Settings, args: argparse.Namespace) -> int:
    password = generate_password()
    new = accounts.NewStaff(login=args.login, surname=args.surname, first_name=args.first_name,
                            patronymic=args.patronymic, position=args.position,
                            role=Role(args.role), department=args.department,
                            extension=args.extension, email=args.email)
    hashed = hash_password(password)
    try:
        _transaction(settings, lambda s: accounts.add_staff(s, new, hashed))
    except accounts.AccountError as exc:
        return _fail("staff add", exc)
    _shown_once(args.login, password)
    return 0


def staff_edit(settings: Settings, args: argparse.Namespace) -> int:
    """The details given change; the others stay (``--extension ""`` takes the phone
    away)."""
    from .services import admin

    def given(value: str | None, kept: str | None) -> str | None:
        return kept if value is None else value.strip() or None

    async def job(session: AsyncSession) -> Staff:
        staff = await accounts.staff_by_login(session, args.login)
        details = admin.StaffDetails(
            surname=args.surname or staff.surname, first_name=args.first_name or
            staff.first_name, role=Role(args.role) if args.role else staff.role,
            department=args.department or str(staff.department_id),
            patronymic=staff.patronymic if args.patronymic is None else args.patronymic,
            position=staff.position if args.position is None else args.position,
            extension=given(args.extension, staff.extension),
            email=given(args.email, staff.email))
        return await admin.edit_staff(session, settings, staff, details, who=None)

    try:
        staff = _transaction(settings, job)
    except accounts.AccountError as exc:
        return _fail("staff edit", exc)
    print(f"{staff.login} saved")
    return 0


def staff_list(settings: Settings, args: argparse.Namespace) -> int:
    from .services import admin

    async def job(session: AsyncSession) -> list[str]:
        return [f"{s.login}\t{s.surname} {s.first_name}\t{s.position}\t{s.role.value}\t"
                f"{s.department.short_name or s.department.name}\t{s.extension or '-'}\t"
                f"{'active' if s.active else 'disabled'}"
                for s in await admin.staff_list(session)]

    for line in _transaction(settings, job):
        print(line)
    return 0


def _read_password() -> str | None:
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Пароль: ")
    return password if getpass.getpass("Ещё раз: ") == password else None


def staff_password(settings: Settings, args: argparse.Namespace) -> int:
    """A generated password (printed once), or with ``--stdin`` the one given; unlocks the
    account and ends its open panel sessions."""
    password = _read_password() if args.stdin else generate_password()
    if password is None:
        return _fail("staff password", "the two entries differ")
    if len(password) < MIN_LENGTH:
        return _fail("staff password", f"at least {MIN_LENGTH} characters")
    hashed = hash_password(password)

    async def job(session: AsyncSession) -> int:
        staff = await accounts.staff_by_login(session, args.login)
        return await accounts.set_password(session, staff, hashed, _now())

    try:
        ended = _transaction(settings, job)
    except accounts.AccountError as exc:
        return _fail("staff password", exc)
    if args.stdin:
        print(f"password set for {args.login}")
    else:
        _shown_once(args.login, password)
    print(f"panel sessions ended: {ended}")
    return 0


def staff_disable(settings: Settings, args: argparse.Namespace) -> int:
    """As the panel's «Отключить»: their phone's SIP password is replaced too, so a
    workspace left open cannot keep taking calls."""
    from .services import admin

    async def job(session: AsyncSession) -> tuple[int, str | None]:
        staff = await accounts.staff_by_login(session, args.login)
        ended = await admin.disable_staff(session, settings, staff, _now(), who=None)
        return ended, staff.extension

    try:
        ended, extension = _transaction(settings, job)
    except accounts.AccountError as exc:
        return _fail("staff disable", exc)
    print(f"{args.login} disabled: panel sessions ended: {ended}; API tokens stop working")
    if admin.operator_phone(settings, extension) is not None:
        print(f"phone {extension}: new SIP password stored; Asterisk refuses the old one "
              "once pjsip.conf is rendered again and res_pjsip reloaded, and the phone "
              "then drops out of the queues (the panel's «Отключить» does both at once)")
    return 0


def token_create(settings: Settings, args: argparse.Namespace) -> int:
    async def job(session: AsyncSession) -> str:
        staff = await accounts.staff_by_login(session, args.login)
        return await accounts.create_token(session, staff, args.name, args.days, _now())

    try:
        token = _transaction(settings, job)
    except accounts.AccountError as exc:
        return _fail("api-token", exc)
    print(token)
    print(f"valid for {args.days} days; shown this once", file=sys.stderr)
    return 0


def token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    try:
        row = _transaction(settings, lambda s: accounts.revoke_token(s, args.id, _now()))
    except accounts.AccountError as exc:
        return _fail("api-token revoke", exc)
    print(f"token {row.id} ({row.name}) revoked")
    return 0


def token_list(settings: Settings, args: argparse.Namespace) -> int:
    now = _now()
    for token, login in _transaction(settings, accounts.tokens):
        state = ("revoked" if token.revoked_at else
                 "expired" if token.expires_at <= now else "active")
        print(f"{token.id}\t{token.name}\t{login}\t{token.created_at:%Y-%m-%d}\t"
              f"{token.expires_at:%Y-%m-%d}\t{state}")
    return 0


def phones_list(settings: Settings, args: argparse.Namespace) -> int:
    async def job(session: AsyncSession) -> list[tuple[str, str, str]]:
        found = await phones.ensure_passwords(session, settings.asterisk.operator_extensions)
        owners = dict((await session.execute(select(Staff.extension, Staff.login).where(
            Staff.extension.in_(found)))).tuples().all())
        return [(ext, owners.get(ext, "") or "", pw) for ext, pw in found.items()]

    for extension, login, password in _transaction(settings, job):
        print(f"{extension}\t{login or '-'}\t{password}")
    return 0


def phones_regenerate(settings: Settings, args: argparse.Namespace) -> int:
    from .asterisk_dev import DevAsterisk

    try:
        password = _transaction(settings, lambda s: phones.regenerate(s, settings,
                                                                        args.extension))
    except phones.PhoneError as exc:
        return _fail("phones regenerate", exc)
    print(f"{args.extension}\t{password}")
    if DevAsterisk(settings).reload_phones():
        print("the development Asterisk has the new password (res_pjsip reloaded)")
    else:
        print("Asterisk reads it once pjsip.conf is rendered again (`hotline asterisk up`, "
              "or `hotline asterisk render` for an installed Asterisk) and "
              "`module reload res_pjsip.so` is run")
    return 0


def _staff_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    staff = sub.add_parser("staff", help="panel accounts").add_subparsers(
        dest="staff", required=True)
    add = staff.add_parser("add", help="a new employee; the password is printed once")
    add.add_argument("login")
    add.add_argument("--surname", required=True)
    add.add_argument("--first-name", required=True)
    add.add_argument("--patronymic", default="")
    add.add_argument("--position", default="")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--department", required=True, help="id, name or short name")
    add.add_argument("--extension", help="the operator phone's extension")
    add.add_argument("--email")
    add.set_defaults(func=staff_add)
    pw = staff.add_parser("password", help="a new generated password, printed once; unlocks "
                          "the account and ends its panel sessions")
    pw.add_argument("login")
    pw.add_argument("--stdin", action="store_true",
                    help="take the password from standard input instead")
    pw.set_defaults(func=staff_password)
    edit = staff.add_parser("edit", help="change an employee's details; those not given "
                            "stay")
    edit.add_argument("login")
    for name in ("surname", "first-name", "patronymic", "position", "email"):
        edit.add_argument(f"--{name}")
    edit.add_argument("--role", choices=[r.value for r in Role])
    edit.add_argument("--department", help="id, name or short name")
    edit.add_argument("--extension", help='a configured operator phone; "" for none')
    edit.set_defaults(func=staff_edit)
    staff.add_parser("list", help="login, name, position, role, department, extension, "
                     "state").set_defaults(func=staff_list)
    off = staff.add_parser("disable", help="no more logins, sessions or API tokens")
    off.add_argument("login")
    off.set_defaults(func=staff_disable)


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    first = sub.add_parser("init", help="first run: the first administrator, with a "
                           "generated password printed once")
    first.add_argument("--login", default="admin")
    first.add_argument("--surname", default="Администратор")
    first.add_argument("--first-name", default="Системный")
    first.add_argument("--department", default="Администрирование горячей линии",
                       help="made when it does not exist")
    first.add_argument("--email")
    first.set_defaults(func=init)
    _staff_parsers(sub)

    tokens = sub.add_parser("api-token", help="integration API tokens").add_subparsers(
        dest="api_token", required=True)
    create = tokens.add_parser("create", help="make a token; printed once")
    create.add_argument("--login", required=True, help="the employee the token acts as")
    create.add_argument("--name", required=True, help="what uses it, e.g. «СЭДД Дело»")
    create.add_argument("--days", type=int, default=365, help="valid this many days")
    create.set_defaults(func=token_create)
    revoke = tokens.add_parser("revoke", help="stop a token now")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=token_revoke)
    tokens.add_parser("list", help="every token: id, name, employee, made, expires, state"
                      ).set_defaults(func=token_list)

    ph = sub.add_parser("phones", help="operator phones' SIP passwords").add_subparsers(
        dest="phones", required=True)
    ph.add_parser("list", help="extension, employee, SIP password").set_defaults(
        func=phones_list)
    regen = ph.add_parser("regenerate", help="a new SIP password for one phone")
    regen.add_argument("extension")
    regen.set_defaults(func=phones_regenerate)
