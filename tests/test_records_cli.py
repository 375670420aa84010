"""``hotline appeals …``: the CSV import reports bad rows by line and imports nothing; the
retention job and a citizen's history from the command line (R-A1, R-A9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.cli import main

from .conftest import hotline_environ

HEADER = "reg_number,registered_on,channel,surname,phone,topic\n"


def test_import_purge_history_from_the_command_line(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in hotline_environ(HOTLINE_DATABASE__URL=sqlite_url).items():
        monkeypatch.setenv(key, value)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "11,01.10.2020,почта,Иванов,79001112233,Пособия\n"
                   "12,01.10.2020,почта,Иванов,не телефон,Пособия\n", encoding="utf-8")
    assert main(["appeals", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "nothing imported" in err and "строка 3: телефон" in err

    good = tmp_path / "good.csv"
    good.write_text(HEADER + "11,01.10.2020,почта,Иванов,79001112233,Пособия\n"
                    "13,01.10.2025,сайт,Иванов,79001112233,Пособия\n", encoding="utf-8")
    assert main(["appeals", "import", str(good)]) == 0
    assert "imported 2 appeals" in capsys.readouterr().out
    assert main(["appeals", "import", str(tmp_path / "missing.csv")]) == 2

    assert main(["appeals", "purge"]) == 0
    assert "1 appeals" in capsys.readouterr().out        # 2020 is past five years
    assert main(["appeals", "history", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("13;01.10.2025;Пособия;")
