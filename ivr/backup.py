"""``hotline backup`` and ``hotline restore``: the database and the files beside it.

A backup is one directory, ``hotline-backup-<UTC time>``, holding

* ``database.sqlite3`` (SQLite's online backup API: consistent while the service writes)
  or ``database.pgdump`` (``pg_dump -Fc``, restored with ``pg_restore``);
* ``files.tar.gz``: the prompts, the call recordings and the call recorder's spool (facts
  not yet in the database), each under its name from :func:`file_dirs`;
* ``manifest.json``: when, which backend and schema revision, each file's SHA-256.

Restore checks every checksum before touching anything, then replaces the database's
contents and unpacks the files into the directories the settings name now. Stop the
service first; run ``hotline db upgrade`` after restoring an older backup.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime
from glob import glob
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .db.engine import SQLITE_PREFIX
from .settings import Settings

MANIFEST = "manifest.json"
FILES = "files.tar.gz"
FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot go on, phrased for the operator (one line)."""


def file_dirs(settings: Settings) -> dict[str, Path]:
    """What goes into ``files.tar.gz``, by the name it has there: the prompts, the call
    recordings (inside the prompts' folder by default), the recorder's spool."""
    dirs = {"recordings": settings.tts.recordings_dir, "spool": settings.database.spool_dir}
    calls = settings.recording.directory
    if not calls.resolve().is_relative_to(settings.tts.recordings_dir.resolve()):
        dirs["calls"] = calls
    return dirs


async def backup(settings: Settings, to: Path, now: datetime | None = None) -> Path:
    revision = await _revision(settings)
    return await asyncio.to_thread(_backup, settings, to, revision, now)


def _backup(settings: Settings, to: Path, revision: str, now: datetime | None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = to / f"hotline-backup-{stamp}"
    target.mkdir(parents=True, exist_ok=False, mode=0o700)   # personal data inside
    url = settings.database.url
    if url.startswith(SQLITE_PREFIX):
        dump = target / "database.sqlite3"
        _sqlite_copy(Path(url.removeprefix(SQLITE_PREFIX)), dump)
    else:
        dump = target / "database.pgdump"
        _pg(settings, "pg_dump", "-Fc", "--no-owner", "-f", str(dump))
    _pack(file_dirs(settings), target / FILES)
    manifest = {
        "format": FORMAT, "created_at": stamp, "backend": "sqlite" if dump.suffix ==
        ".sqlite3" else "postgresql", "revision": revision,
        "database": dump.name, "files": FILES,
        "sha256": {p.name: _sha256(p) for p in (dump, target / FILES)},
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return target


async def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Restore the backup in ``source`` (its directory or its manifest)."""
    return await asyncio.to_thread(_restore, settings, source)


def _restore(settings: Settings, source: Path) -> dict[str, Any]:
    folder = source.parent if source.name == MANIFEST else source
    manifest = _manifest(folder)
    url = settings.database.url
    backend = "sqlite" if url.startswith(SQLITE_PREFIX) else "postgresql"
    if manifest["backend"] != backend:
        raise BackupError(f"the backup is of a {manifest['backend']} database, the settings "
                          f"name a {backend} one")
    dump = folder / manifest["database"]
    if backend == "sqlite":
        _sqlite_copy(dump, Path(url.removeprefix(SQLITE_PREFIX)))
    else:
        _pg(settings, "pg_restore", "--clean", "--if-exists", "--no-owner",
            "--single-transaction", str(dump))
    _unpack(folder / manifest["files"], file_dirs(settings))
    return manifest


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder}: no readable {MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder}: unknown backup format {manifest.get('format')!r}")
    for name, digest in manifest.get("sha256", {}).items():
        # Names come from the file: only plain names in this folder are looked at.
        if Path(name).name != name or not (folder / name).is_file():
            raise BackupError(f"{folder}: {name!r} is missing")
        if _sha256(folder / name) != digest:
            raise BackupError(f"{folder / name}: checksum differs: the file is damaged")
    for key in ("database", "files"):
        if manifest.get(key) not in manifest.get("sha256", {}):
            raise BackupError(f"{folder}: the manifest names no checked {key} file")
    return manifest


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while another process writes."""
    if not source.is_file():
        raise BackupError(f"{source}: no such SQLite database")
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.chmod(target, 0o600)


def _pg(settings: Settings, tool: str, *args: str) -> None:
    url = make_url(settings.database.url)
    env = {**os.environ, "PGPASSWORD": url.password or "", "PGCONNECT_TIMEOUT": "10"}
    command = [_pg_tool(tool), "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
               "-U", url.username or "postgres", "-d", url.database or "", *args]
    # The password goes by the environment, never the command line (other users see it).
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600,
                          check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed: {done.stderr.strip().splitlines()[-1:]}")


def _pg_tool(name: str) -> str:
    """The newest PostgreSQL client: a dump made by a newer server needs a newer tool."""
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major)
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise BackupError(f"{name} not found: apt-get install postgresql-client")
    return path


def _major(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _pack(dirs: dict[str, Path], archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for name, directory in dirs.items():
            if directory.is_dir():
                tar.add(directory, arcname=name)
    os.chmod(archive, 0o600)


def _unpack(archive: Path, dirs: dict[str, Path]) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        for name, directory in dirs.items():
            members = [m for m in tar.getmembers()
                       if m.name == name or m.name.startswith(name + "/")]
            if not members:
                continue
            directory.mkdir(parents=True, exist_ok=True)
            for member in members:
                member.name = member.name[len(name):].lstrip("/") or "."
            # The "data" filter refuses absolute paths, "..", links out and devices.
            try:
                tar.extractall(directory, members=members, filter="data")
            except tarfile.TarError as exc:
                raise BackupError(f"{archive}: refused: {exc}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(_reader(f), b""):
            digest.update(block)
    return digest.hexdigest()


def _reader(f: Any) -> Callable[[], bytes]:
    return lambda: f.read(1 << 20)


async def _revision(settings: Settings) -> str:
    from .db.migrate import applied_revisions

    try:
        return ",".join(sorted(await applied_revisions(settings.database.url)))
    except Exception:  # the backup itself matters more than its label
        return ""
