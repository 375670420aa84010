"""The ``hotline`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .settings import Settings, SettingsError, load_settings

log = logging.getLogger("hotline")


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from .db.migrate import upgrade

    upgrade(settings.database.url, args.revision)
    print(f"database at revision {args.revision}: {_safe_url(settings.database.url)}")
    return 0


def _safe_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from .runner import run_service
    from .shipped import production_refusal

    refusal = production_refusal(settings)
    if refusal:
        print(f"hotline serve: {refusal}", file=sys.stderr)
        return 2
    asyncio.run(run_service(settings, parts=args.only))
    return 0


def _asterisk(settings: Settings, args: argparse.Namespace) -> int:
    from .asterisk_dev import AsteriskDevError, DevAsterisk, render_config

    if args.action == "render":
        out = Path(args.out)
        written = render_config(settings, out, etc_dir=str(out.resolve()),
                                run_dir=args.run_dir)
        print("\n".join(str(p) for p in written))
        return 0
    dev = DevAsterisk(settings)
    try:
        if args.action == "up":
            from .phrases import render_prompts

            render_prompts(settings)
            dev.up()
            print(f"Asterisk is up: {dev.status()}")
        elif args.action == "down":
            dev.down()
            print("Asterisk is stopped")
        elif args.action == "status":
            print(dev.status())
            return 0 if dev.pid() else 3
        elif args.action == "cli":
            return dev.cli()
    except AsteriskDevError as exc:
        print(f"hotline asterisk: {exc}", file=sys.stderr)
        return 1
    return 0


def _prompts_render(settings: Settings, args: argparse.Namespace) -> int:
    from .phrases import render_prompts

    for name, path in render_prompts(settings).items():
        print(f"{name}: {path}")
    return 0


def _call_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from .simulate_cli import simulate

    return asyncio.run(simulate(settings, caller=args.caller, number=args.number,
                                dtmf=args.dtmf, delay=args.delay, hold=args.hold,
                                timeout=args.timeout))


def _status(settings: Settings, args: argparse.Namespace) -> int:
    """Whether the hotline is open now, and what a call will hear: the first thing a
    newcomer wants to know after ``make run``."""
    for line in asyncio.run(status_lines(settings, datetime.now(UTC))):
        print(line)
    return 0


async def status_lines(settings: Settings, now: datetime) -> list[str]:
    """The menu and the calendar's own days as the running service has them: from the
    database once an administrator set them up (the settings only seed it)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .calendar import WorkCalendar
    from .db.engine import make_engine, make_sessionmaker
    from .services import menu, work_days

    calendar, ivr = WorkCalendar(settings.organisation), settings.ivr
    engine = make_engine(settings.database.url)
    try:
        async with make_sessionmaker(engine)() as session:
            topics = await menu.topics(session)
            calendar.set_rules(await work_days.rules(session))
        ivr = menu.menu_of(settings, topics) if topics else ivr
    except SQLAlchemyError:
        pass   # no database yet: the menu the settings will seed
    finally:
        await engine.dispose()
    tz = settings.organisation.timezone
    if not calendar.is_open(now):
        opening = calendar.next_opening(now)
        return [f"Hotline:    closed now, opens {opening:%d.%m %H:%M} ({tz}); a call hears "
                "the hours and may press 1 to leave a callback request"]
    until = next(calendar.upcoming_periods(now)).end
    return [f"Hotline:    open now, until {until:%H:%M} ({tz}); a call hears the greeting, "
            "then the menu:",
            *(f"              {topic.digit} — {topic.title}" for topic in ivr.topics),
            "              0 — operator"]


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from .db.migrate import upgrade
    from .demo import DemoRefused, seed_demo

    if settings.environment == "production":
        print("hotline demo: refusing in production: demo data (with its shared password) "
              "is for development only; set HOTLINE_ENVIRONMENT=development", file=sys.stderr)
        return 2
    upgrade(settings.database.url)
    try:
        counts = asyncio.run(seed_demo(settings))
    except DemoRefused as exc:
        print(f"hotline demo: {exc}", file=sys.stderr)
        return 2
    print("demo data: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="Ministry hotline service")
    parser.add_argument("--config", help="settings file (default: $HOTLINE_CONFIG or "
                        "config/hotline.toml)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    up = db.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="heads")
    up.set_defaults(func=_db_upgrade)

    serve = sub.add_parser("serve", help="run the service: FastAGI, AMI listener, scheduler, "
                           "panel")
    serve.add_argument("--only", action="append", choices=["agi", "ami", "scheduler", "web"],
                       help="run only this part (repeatable)")
    serve.set_defaults(func=_serve)

    ast = sub.add_parser("asterisk", help="the development Asterisk")
    ast.add_argument("action", choices=["up", "down", "status", "cli", "render"])
    ast.add_argument("--out", default="var/asterisk-rendered",
                     help="with render: where to write the config")
    ast.add_argument("--run-dir", default="/var/lib/asterisk",
                     help="with render: Asterisk's spool/run/log root on the target")
    ast.set_defaults(func=_asterisk)

    prompts = sub.add_parser("prompts", help="caller-facing audio")
    prompts.add_argument("action", choices=["render"])
    prompts.set_defaults(func=_prompts_render)

    call = sub.add_parser("call", help="calls").add_subparsers(dest="call", required=True)
    sim = call.add_parser("simulate", help="place a simulated call through the real Asterisk")
    sim.add_argument("--caller", default="79001234567", help="the caller's number")
    sim.add_argument("--number", default=None, help="the hotline number dialled "
                     "(default: the first published one)")
    sim.add_argument("--dtmf", default="", help="keys to press, SendDTMF syntax "
                     "(w = 0.5 s pause), e.g. 2 or 4w1234#")
    sim.add_argument("--delay", type=float, default=2.0, help="seconds before the first key")
    sim.add_argument("--hold", type=float, default=8.0, help="seconds to stay on the line after")
    sim.add_argument("--timeout", type=float, default=60.0)
    sim.set_defaults(func=_call_simulate)

    status = sub.add_parser("status", help="is the hotline open now, and what a call hears")
    status.set_defaults(func=_status)

    demo = sub.add_parser("demo", help="seed demo data (idempotent; development only, "
                          "never into a database with other data)")
    demo.set_defaults(func=_demo)

    from . import cli_accounts, cli_admin, cli_ops, cli_records, cli_setup

    cli_records.add_parsers(sub)
    cli_accounts.add_parsers(sub)
    cli_admin.add_parsers(sub)
    cli_ops.add_parsers(sub)
    cli_setup.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Libraries speak only of warnings; our own parts say what they do when serving.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "serve" and not args.verbose:
        for ours in ("hotline", "ivr", "agi", "web"):
            logging.getLogger(ours).setLevel(logging.INFO)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    func: Callable[[Settings, argparse.Namespace], int] = args.func
    try:
        return func(settings, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
