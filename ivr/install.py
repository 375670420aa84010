"""``hotline asterisk-config install``: our Asterisk configuration rendered into a system
Asterisk's folder (Debian's ``asterisk`` package: ``/etc/asterisk``), for production.

The files replaced are kept first in ``<etc>/hotline-previous-<UTC time>/``; Asterisk's
own working folders (spool, run, log, db) are made under ``--run-dir`` and given to the
``asterisk`` user; ``queues.conf``, which the panel rewrites, lives in ``--queues-dir``
(the service's) with a link to it from Asterisk's folder. The files hold secrets (the AMI
secret, SIP passwords): they are readable by root and Asterisk's group only. ``--root``
installs into a mounted image or chroot, the paths written inside the files staying those
seen from within it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .asterisk_dev import render_config
from .settings import Settings

RUN_SUBDIRS = ("spool", "run", "log", "log/cdr-custom", "db")
# The panel rewrites the queues when an administrator changes them (ivr.asterisk_queues):
# the file lives in a folder of the service's, /etc/asterisk/queues.conf links to it, and
# the service never needs to write in /etc/asterisk.
QUEUES = "queues.conf"


class InstallError(Exception):
    """The install cannot go on; the message says what to fix."""


@dataclass(frozen=True)
class Installed:
    written: list[Path]
    kept_in: Path | None
    log_dir: str      # what asterisk.log_dir must say
    config_dir: str   # what asterisk.config_dir must say


def install_config(settings: Settings, *, etc: str, run_dir: str, root: Path = Path("/"),
                   owner: str = "asterisk", queues_dir: str = "/var/lib/hotline/asterisk",
                   service_user: str = "hotline") -> Installed:
    if os.geteuid() != 0:
        raise InstallError("run as root: the files go to Asterisk's folder, owned by root")
    if settings.asterisk.load_test_contexts:
        raise InstallError("asterisk.load_test_contexts is on: the test contexts take calls "
                           "without authentication; set HOTLINE_ASTERISK__LOAD_TEST_CONTEXTS"
                           "=false")
    for path in (etc, run_dir, queues_dir):
        if not path.startswith("/") or ".." in Path(path).parts:
            raise InstallError(f"{path}: an absolute path without '..' is needed")
    target = root / etc.lstrip("/")
    if not target.is_dir():
        raise InstallError(f"{target}: no such folder: is Asterisk installed "
                           "(apt-get install asterisk)?")
    uid, gid = _ids(root, owner)
    service = _ids(root, service_user)
    with tempfile.TemporaryDirectory(dir=target, prefix=".hotline-") as tmp:
        rendered = render_config(settings, Path(tmp), etc_dir=etc, run_dir=run_dir)
        kept = _keep_previous(target, rendered)
        written = [_put(src, target, gid) for src in rendered if src.name != QUEUES]
        written += _link_queues(Path(tmp) / QUEUES, target, root, queues_dir, service)
    for sub in RUN_SUBDIRS:
        folder = root / run_dir.lstrip("/") / sub
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, uid, gid)
    return Installed(written, kept, f"{run_dir}/log", queues_dir)


def _link_queues(src: Path, target: Path, root: Path, queues_dir: str,
                 service: tuple[int, int]) -> list[Path]:
    """queues.conf into the service's folder (group-readable: Asterisk is in the
    service's group), and Asterisk's queues.conf a link to it."""
    folder = root / queues_dir.lstrip("/")
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, *service)
    os.chmod(folder, 0o750)
    os.chmod(src, 0o640)
    os.chown(src, *service)
    os.replace(src, folder / QUEUES)
    link = target / QUEUES
    tmp = target / f".{QUEUES}.link"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(f"{queues_dir}/{QUEUES}")   # as seen from inside ``root``
    os.replace(tmp, link)
    return [folder / QUEUES, link]


def _ids(root: Path, owner: str) -> tuple[int, int]:
    """The user's id and primary group, from the image's own user database when it is
    another root."""
    if root == Path("/"):
        try:
            found = pwd.getpwnam(owner)
        except KeyError:
            raise InstallError(f"no user {owner!r}: see docs/install.md, 2.") from None
        return found.pw_uid, found.pw_gid
    for line in (root / "etc/passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == owner:
            return int(fields[2]), int(fields[3])
    raise InstallError(f"no user {owner!r} in {root}/etc/passwd: see docs/install.md, 2.")


def _keep_previous(target: Path, rendered: list[Path]) -> Path | None:
    replaced = [target / src.name for src in rendered
                if (target / src.name).is_file()
                and (target / src.name).read_bytes() != src.read_bytes()]
    if not replaced:
        return None
    kept = target / f"hotline-previous-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    kept.mkdir(mode=0o700, exist_ok=True)
    for path in replaced:
        shutil.copy2(path, kept / path.name)
    return kept


def _put(src: Path, target: Path, gid: int) -> Path:
    """Atomically, with the secrets readable by root and Asterisk's group only."""
    os.chmod(src, 0o640)
    os.chown(src, 0, gid)
    dst = target / src.name
    os.replace(src, dst)
    return dst
