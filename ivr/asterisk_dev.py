"""The development Asterisk: render our config, build or reuse a Debian sid chroot, run it.

Where ``asterisk`` is installed on the host it is used directly with ``-C``. Otherwise, as
root on Debian, a ``debootstrap --variant=minbase sid`` chroot with Asterisk 22 is built once
and cached outside the repository (settings ``asterisk.chroot_dir``). The recordings folder
is bind-mounted into the chroot at the same absolute path, so prompt paths are the same for
the service and for Asterisk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .dialling import carrier_dids
from .recordings import asterisk_spool, prepare_spool
from .services.menu import QueueSpec, queues_for_render, seed_queues
from .services.phones import SAFE_PASSWORD, passwords_for_render
from .settings import PROJECT_ROOT, Settings

CONFIG_SRC = PROJECT_ROOT / "config" / "asterisk"
TEST_ONLY = {"extensions_test.conf", "manager_test.conf", "pjsip_test.conf"}
READY_MARKER = ".hotline-ready"
# Inside the chroot, per instance (system_name), so a test Asterisk can run beside `make run`'s.
CHROOT_ETC = "/etc/hotline-asterisk/{name}"
CHROOT_RUN = "/var/lib/hotline-asterisk/{name}"


class AsteriskDevError(Exception):
    """Something the developer must fix; the message says what."""


def template_values(settings: Settings, *, etc_dir: str, run_dir: str,
                    phones: Mapping[str, str],
                    queues: Sequence[QueueSpec] | None = None) -> dict[str, object]:
    """``phones``: each operator phone's own SIP password by extension
    (:func:`ivr.services.phones.passwords_for_render`); ``queues``: the database's
    (:func:`ivr.services.menu.queues_for_render`), the settings' when not given."""
    for extension, password in phones.items():
        if not SAFE_PASSWORD.match(password):
            raise AsteriskDevError(f"phone {extension}: the stored SIP password is not "
                                   "16-64 letters and digits; run `hotline phones regenerate "
                                   f"{extension}`")
    if queues is None:
        queues = seed_queues(settings.ivr)
    a = settings.asterisk
    return {
        "etc_dir": etc_dir,
        "run_dir": run_dir,
        "system_name": a.system_name,
        "ami_port": settings.ami.port,
        "ami_username": settings.ami.username,
        "ami_secret": settings.ami.secret,
        "agi_host": settings.agi.host,
        "agi_port": settings.agi.port,
        "agi_lease_seconds": settings.agi.watchdog_seconds,
        "queue_first_wait": settings.ivr.queue_spell(0, offered=False),
        "transfer_ring_seconds": settings.ivr.transfer_ring_seconds,
        "callback_ring_seconds": settings.callbacks.citizen_ring_seconds,
        "general_queue": settings.ivr.general_queue,
        "queues": queues,
        "hotline_numbers": settings.organisation.hotline_numbers,
        # R-H10: each published number in every form a carrier may deliver it in.
        "hotline_dids": carrier_dids(settings.organisation.hotline_numbers),
        "prompts_dir": str(Path(settings.tts.recordings_dir).resolve()),
        "sip_bind": a.sip_bind,
        "operator_extensions": a.operator_extensions,
        "operator_phones": [(ext, phones[ext]) for ext in a.operator_extensions],
        "webrtc_extensions": a.webrtc_extensions,
        "media_address": a.media_address,
        "http_host": a.http_bind.rsplit(":", 1)[0],
        "http_port": int(a.http_bind.rsplit(":", 1)[1]),
        "trunk_host": a.trunk_host,
        "recording_enabled": int(settings.recording.enabled),
        "recording_consultations": int(settings.recording.consultations),
        "recording_spool": asterisk_spool(settings),
        "trunk_username": a.trunk_username,
        "trunk_password": a.trunk_password,
        "test_contexts": a.load_test_contexts,
    }


def render_config(settings: Settings, out_dir: Path, *, etc_dir: str, run_dir: str,
                  phones: Mapping[str, str] | None = None,
                  queues: Sequence[QueueSpec] | None = None) -> list[Path]:
    """Render every template of config/asterisk into ``out_dir`` (test files only if enabled).
    The phones' SIP passwords and the queues come from the database unless given."""
    if phones is None:
        phones = passwords_for_render(settings)
    if queues is None:
        queues = queues_for_render(settings)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(CONFIG_SRC),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    values = template_values(settings, etc_dir=etc_dir, run_dir=run_dir, phones=phones,
                             queues=queues)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sorted(CONFIG_SRC.glob("*.conf")):
        if src.name in TEST_ONLY and not settings.asterisk.load_test_contexts:
            continue
        dst = out_dir / src.name
        dst.write_text(env.get_template(src.name).render(values), encoding="utf-8")
        written.append(dst)
    return written


def _apt_mirror() -> str:
    """The Debian mirror the host's apt already uses, so the chroot needs no other network."""
    for path in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if line.startswith("URIs:") and len(parts) > 1 and "security" not in parts[1]:
                return parts[1]
            if line.startswith("deb ") and len(parts) > 1 and "security" not in parts[1]:
                return parts[1]
    raise AsteriskDevError("no Debian mirror found in /etc/apt/sources.list*")


@dataclass
class Layout:
    """Where things are, seen from the host (``root``-prefixed) and from Asterisk."""

    root: Path           # "/" for a host Asterisk, the chroot dir otherwise
    etc_inside: str
    run_inside: str
    chrooted: bool

    def host(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")


class DevAsterisk:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = Path(settings.asterisk.runtime_dir)
        host_binary = shutil.which("asterisk")
        if host_binary and not os.environ.get("HOTLINE_ASTERISK_FORCE_CHROOT"):
            run = str(self.runtime.resolve())
            self.layout = Layout(Path("/"), f"{run}/etc", run, chrooted=False)
        else:
            name = settings.asterisk.system_name
            self.layout = Layout(Path(settings.asterisk.chroot_dir),
                                 CHROOT_ETC.format(name=name), CHROOT_RUN.format(name=name),
                                 chrooted=True)
        self.pidfile = self.runtime / "asterisk.pid"
        self.logfile = self.runtime / "asterisk.out"

    @property
    def log_dir(self) -> Path:
        """Asterisk's log folder (CDR, queue_log), seen from the host."""
        return self.layout.host(f"{self.layout.run_inside}/log")

    # --- installation -------------------------------------------------------------------

    def ensure_installed(self, log: Callable[[str], object] = print) -> None:
        if not self.layout.chrooted:
            return
        root = self.layout.root
        if (root / READY_MARKER).exists():
            return
        if os.geteuid() != 0:
            raise AsteriskDevError(
                "Asterisk is not installed. Either install Asterisk 22 on this host, or run "
                "as root on Debian so a sid chroot can be built (needs debootstrap)."
            )
        if shutil.which("debootstrap") is None:
            raise AsteriskDevError("debootstrap is missing: apt-get install -y debootstrap")
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        log(f"Building the Asterisk chroot in {root} (about a minute)…")
        subprocess.run(["debootstrap", "--variant=minbase", "sid", str(tmp), _apt_mirror()],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["chroot", str(tmp), "apt-get", "install", "-y", "-q",
                        "--no-install-recommends", "asterisk"], check=True,
                       stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        version = subprocess.run(["chroot", str(tmp), "asterisk", "-V"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        (tmp / READY_MARKER).write_text(version + "\n")
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        log(f"Built: {version}")

    # --- running ------------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        conf = f"{self.layout.etc_inside}/asterisk.conf"
        prefix = ["chroot", str(self.layout.root)] if self.layout.chrooted else []
        return [*prefix, "asterisk", "-C", conf, *args]

    def rx(self, command: str, timeout: float = 10) -> str:
        result = subprocess.run(self._cmd("-rx", command), capture_output=True, text=True,
                                timeout=timeout)
        return result.stdout

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        with contextlib.suppress(ChildProcessError):
            # Started by this process, it stays a zombie after exiting until reaped, and
            # os.kill would still find it: `down` would wait out its whole timeout.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def _shared_dirs(self) -> list[Path]:
        """Folders Asterisk and the service both use, at the same absolute path: the
        prompts, and the call recordings' folder unless it lies inside the prompts'."""
        prompts = Path(self.settings.tts.recordings_dir).resolve()
        calls = self.settings.recording.directory.resolve()
        return [prompts] if calls.is_relative_to(prompts) else [prompts, calls]

    def _mount_recordings(self) -> None:
        prepare_spool(self.settings)
        if not self.layout.chrooted:
            return
        for src in self._shared_dirs():
            src.mkdir(parents=True, exist_ok=True)
            dst = self.layout.host(str(src))
            dst.mkdir(parents=True, exist_ok=True)
            if not _is_mountpoint(dst):
                subprocess.run(["mount", "--bind", str(src), str(dst)], check=True)

    def _unmount_recordings(self) -> None:
        if not self.layout.chrooted:
            return
        for src in reversed(self._shared_dirs()):
            dst = self.layout.host(str(src))
            if _is_mountpoint(dst):
                subprocess.run(["umount", "-l", str(dst)], check=False)

    def render(self) -> None:
        render_config(self.settings, self.layout.host(self.layout.etc_inside),
                      etc_dir=self.layout.etc_inside, run_dir=self.layout.run_inside)
        # log/cdr-custom: cdr_custom writes there but does not create it.
        for sub in ("spool", "run", "log", "log/cdr-custom", "db"):
            self.layout.host(f"{self.layout.run_inside}/{sub}").mkdir(parents=True, exist_ok=True)

    def up(self, timeout: float = 60) -> None:
        if self.pid():
            self.reload()
            return
        self.ensure_installed()
        self._check_ports_free()
        self.render()
        self._mount_recordings()
        self.runtime.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as out:
            proc = subprocess.Popen(self._cmd("-f"), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AsteriskDevError(f"Asterisk exited at start; see {self.logfile}")
            if _port_open(self.settings.ami.host, self.settings.ami.port) and \
                    "fully booted" in self.rx("core waitfullybooted", timeout=5).lower():
                return
            time.sleep(0.3)
        raise AsteriskDevError(f"Asterisk did not open AMI within {timeout:g}s; see {self.logfile}")

    def _check_ports_free(self) -> None:
        if _port_open(self.settings.ami.host, self.settings.ami.port):
            raise AsteriskDevError(
                f"port {self.settings.ami.port} is taken by another process: "
                "another Asterisk is running (stop it, or set ami.port)")

    def reload(self) -> None:
        self.render()
        self.rx("core reload")

    def reload_phones(self) -> bool:
        """pjsip.conf rendered again and read by the running Asterisk (a phone's new
        password); False when this Asterisk is not running."""
        if not self.pid():
            return False
        self.render()
        self.rx("module reload res_pjsip.so")
        return True

    def down(self, timeout: float = 20) -> None:
        pid = self.pid()
        if pid:
            self.rx("core stop now")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.pid():
                time.sleep(0.2)
            if self.pid():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        self._unmount_recordings()

    def status(self) -> str:
        pid = self.pid()
        where = f"chroot {self.layout.root}" if self.layout.chrooted else "host"
        if not pid:
            return f"stopped ({where})"
        uptime = self.rx("core show uptime seconds").strip().replace("\n", "; ")
        return f"running pid {pid} ({where}); {uptime}"

    def cli(self) -> int:
        return subprocess.call(self._cmd("-r"))


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _is_mountpoint(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)
