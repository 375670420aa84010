"""``hotline appeals …`` and ``hotline api-token …``: the records' command-line side."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from .db.models import ApiToken, Staff
from .services.container import Services
from .settings import Settings


async def _with_services(settings: Settings, job):  # type: ignore[no-untyped-def]
    services = Services.create(settings)
    try:
        return await job(services)
    finally:
        await services.close()


def appeals_import(settings: Settings, args: argparse.Namespace) -> int:
    from .services.intake import import_csv

    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"hotline appeals import: {args.file}: {exc}", file=sys.stderr)
        return 2

    async def job(svc: Services):  # type: ignore[no-untyped-def]
        return await import_csv(svc.sessions, settings, svc.calendar, text, now=svc.clock())

    report = asyncio.run(_with_services(settings, job))
    if not report.ok:
        print(f"{args.file}: nothing imported; fix these rows and import again:",
              file=sys.stderr)
        for error in report.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print(f"imported {report.imported} appeals")
    return 0


def appeals_purge(settings: Settings, args: argparse.Namespace) -> int:
    from .scheduler import appeals_retention

    result = asyncio.run(_with_services(settings, appeals_retention))
    print(f"retention ({settings.appeals.retention_mode}, {settings.appeals.retention_years} "
          f"years): {result.appeals} appeals, {result.notices} notices, "
          f"{result.surveys} survey answers")
    return 0


def appeals_history(settings: Settings, args: argparse.Namespace) -> int:
    from .services.retention import citizen_history, history_csv

    async def job(svc: Services) -> str:
        async with svc.sessions() as session:
            rows = await citizen_history(session, settings, args.citizen,
                                         svc.calendar.today(svc.clock()))
        return history_csv(rows)

    sys.stdout.write(asyncio.run(_with_services(settings, job)))
    return 0


def appeals_deadlines(settings: Settings, args: argparse.Namespace) -> int:
    from .services.appeals import due_soon, overdue

    async def job(svc: Services) -> list[str]:
        today = svc.calendar.today(svc.clock())
        async with svc.sessions() as session:
            rows = (await overdue(session, today) if args.appeals == "overdue"
                    else await due_soon(session, settings, svc.calendar, today))
        return [f"{a.reg_number}\t{a.registered_on:%d.%m.%Y}\t{a.due_date:%d.%m.%Y}\t"
                f"{'срочное' if a.urgent else ''}\t{a.status.value}\t{a.topic}" for a in rows]

    for line in asyncio.run(_with_services(settings, job)):
        print(line)
    return 0


def api_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from web.api import token_hash

    token = secrets.token_urlsafe(32)

    async def job(svc: Services) -> bool:
        async with svc.sessions() as session, session.begin():
            staff_id = await session.scalar(select(Staff.id).where(Staff.login == args.login))
            if staff_id is None:
                return False
            session.add(ApiToken(name=args.name, token_hash=token_hash(token),
                                 staff_id=staff_id, created_at=datetime.now(UTC)))
        return True

    if not asyncio.run(_with_services(settings, job)):
        print(f"hotline api-token: no staff member with login {args.login!r}", file=sys.stderr)
        return 2
    print(token)
    return 0


def staff_password(settings: Settings, args: argparse.Namespace) -> int:
    """Set an employee's panel password, read from standard input (twice on a terminal)."""
    import getpass

    from .passwords import MIN_LENGTH, hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Пароль: ")
        if getpass.getpass("Ещё раз: ") != password:
            print("hotline staff password: the two entries differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_LENGTH:
        print(f"hotline staff password: at least {MIN_LENGTH} characters", file=sys.stderr)
        return 2

    async def job(svc: Services) -> bool:
        async with svc.sessions() as session, session.begin():
            staff = await session.scalar(select(Staff).where(Staff.login == args.login))
            if staff is None:
                return False
            staff.password_hash = hash_password(password)
            staff.failed_logins, staff.locked_until = 0, None
        return True

    if not asyncio.run(_with_services(settings, job)):
        print(f"hotline staff password: no staff member with login {args.login!r}",
              file=sys.stderr)
        return 2
    print(f"password set for {args.login}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    appeals = sub.add_parser("appeals", help="written appeals").add_subparsers(
        dest="appeals", required=True)
    imp = appeals.add_parser("import", help="register appeals from the document-flow CSV "
                             "(all rows or none)")
    imp.add_argument("file")
    imp.set_defaults(func=appeals_import)
    purge = appeals.add_parser("purge", help="the retention job now (R-A9)")
    purge.set_defaults(func=appeals_purge)
    hist = appeals.add_parser("history", help="a citizen's appeals of the kept years, as CSV")
    hist.add_argument("citizen", type=int, help="the citizen's id")
    hist.set_defaults(func=appeals_history)
    for name, text in (("overdue", "appeals past their due date (answer or R-A4 notice)"),
                       ("due-soon", "appeals due within appeals.due_soon_working_days")):
        appeals.add_parser(name, help=text).set_defaults(func=appeals_deadlines)

    staff = sub.add_parser("staff", help="panel accounts").add_subparsers(
        dest="staff", required=True)
    pw = staff.add_parser("password", help="set a password (from standard input); unlocks")
    pw.add_argument("login")
    pw.set_defaults(func=staff_password)

    tokens = sub.add_parser("api-token", help="integration API tokens").add_subparsers(
        dest="api_token", required=True)
    create = tokens.add_parser("create", help="make a token; printed once")
    create.add_argument("--login", required=True, help="the employee the token acts as")
    create.add_argument("--name", required=True, help="what uses it, e.g. «СЭДД Дело»")
    create.set_defaults(func=api_token_create)
