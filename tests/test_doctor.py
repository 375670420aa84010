"""``hotline doctor`` (issue 28): each check passes on a sound install and fails with one
clear line on a broken one — schema behind, wrong AMI secret, nothing on the FastAGI port,
prompts not rendered, SMTP away, a shipped secret in use. Against the test Asterisk; the
whole install (a system Asterisk) is tests/test_install.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr import cli
from ivr.asterisk_dev import DevAsterisk
from ivr.doctor import (
    check_agi,
    check_ami,
    check_database,
    check_prompts,
    check_secrets,
    check_smtp,
)
from ivr.runner import make_agi_server
from ivr.services.container import Services
from ivr.settings import Settings

from .conftest import fresh_database, hotline_environ, migrated_database
from .support.smtp import SmtpServer, free_port


def change(settings: Settings, **sections: dict[str, object]) -> Settings:
    return settings.model_copy(update={
        name: getattr(settings, name).model_copy(update=fields)
        for name, fields in sections.items()})


async def fails(check: object, settings: Settings) -> str:
    from ivr.doctor import Failed

    with pytest.raises(Failed) as caught:
        await check(settings)  # type: ignore[operator]
    return str(caught.value)


async def test_database_at_head_and_behind(
    settings: Settings, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    migrated = change(settings, database={"url": migrated_database("sqlite", request,
                                                                   tmp_path)})
    assert "schema at" in await check_database(migrated)
    (tmp_path / "empty").mkdir()
    empty = change(settings, database={"url": fresh_database("sqlite", request,
                                                             tmp_path / "empty")})
    assert "no database file" in await fails(check_database, empty)
    assert not (tmp_path / "empty" / "hotline.sqlite3").exists(), "the doctor made none"
    from ivr.db.migrate import upgrade

    await asyncio.to_thread(upgrade, empty.database.url, "base")
    line = await fails(check_database, empty)
    assert "at no schema" in line and "run `hotline db upgrade`" in line


async def test_ami_and_agi_against_the_test_asterisk(
    settings: Settings, asterisk: DevAsterisk, tmp_path: Path
) -> None:
    assert "all 13 actions allowed" in await check_ami(settings)
    wrong = change(settings, ami={"secret": "not-the-secret"})
    line = await fails(check_ami, wrong)
    assert "login refused" in line and "Authentication failed" in line

    assert "nothing listens" in await fails(check_agi, settings)
    services = Services.create(settings)
    server = make_agi_server(services)
    await server.start()
    try:
        assert "as the dialplan says" in await check_agi(settings)
        moved = change(settings, agi={"port": settings.agi.port + 1})
        assert "the dialplan calls agi://" in await fails(check_agi, moved)
    finally:
        await server.close()
        await services.close()


async def test_prompts_smtp_and_secrets(settings: Settings, asterisk: DevAsterisk,
                                        tmp_path: Path) -> None:
    # The asterisk fixture rendered the test's prompts.
    assert "rendered in" in await check_prompts(settings)
    bare = change(settings, tts={"recordings_dir": tmp_path / "none"})
    assert "hotline prompts render" in await fails(check_prompts, bare)

    server = SmtpServer()
    server.start()
    try:
        assert "answers" in await check_smtp(change(settings, smtp={"port": server.port}))
    finally:
        server.stop()
    assert "127.0.0.1" in await fails(check_smtp, change(settings, smtp={"port": free_port()}))

    line = await fails(check_secrets, settings)
    assert "ami.secret (set HOTLINE_AMI__SECRET)" in line
    changed = change(settings, ami={"secret": "a-new-ami-secret"})
    assert "ami.secret" not in await fails(check_secrets, changed), "panel.secret is left"


async def test_cli_prints_a_line_per_check_and_fails(
    settings: Settings, asterisk: DevAsterisk, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped secrets of the test settings: `hotline doctor` says so and exits 1."""
    for name, value in hotline_environ(HOTLINE_SMTP__PORT=str(free_port())).items():
        monkeypatch.setenv(name, value)
    status = await asyncio.to_thread(cli.main, ["doctor"])
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert [line.split()[1] for line in lines] == [
        "database", "secrets", "ami", "agi", "prompts", "smtp"]
    assert lines[1].startswith("FAIL") and lines[2].startswith("ok")
    assert "checks failed" in err and "secrets" in err
