"""``hotline appeals …``: the records' command-line side."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

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
    """The scheduler's retention job now: appeals and the other personal data past their
    periods (docs/retention.md)."""
    from .scheduler import retention

    report = asyncio.run(_with_services(settings, retention))
    print(f"retention (appeals: {settings.appeals.retention_mode} after "
          f"{settings.appeals.retention_years} years): {report}")
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


def appeals_topics(settings: Settings, args: argparse.Namespace) -> int:
    """The classifier of appeal topics (R-A1): list, add or rename, retire."""
    from .services import topics

    async def job(svc: Services) -> list[str]:
        async with svc.sessions() as session, session.begin():
            if args.action == "add":
                await topics.save(session, args.code, args.title)
            elif args.action == "retire":
                await topics.retire(session, args.code)
            return ["\t".join([t.code, t.title, *([] if t.active else ["(выведена)"])])
                    for t in await topics.every(session)]

    try:
        lines = asyncio.run(_with_services(settings, job))
    except topics.TopicError as exc:
        print(f"hotline appeals topics: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    appeals = sub.add_parser("appeals", help="written appeals").add_subparsers(
        dest="appeals", required=True)
    imp = appeals.add_parser("import", help="register appeals from the document-flow CSV "
                             "(all rows or none)")
    imp.add_argument("file")
    imp.set_defaults(func=appeals_import)
    purge = appeals.add_parser("purge", help="the retention job now (R-A9, 152-ФЗ): appeals "
                               "and other personal data past their periods")
    purge.set_defaults(func=appeals_purge)
    hist = appeals.add_parser("history", help="a citizen's appeals of the kept years, as CSV")
    hist.add_argument("citizen", type=int, help="the citizen's id")
    hist.set_defaults(func=appeals_history)
    classifier = appeals.add_parser("topics", help="the classifier of appeal topics (R-A1)"
                                    ).add_subparsers(dest="action", required=True)
    classifier.add_parser("list", help="every topic, retired ones marked").set_defaults(
        func=appeals_topics)
    add = classifier.add_parser("add", help="add a topic, or rename the one with this code")
    add.add_argument("code")
    add.add_argument("title")
    add.set_defaults(func=appeals_topics)
    retire = classifier.add_parser("retire", help="no new appeals on this topic")
    retire.add_argument("code")
    retire.set_defaults(func=appeals_topics)
    for name, text in (("overdue", "appeals past their due date (answer or R-A4 notice)"),
                       ("due-soon", "appeals due within appeals.due_soon_working_days")):
        appeals.add_parser(name, help=text).set_defaults(func=appeals_deadlines)
