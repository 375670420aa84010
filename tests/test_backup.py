"""``hotline backup`` / ``hotline restore`` (issue 28) on SQLite and PostgreSQL: back up,
wipe the database and the files, restore, and the same rows and files are back. A damaged
or hostile backup is refused before anything is touched."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from ivr.backup import FILES, MANIFEST, BackupError, backup, restore
from ivr.db.base import Base
from ivr.db.migrate import head_revisions
from ivr.db.models import Appeal, Citizen, KbArticle, Staff
from ivr.services.container import Services
from ivr.settings import Settings

from .support.records import services_on

TABLES = (Staff, Citizen, Appeal, KbArticle)


def on_own_files(svc: Services, tmp_path: Path) -> Settings:
    """The test's settings with its own recordings and spool folders."""
    settings = svc.settings
    return settings.model_copy(update={
        "database": settings.database.model_copy(update={"spool_dir": tmp_path / "spool"}),
        "tts": settings.tts.model_copy(update={"recordings_dir": tmp_path / "recordings"}),
        "recording": settings.recording.model_copy(
            update={"directory": tmp_path / "recordings" / "calls"}),
    })


async def snapshot(svc: Services) -> tuple[dict[str, int | None], list[str]]:
    async with svc.sessions() as s:
        counts = {t.__tablename__: await s.scalar(select(func.count()).select_from(t))
                  for t in TABLES}
        logins = list(await s.scalars(select(Staff.login).order_by(Staff.id)))
    return counts, logins


async def wipe(svc: Services, settings: Settings) -> None:
    async with svc.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.execute(text("DROP TABLE alembic_version"))
    await svc.engine.dispose()
    shutil.rmtree(settings.tts.recordings_dir)
    shutil.rmtree(settings.database.spool_dir)


async def test_backup_wipe_restore_gives_the_same_rows_and_files(
    svc: Services, tmp_path: Path
) -> None:
    settings = on_own_files(svc, tmp_path)
    (settings.tts.recordings_dir / "scripts").mkdir(parents=True)
    (settings.tts.recordings_dir / "scripts" / "greeting.wav").write_bytes(b"RIFF-audio")
    (settings.recording.directory / "2026").mkdir(parents=True)
    (settings.recording.directory / "2026" / "call.ogg").write_bytes(b"OggS")
    settings.database.spool_dir.mkdir()
    (settings.database.spool_dir / "calls-x.jsonl").write_text('{"kind": "ended"}\n')
    before = await snapshot(svc)
    assert before[0]["staff"], "the demo's staff are there to compare"

    made = await backup(settings, tmp_path / "backups")
    manifest = json.loads((made / MANIFEST).read_text())
    assert set(manifest["revision"].split(",")) == head_revisions()
    assert (made.stat().st_mode & 0o077) == 0, "personal data: the owner's only"
    await wipe(svc, settings)
    async with svc.sessions() as s:
        tables = await s.run_sync(lambda c: c.connection().dialect.get_table_names(
            c.connection()))
    assert "staff" not in tables

    await restore(settings, made / MANIFEST)
    restored = services_on(settings, settings.database.url, svc.clock())
    try:
        assert await snapshot(restored) == before
    finally:
        await restored.close()
    assert (settings.tts.recordings_dir / "scripts" / "greeting.wav").read_bytes() == (
        b"RIFF-audio")
    assert (settings.recording.directory / "2026" / "call.ogg").read_bytes() == b"OggS"
    assert (settings.database.spool_dir / "calls-x.jsonl").read_text() == (
        '{"kind": "ended"}\n')


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_damaged_or_hostile_backups_are_refused(svc: Services, tmp_path: Path) -> None:
    settings = on_own_files(svc, tmp_path)
    made = await backup(settings, tmp_path / "backups")
    archive = made / FILES
    good = archive.read_bytes()

    archive.write_bytes(good[:-10] + b"0123456789")
    with pytest.raises(BackupError, match="checksum differs"):
        await restore(settings, made)

    # A tar that climbs out of its folder, with a manifest that matches it.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        entry = tarfile.TarInfo("recordings/../../escaped.txt")
        entry.size = 3
        tar.addfile(entry, io.BytesIO(b"bad"))
    archive.write_bytes(buffer.getvalue())
    manifest = json.loads((made / MANIFEST).read_text())
    from ivr.backup import _sha256

    manifest["sha256"][FILES] = _sha256(archive)
    (made / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="refused"):
        await restore(settings, made)
    assert not (tmp_path / "escaped.txt").exists()

    manifest["backend"] = "postgresql"
    (made / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="postgresql"):
        await restore(settings, made)
