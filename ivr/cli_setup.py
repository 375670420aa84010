"""``hotline topics|queues|calendar``: the IVR menu, the queues, operators' skills and the
working calendar's own days from the command line — the same changes as the panel's «Меню и
очереди», audited (as "cli") and applied to the running Asterisk."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from datetime import date, time

from sqlalchemy import select

from .ami import AMIClient
from .db.models import Staff
from .ivr_setup import Step, Who, apply_change
from .runner import make_ami
from .services import menu, work_days
from .services.container import Services
from .services.menu import SetupError, TopicInput
from .settings import Settings

CLI = Who(None, "cli")


@contextlib.asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[Services]:
    services = Services.create(settings)
    try:
        yield services
    finally:
        await services.close()


@contextlib.asynccontextmanager
async def _ami(settings: Settings) -> AsyncIterator[AMIClient | None]:
    """The AMI link for the queues' reload; None when Asterisk is not there (the change
    is saved, and Asterisk reads the file when it starts)."""
    client = make_ami(settings)
    await client.start()
    try:
        await client.wait_connected(5)
    except TimeoutError:
        await client.close()
        yield None
        return
    try:
        yield client
    finally:
        await client.close()


async def _change(settings: Settings, object_type: str, object_id: str, step: Step,
                  queues: bool = False) -> int:
    async with contextlib.AsyncExitStack() as stack:
        services = await stack.enter_async_context(_services(settings))
        ami = await stack.enter_async_context(_ami(settings)) if queues else None
        applied = await apply_change(services, ami, CLI, object_type=object_type,
                                     object_id=object_id, step=step, queues=queues)
    print(f"{object_type} {object_id}: {applied.before} -> {applied.after}")
    if applied.warning:
        print(f"warning: {applied.warning}", file=sys.stderr)
    return 0


async def _list(settings: Settings, what: str) -> int:
    async with _services(settings) as services:
        setup = await services.menu.reload(services)
        if what == "topics":
            for t in setup.ivr.topics:
                print(f"{t.digit}  {t.title}  [{t.action}{': ' + t.agency if t.agency else ''}]"
                      f"  -> {t.queue}  ({t.code})")
        elif what == "queues":
            async with services.sessions() as session:
                skills = await menu.all_skills(session)
            for q in setup.queues:
                served = sorted(str(s) for s, mine in skills.items() if q.name in mine)
                print(f"{q.name}  «{q.title}»  {q.strategy}  {q.service_level_seconds}s"
                      f"  operators: {', '.join(served) or '-'}")
        else:
            async with services.sessions() as session:
                for d in await work_days.listed(session, date.min):
                    until = f" until {d.closes_at:%H:%M}" if d.closes_at else ""
                    print(f"{d.day}  {d.kind}{until}  {d.note}")
    return 0


async def _staff_id(settings: Settings, login: str) -> int:
    async with _services(settings) as services, services.sessions() as session:
        found = await session.scalar(select(Staff.id).where(Staff.login == login))
    if found is None:
        raise SetupError(f"Сотрудника с логином {login} нет.", "staff_unknown")
    return int(found)


def _step(settings: Settings, args: argparse.Namespace) -> tuple[str, str, Step, bool]:
    """(object type, id, step, whether the queues change) for one command line."""
    if args.command == "topics":
        if args.action == "remove":
            return "menu_topic", args.digit, lambda s: menu.remove_topic(s, args.digit), False
        given = TopicInput(args.new_digit or args.digit, args.code, args.title, args.do,
                           args.queue, args.agency)
        return "menu_topic", args.digit, lambda s: menu.put_topic(s, given, args.digit), False
    if args.command == "queues":
        if args.action == "remove":
            general = settings.ivr.general_queue
            return "ivr_queue", args.name, lambda s: menu.remove_queue(s, args.name, general), \
                True
        return "ivr_queue", args.name, lambda s: menu.save_queue(
            s, args.name, args.title, args.strategy, args.service_level), True
    day = date.fromisoformat(args.day)
    if args.action == "remove":
        return "calendar_day", args.day, lambda s: work_days.remove_day(s, day), False
    return "calendar_day", args.day, lambda s: work_days.save_day(
        s, day, args.kind, args.until, args.note), False


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        return await _list(settings, args.command)
    if args.command == "queues" and args.action == "skill":
        staff_id = await _staff_id(settings, args.login)
        penalty = None if args.remove else args.penalty
        return await _change(settings, "queue_skill", f"{staff_id}:{args.name}",
                             lambda s: menu.set_skill(s, staff_id, args.name, penalty))
    return await _change(settings, *_step(settings, args))


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(settings, args))
    except (SetupError, ValueError) as exc:
        print(f"hotline {args.command}: {exc}", file=sys.stderr)
        return 1


def _time(value: str) -> time:
    return time.fromisoformat(value)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser("topics", help="the IVR menu (R-H1)").add_subparsers(
        dest="action", required=True)
    topics.add_parser("list")
    put = topics.add_parser("set", help="add the topic at DIGIT or change it")
    put.add_argument("digit")
    put.add_argument("--title", required=True)
    put.add_argument("--code", required=True, help="for the statistics: a-z and _")
    put.add_argument("--queue", required=True)
    put.add_argument("--do", default="queue", choices=sorted(menu.ACTIONS))
    put.add_argument("--agency", default="")
    put.add_argument("--new-digit", default="", help="move the topic to this key")
    topics.add_parser("remove").add_argument("digit")

    queues = sub.add_parser("queues", help="Asterisk's queues and operators' skills") \
        .add_subparsers(dest="action", required=True)
    queues.add_parser("list")
    qput = queues.add_parser("set", help="add the queue NAME or change it")
    qput.add_argument("name")
    qput.add_argument("--title", required=True)
    qput.add_argument("--strategy", default="rrmemory", choices=sorted(menu.STRATEGIES))
    qput.add_argument("--service-level", type=int, default=20)
    queues.add_parser("remove").add_argument("name")
    skill = queues.add_parser("skill", help="the operator LOGIN serves the queue NAME")
    skill.add_argument("login")
    skill.add_argument("name")
    skill.add_argument("--penalty", type=int, default=0)
    skill.add_argument("--remove", action="store_true")

    cal = sub.add_parser("calendar", help="regional holidays, closures, shortened days") \
        .add_subparsers(dest="action", required=True)
    cal.add_parser("list")
    day = cal.add_parser("set")
    day.add_argument("day", help="YYYY-MM-DD")
    day.add_argument("--kind", required=True, choices=sorted(work_days.KINDS))
    day.add_argument("--until", type=_time, default=None, help="HH:MM, a shortened day")
    day.add_argument("--note", default="")
    cal.add_parser("remove").add_argument("day")
    for parser in (sub.choices["topics"], sub.choices["queues"], sub.choices["calendar"]):
        parser.set_defaults(func=run)
