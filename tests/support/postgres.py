"""A throwaway PostgreSQL cluster from Debian's packages, on loopback, for the test run."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresUnavailable(Exception):
    pass


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise PostgresUnavailable(f"{name} not found: apt-get install postgresql")


class TestCluster:
    __test__ = False  # not a test class, though its name starts with Test

    def __init__(self, port: int = 15432) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.data = self.dir / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; Debian's package created this user.
            shutil.chown(self.dir, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8")
        self.resume()

    def resume(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                        "-c fsync=off -c max_connections=200",
                  "start")

    def pause(self) -> None:
        """Stop the server, keeping the data: a database restart, as tests need one."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database: empty, or a copy of ``template`` (which nobody may be connected to:
        PostgreSQL refuses to copy a database in use)."""
        for identifier in filter(None, (name, template)):
            if not _IDENTIFIER.fullmatch(identifier):
                raise ValueError(f"not a database name for a test: {identifier!r}")
        copy = f' TEMPLATE "{template}"' if template else ""
        self._run(_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-c", f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self.data / "postmaster.pid").exists():
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
