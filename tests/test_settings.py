"""Settings: the committed example loads; bad values stop with one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ivr.settings import DEFAULT_CONFIG, SettingsError, load_settings

from .conftest import hotline_environ


def test_committed_example_is_valid() -> None:
    settings = load_settings(DEFAULT_CONFIG, environ={})
    assert settings.organisation.timezone == "Europe/Moscow"
    assert [t.digit for t in settings.ivr.topics] == ["1", "2", "3", "4", "5", "6"]
    assert settings.organisation.hours.for_weekday(5) is None  # Saturday closed


def test_environment_overrides_nested_keys() -> None:
    settings = load_settings(DEFAULT_CONFIG, environ={
        "HOTLINE_ORGANISATION__TIMEZONE": "Asia/Vladivostok",
        "HOTLINE_AMI__PORT": "6038",
        "HOTLINE_ORGANISATION__HOURS__SAT": "10:00-14:00",
    })
    assert settings.organisation.timezone == "Asia/Vladivostok"
    assert settings.ami.port == 6038
    assert str(settings.organisation.hours.sat) == "10:00-14:00"


@pytest.mark.parametrize(("env", "expected"), [
    ({"HOTLINE_ORGANISATION__TIMEZONE": "Europe/Mordor"},
     "organisation.timezone (from HOTLINE_ORGANISATION__TIMEZONE): unknown time zone"),
    ({"HOTLINE_ORGANISATION__HOURS__MON": "18:00-09:00"},
     "organisation.hours.mon (from HOTLINE_ORGANISATION__HOURS__MON): "
     "the period must end after it starts"),
    ({"HOTLINE_AMI__PORT": "99999"}, "ami.port (from HOTLINE_AMI__PORT): Input should be"),
    ({"HOTLINE_DATABASE__URL": "mysql://x"}, "database.url (from HOTLINE_DATABASE__URL): must"),
    ({"HOTLINE_PANEL__SECRET": "short"}, "panel.secret (from HOTLINE_PANEL__SECRET)"),
])
def test_bad_values_name_the_key(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(DEFAULT_CONFIG, environ=env)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_section_and_unknown_key(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    start = text.index("[ami]")
    cut = text[:start] + text[text.index("[agi]"):]
    (tmp_path / "no-ami.toml").write_text(cut, encoding="utf-8")
    with pytest.raises(SettingsError, match=r"ami: required but missing"):
        load_settings(tmp_path / "no-ami.toml", environ={})
    (tmp_path / "typo.toml").write_text(text.replace("echo = false", "echoo = false"),
                                        encoding="utf-8")
    with pytest.raises(SettingsError, match=r"database.echoo: unknown key"):
        load_settings(tmp_path / "typo.toml", environ={})


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[organisation\nfull_name = ", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "hotline.toml"
    bad.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace(
        'timezone = "Europe/Moscow"', 'timezone = "Moscow"'), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "--config", str(bad), "db", "upgrade"],
        capture_output=True, text=True, env=hotline_environ(), timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "organisation.timezone: unknown time zone 'Moscow'" in lines[0]
    assert "Traceback" not in result.stderr
