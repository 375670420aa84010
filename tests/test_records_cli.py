"""``hotline appeals …``: the CSV import reports bad rows by line and imports nothing; the
retention job and a citizen's history from the command line (R-A1, R-A9); panel passwords
and API tokens."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from .conftest import hotline_environ

HEADER = "reg_number,registered_on,channel,surname,phone,topic\n"


def test_import_purge_history_from_the_command_line(tmp_path: Path, sqlite_url: str) -> None:
    env = hotline_environ(HOTLINE_DATABASE__URL=sqlite_url)

    def hotline(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False,
                              input=stdin)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "11,01.10.2020,почта,Иванов,79001112233,Пособия\n"
                   "12,01.10.2020,почта,Иванов,не телефон,Пособия\n", encoding="utf-8")
    run = hotline("appeals", "import", str(bad))
    assert run.returncode == 1
    assert "nothing imported" in run.stderr and "строка 3: телефон" in run.stderr

    good = tmp_path / "good.csv"
    good.write_text(HEADER + "11,01.10.2020,почта,Иванов,79001112233,Пособия\n"
                    "13,01.10.2025,сайт,Иванов,79001112233,Пособия\n", encoding="utf-8")
    run = hotline("appeals", "import", str(good))
    assert run.returncode == 0 and "imported 2 appeals" in run.stdout
    assert hotline("appeals", "import", str(tmp_path / "missing.csv")).returncode == 2

    with sqlite3.connect(sqlite_url.split(":///", 1)[1]) as db:   # an open appeal stays
        db.execute("UPDATE appeals SET status = 'answered' WHERE reg_number = '11'")
    run = hotline("appeals", "purge")
    assert run.returncode == 0 and ": 1 appeals" in run.stdout   # 2020 is past five years
    run = hotline("appeals", "history", "1")
    lines = run.stdout.splitlines()
    assert run.returncode == 0 and len(lines) == 2
    assert lines[1].startswith("13;01.10.2025;Пособия;")


def test_staff_password_and_api_token_from_the_command_line(sqlite_url: str) -> None:
    env = hotline_environ(HOTLINE_DATABASE__URL=sqlite_url)

    def hotline(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False,
                              input=stdin)

    assert hotline("demo").returncode == 0
    short = hotline("staff", "password", "ivanova", "--stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 10" in short.stderr
    assert hotline("staff", "password", "nobody", "--stdin",
                   stdin="long enough pw\n").returncode == 2
    assert hotline("staff", "password", "ivanova", "--stdin",
                   stdin="long enough pw\n").returncode == 0
    token = hotline("api-token", "create", "--login", "ivanova", "--name", "СЭДД")
    assert token.returncode == 0 and len(token.stdout.strip()) >= 40
