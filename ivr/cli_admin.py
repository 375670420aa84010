"""``hotline departments …`` and ``hotline officials …``: the administration pages'
departments (each with its knowledge-base section, R-K1) and personal reception (R-P1)
from the command line, through the same services and audit entries (made by nobody in
the panel: the command line's)."""

from __future__ import annotations

import argparse
from datetime import date, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from .calendar import WorkCalendar
from .cli_accounts import _fail, _transaction
from .db.models import ExceptionKind
from .services import accounts, admin
from .services import reception_admin as ra
from .settings import Settings


def departments_save(settings: Settings, args: argparse.Namespace) -> int:
    details = admin.DepartmentDetails(args.name, args.short_name, args.competence)

    async def job(session: AsyncSession) -> int:
        found = None
        if args.department is not None:
            found = await accounts.find_department(session, args.department)
            if found is None:
                raise admin.AdminError(f"Подразделения «{args.department}» нет.")
        saved = await admin.save_department(session, found.id if found else None, details,
                                            who=None)
        return saved.id

    try:
        saved = _transaction(settings, job)
    except accounts.AccountError as exc:
        return _fail("departments", exc)
    print(f"department {saved} saved")
    return 0


def departments_list(settings: Settings, args: argparse.Namespace) -> int:
    async def job(session: AsyncSession) -> list[str]:
        return [f"{v.department.id}\t{v.department.short_name}\t{v.department.name}\t"
                f"{', '.join(h.login for h in v.heads) or '-'}\t"
                f"{v.section.title if v.section else '-'}\t"
                f"{', '.join(e.login for e in v.editors) or '-'}"
                for v in await admin.departments(session)]

    for line in _transaction(settings, job):
        print(line)
    return 0


def officials_list(settings: Settings, args: argparse.Namespace) -> int:
    today = WorkCalendar(settings.organisation).today(datetime.now(settings.organisation.tz))

    async def job(session: AsyncSession) -> list[str]:
        lines = []
        for official in await ra.all_officials(session):
            view = await ra.official_view(session, official, today)
            times = "; ".join(ra.schedule_text(s) for s in view.schedules) or "-"
            lines.append(f"{official.id}\t{official.title}\t{official.staff.login}\t"
                         f"{official.kind}\t{'active' if official.active else 'retired'}\t"
                         f"{times}")
        return lines

    for line in _transaction(settings, job):
        print(line)
    return 0


def officials_add(settings: Settings, args: argparse.Namespace) -> int:
    async def job(session: AsyncSession) -> int:
        staff = await accounts.staff_by_login(session, args.login)
        official = await ra.save_official(session, None, ra.OfficialDetails(
            staff.id, args.title, args.kind, args.place, args.directions), who=None)
        return official.id

    try:
        print(f"official {_transaction(settings, job)} added")
    except accounts.AccountError as exc:
        return _fail("officials add", exc)
    return 0


def officials_schedule(settings: Settings, args: argparse.Namespace) -> int:
    """A weekly reception time; an overlap with another of the official's is refused."""
    try:
        given = ra.ScheduleDetails(args.weekday, time.fromisoformat(args.starts),
                                   time.fromisoformat(args.ends), args.slot_minutes)
    except ValueError:
        return _fail("officials schedule", "время в виде ЧЧ:ММ")

    async def job(session: AsyncSession) -> str:
        official = await ra.official_by_id(session, args.id)
        return ra.schedule_text(await ra.add_schedule(session, official, given, who=None))

    try:
        print(f"official {args.id}: {_transaction(settings, job)}")
    except accounts.AccountError as exc:
        return _fail("officials schedule", exc)
    return 0


def officials_off(settings: Settings, args: argparse.Namespace) -> int:
    """Days off: the bookings on them are cancelled and the citizens told."""
    calendar = WorkCalendar(settings.organisation)
    try:
        given = ra.ExceptionDetails(ExceptionKind(args.kind), date.fromisoformat(args.first),
                                    date.fromisoformat(args.last or args.first), args.reason)
    except ValueError:
        return _fail("officials off", "дата в виде ГГГГ-ММ-ДД")

    async def job(session: AsyncSession) -> int:
        official = await ra.official_by_id(session, args.id)
        _, told = await ra.add_exception(session, settings, calendar, official, given,
                                         datetime.now(settings.organisation.tz), who=None)
        return told

    try:
        told = _transaction(settings, job)
    except accounts.AccountError as exc:
        return _fail("officials off", exc)
    print(f"official {args.id}: {given.kind.value} saved; bookings cancelled and citizens "
          f"notified: {told}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dep = sub.add_parser("departments", help="departments and their knowledge-base "
                         "sections").add_subparsers(dest="departments", required=True)
    for verb, helped in (("add", "a new department with its section"),
                         ("edit", "change a department's names or competence")):
        one = dep.add_parser(verb, help=helped)
        if verb == "edit":
            one.add_argument("department", help="id, name or short name")
        else:
            one.set_defaults(department=None)
        one.add_argument("name")
        one.add_argument("--short-name", default="")
        one.add_argument("--competence", default="")
        one.set_defaults(func=departments_save)
    dep.add_parser("list", help="id, short name, name, heads, section, editors"
                   ).set_defaults(func=departments_list)

    off = sub.add_parser("officials", help="personal reception: officials, schedules, "
                         "days off").add_subparsers(dest="officials", required=True)
    off.add_parser("list", help="id, title, employee, kind, state, weekly times"
                   ).set_defaults(func=officials_list)
    new = off.add_parser("add", help="an employee who receives citizens")
    new.add_argument("login")
    new.add_argument("--title", required=True, help="as citizens read it, e.g. «Министр»")
    new.add_argument("--kind", required=True, choices=list(ra.KIND_NAMES))
    new.add_argument("--place", default="")
    new.add_argument("--directions", default="")
    new.set_defaults(func=officials_add)
    week = off.add_parser("schedule", help="a weekly reception time")
    week.add_argument("id", type=int)
    week.add_argument("weekday", type=int, choices=range(7), help="0 = Monday")
    week.add_argument("starts", help="HH:MM")
    week.add_argument("ends", help="HH:MM")
    week.add_argument("--slot-minutes", type=int, default=30)
    week.set_defaults(func=officials_schedule)
    days = off.add_parser("off", help="a vacation or a cancelled day; booked citizens are "
                          "told")
    days.add_argument("id", type=int)
    days.add_argument("kind", choices=[k.value for k in ExceptionKind])
    days.add_argument("first", help="YYYY-MM-DD")
    days.add_argument("--last", help="YYYY-MM-DD (the first day when not given)")
    days.add_argument("--reason", default="")
    days.set_defaults(func=officials_off)
