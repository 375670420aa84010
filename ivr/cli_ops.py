"""Running an install: ``hotline doctor``, ``backup``, ``restore`` and
``asterisk-config install`` (docs/install.md, docs/operations.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .settings import Settings


def doctor(settings: Settings, args: argparse.Namespace) -> int:
    from .doctor import run_checks

    findings = asyncio.run(run_checks(settings))
    for finding in findings:
        print(finding.line())
    failed = [f.check for f in findings if not f.ok]
    if failed:
        print(f"hotline doctor: {len(failed)} of {len(findings)} checks failed: "
              f"{', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def backup(settings: Settings, args: argparse.Namespace) -> int:
    from .backup import BackupError
    from .backup import backup as make_backup

    try:
        made = asyncio.run(make_backup(settings, Path(args.to)))
    except (BackupError, OSError) as exc:
        print(f"hotline backup: {exc}", file=sys.stderr)
        return 1
    print(f"backup: {made}")
    return 0


def restore(settings: Settings, args: argparse.Namespace) -> int:
    from .backup import BackupError
    from .backup import restore as restore_backup

    try:
        manifest = asyncio.run(restore_backup(settings, Path(args.backup)))
    except (BackupError, OSError) as exc:
        print(f"hotline restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored the backup of {manifest['created_at']} (schema {manifest['revision']}); "
          "run `hotline db upgrade` before starting the service")
    return 0


def asterisk_config(settings: Settings, args: argparse.Namespace) -> int:
    from .install import InstallError, install_config

    try:
        done = install_config(settings, etc=args.etc, run_dir=args.run_dir,
                              root=Path(args.root), owner=args.owner,
                              queues_dir=args.queues_dir, service_user=args.service_user)
    except (InstallError, OSError) as exc:
        print(f"hotline asterisk-config: {exc}", file=sys.stderr)
        return 1
    for path in done.written:
        print(f"written: {path}")
    if done.kept_in:
        print(f"the files replaced are kept in {done.kept_in}")
    print(f'set asterisk.log_dir = "{done.log_dir}" and asterisk.config_dir = '
          f'"{done.config_dir}", then restart Asterisk (systemctl restart asterisk)')
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    check = sub.add_parser("doctor", help="check the install: database, AMI, FastAGI, "
                           "prompts, SMTP, secrets (non-zero exit on a failure)")
    check.set_defaults(func=doctor)

    save = sub.add_parser("backup", help="back up the database and the recordings")
    save.add_argument("--to", default=".", help="folder the backup's folder is made in")
    save.set_defaults(func=backup)

    back = sub.add_parser("restore", help="restore a backup (stop the service first)")
    back.add_argument("backup", help="the backup's folder or its manifest.json")
    back.set_defaults(func=restore)

    conf = sub.add_parser("asterisk-config", help="a system Asterisk's configuration"
                          ).add_subparsers(dest="action", required=True)
    install = conf.add_parser("install", help="render our configuration into a system "
                              "Asterisk's folder (production)")
    install.add_argument("--etc", default="/etc/asterisk", help="Asterisk's config folder")
    install.add_argument("--run-dir", default="/var/lib/asterisk/hotline",
                         help="Asterisk's spool, run, log and db folders go under this")
    install.add_argument("--root", default="/", help="install into this image or chroot")
    install.add_argument("--owner", default="asterisk", help="the user Asterisk runs as")
    install.add_argument("--queues-dir", default="/var/lib/hotline/asterisk",
                         help="queues.conf, which the panel rewrites, goes here")
    install.add_argument("--service-user", default="hotline",
                         help="the user the service runs as (owns --queues-dir)")
    install.set_defaults(func=asterisk_config)
