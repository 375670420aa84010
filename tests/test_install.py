"""The production install (issue 28, docs/install.md), exercised: Debian's own Asterisk
package as "the server" — the development chroot's, seen through a throwaway overlay so
nothing of it changes — runs with its default paths (/etc/asterisk/asterisk.conf, as
Debian's unit starts it, as the asterisk user); `hotline asterisk-config install` puts our
configuration there; `hotline doctor` passes against it, and its AMI line says the
login was refused when the secret is wrong.

Needs root (overlay and bind mounts, chroot); skipped otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from ivr.doctor import run_checks
from ivr.phrases import render_prompts
from ivr.runner import make_agi_server
from ivr.services.container import Services
from ivr.settings import PROJECT_ROOT, Settings, load_settings
from ivr.simulate import wait_until

from .conftest import PORT_SHIFT, SLOT, hotline_environ
from .support.smtp import SmtpServer

pytestmark = pytest.mark.asterisk
RUN_DIR = "/var/lib/asterisk/hotline"


@dataclass
class Server:
    root: Path
    environ: dict[str, str]
    settings: Settings


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=False, capture_output=True, timeout=30)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


@pytest.fixture
def server_root(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """The chroot's Debian with its asterisk package, writable through an overlay."""
    lower = settings.asterisk.chroot_dir
    if os.geteuid() != 0 or not (lower / "usr/sbin/asterisk").exists():
        pytest.skip("needs root and the Asterisk chroot (hotline asterisk up builds it)")
    upper, work, root = tmp_path / "upper", tmp_path / "work", tmp_path / "root"
    for folder in (upper, work, root):
        folder.mkdir()
    _mount("-t", "overlay", "overlay", "-o",
           f"lowerdir={lower},upperdir={upper},workdir={work}", str(root))
    prompts = settings.tts.recordings_dir.resolve()
    inside = root / str(prompts).lstrip("/")
    try:
        # The prompts at the same absolute path for Asterisk as for the service.
        inside.mkdir(parents=True, exist_ok=True)
        _mount("--bind", str(prompts), str(inside))
        yield root
    finally:
        _umount(inside)
        _umount(root)


@pytest_asyncio.fixture
async def server(settings: Settings, sqlite_url: str,
                 server_root: Path) -> AsyncIterator[Server]:
    smtp = SmtpServer()
    smtp.start()
    shift = PORT_SHIFT + 5   # beside this slot's development Asterisk
    environ = hotline_environ(
        HOTLINE_ENVIRONMENT="production",
        HOTLINE_ASTERISK__LOAD_TEST_CONTEXTS="false",
        HOTLINE_ASTERISK__SYSTEM_NAME=f"hotline-install{SLOT}",
        HOTLINE_ASTERISK__LOG_DIR=str(server_root / RUN_DIR.lstrip("/") / "log"),
        HOTLINE_AMI__PORT=str(15038 + shift), HOTLINE_AGI__PORT=str(14573 + shift),
        HOTLINE_ASTERISK__SIP_BIND=f"127.0.0.1:{15060 + shift}",
        HOTLINE_ASTERISK__HTTP_BIND=f"127.0.0.1:{18088 + shift}",
        HOTLINE_AMI__SECRET="install-ami-secret-42", HOTLINE_PANEL__SECRET="p" * 40,
        HOTLINE_DATABASE__URL=sqlite_url, HOTLINE_SMTP__PORT=str(smtp.port))
    installed = load_settings(environ=environ)
    await asyncio.to_thread(render_prompts, installed)
    try:
        yield Server(server_root, environ, installed)
    finally:
        smtp.stop()


async def hotline(server: Server, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.cli", *args, env=server.environ, cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


@contextlib.asynccontextmanager
async def system_asterisk(root: Path) -> AsyncIterator[None]:
    """Started as Debian's unit starts it: default config path, as the asterisk user."""
    proc = await asyncio.create_subprocess_exec(
        "chroot", str(root), "/usr/sbin/asterisk", "-f", "-U", "asterisk", "-G", "asterisk",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    try:
        await wait_until(lambda: _booted(root, proc), 30, "the system Asterisk booted")
        yield
    finally:
        if proc.returncode is None:
            await _rx(root, "core stop now")
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _rx(root: Path, command: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "chroot", str(root), "/usr/sbin/asterisk", "-rx", command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return out.decode()


async def _booted(root: Path, proc: asyncio.subprocess.Process) -> bool:
    if proc.returncode is not None:
        raise AssertionError("the system Asterisk exited at start")
    return "fully booted" in (await _rx(root, "core waitfullybooted")).lower()


async def test_doctor_passes_on_a_system_asterisk_and_names_a_wrong_secret(
    server: Server
) -> None:
    root = server.root
    status, out = await hotline(server, "asterisk-config", "install", "--root", str(root),
                                "--etc", "/etc/asterisk", "--run-dir", RUN_DIR,
                                # The service's user; Asterisk reads its queues.conf.
                                "--service-user", "asterisk")
    assert status == 0, out
    manager = root / "etc/asterisk/manager.conf"
    assert "install-ami-secret-42" in manager.read_text()
    assert manager.stat().st_mode & 0o777 == 0o640, "secrets: root and Asterisk's group"
    assert "#include manager_test.conf" not in manager.read_text()
    assert list((root / "etc/asterisk").glob("hotline-previous-*/manager.conf")), (
        "Debian's own file is kept")
    assert "astetcdir => /etc/asterisk" in (root / "etc/asterisk/asterisk.conf").read_text()
    # The panel rewrites the queues in the service's folder, never in /etc/asterisk.
    queues = root / "etc/asterisk/queues.conf"
    assert queues.is_symlink() and os.readlink(queues) == "/var/lib/hotline/asterisk/queues.conf"

    services = Services.create(server.settings)
    agi = make_agi_server(services)
    await agi.start()
    try:
        async with system_asterisk(root):
            status, out = await hotline(server, "doctor")
            assert status == 0, out
            assert "hotline-general" in await _rx(root, "queue show hotline-general")
            assert [line.split()[:2] for line in out.splitlines()] == [
                ["ok", check] for check in
                ("database", "secrets", "ami", "agi", "prompts", "smtp")]

            wrong = server.settings.model_copy(update={"ami": server.settings.ami.model_copy(
                update={"secret": "a-wrong-ami-secret"})})
            found = {f.check: f for f in await run_checks(wrong)}
            assert [name for name, f in found.items() if not f.ok] == ["ami", "agi"]
            assert found["ami"].line() == (
                f"FAIL ami       {wrong.ami.username}@127.0.0.1:{wrong.ami.port}: login refused: "
                "Authentication failed")
    finally:
        await agi.close()
        await services.close()
