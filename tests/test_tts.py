"""Prompt rendering: 8 kHz mono WAV, cached by engine and text, uploads override, offline;
personal data never goes to a remote engine (issue 25)."""

from __future__ import annotations

import asyncio
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date
from pathlib import Path

import pytest

from ivr import speech_ru as ru
from ivr.db.models import Appeal, AppealStatus
from ivr.phrases import appeal_status_text
from ivr.settings import DEFAULT_CONFIG, Tts, load_settings
from ivr.tts import PromptLibrary, wav_seconds


def library(tmp_path: Path) -> PromptLibrary:
    return PromptLibrary(Tts(engine="espeak", recordings_dir=tmp_path),
                         {"greeting": "Здравствуйте!", "after_hours": "Откроемся {when}."})


def test_rendered_for_asterisk_and_cached(tmp_path: Path) -> None:
    lib = library(tmp_path)
    rendered = lib.render_all()
    assert set(rendered) == {"greeting"}, "templates are rendered during calls, once filled"
    with wave.open(str(rendered["greeting"])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() > 4000
    assert rendered["greeting"].name.startswith("espeak-")
    mtime = rendered["greeting"].stat().st_mtime_ns
    assert lib.render_text("Здравствуйте!") == rendered["greeting"]
    assert rendered["greeting"].stat().st_mtime_ns == mtime, "not rendered twice"
    assert (tmp_path / "current" / "greeting.wav").resolve() == rendered["greeting"].resolve()
    assert 0.3 < wav_seconds(str(rendered["greeting"].with_suffix(""))) < 5


def test_upload_overrides_and_filled_templates(tmp_path: Path) -> None:
    lib = library(tmp_path)
    lib.render_all()
    assert "prompts/espeak-" in lib.path("greeting")
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "greeting.wav").write_bytes(b"RIFF" + bytes(16040))
    assert lib.path("greeting") == str(tmp_path / "uploads" / "greeting")
    assert lib.seconds(lib.path("greeting")) == 1.0
    (tmp_path / "uploads" / "greeting.wav").unlink()
    assert "prompts/espeak-" in lib.path("greeting")
    assert lib.fill("after_hours", when="завтра") == "Откроемся завтра."


async def test_prepare_renders_once_and_returns_a_playable_path(tmp_path: Path) -> None:
    lib = library(tmp_path)
    text = "Обращение номер один ноль два четыре."
    paths = await asyncio.gather(*(lib.prepare(text) for _ in range(5)))
    assert len(set(paths)) == 1
    assert await asyncio.to_thread(Path(paths[0] + ".wav").exists)
    assert await lib.prepare(text) == paths[0]


def test_concurrent_renders_of_one_text_do_not_collide(tmp_path: Path) -> None:
    """Separate processes (or threads) rendering the same new text at once both succeed."""
    libs = [library(tmp_path) for _ in range(12)]
    text = "Сейчас нерабочее время. Мы откроемся завтра в девять часов."
    start = threading.Barrier(len(libs))

    def render(lib: PromptLibrary) -> Path:
        start.wait()
        return lib.render_text(text)

    with ThreadPoolExecutor(len(libs)) as pool:
        results = list(pool.map(render, libs))
    assert len(set(results)) == 1 and results[0].exists()
    assert not list((tmp_path / "prompts").glob("*.tmp.wav"))


def _mtime(path_without_extension: str) -> int:
    return Path(path_without_extension + ".wav").stat().st_mtime_ns


async def test_prompts_are_found_on_disk_by_a_new_library_not_rendered_again(
    tmp_path: Path,
) -> None:
    """As after a restart: fixed prompts and dynamic texts rendered before are found on
    disk, their files untouched."""
    lib = library(tmp_path)
    fixed = str(lib.render_all()["greeting"].with_suffix(""))
    spoken = await lib.prepare("Обращение номер один ноль два четыре.")
    mtimes = (_mtime(fixed), _mtime(spoken))
    again = library(tmp_path)
    assert again.path("greeting") == fixed
    assert await again.prepare("Обращение номер один ноль два четыре.") == spoken
    assert (_mtime(fixed), _mtime(spoken)) == mtimes


def test_default_engine_is_local() -> None:
    """Nothing leaves the machine unless the settings ask for a remote engine."""
    assert Tts().engine == "espeak"
    assert load_settings(DEFAULT_CONFIG, environ={}).tts.engine == "espeak"


class RemoteStub:
    """Stands in for gTTS (no network here): keeps every text it is given and writes a
    one-second file in its place."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, text: str, dst: Path) -> None:
        self.texts.append(text)
        dst.write_bytes(b"RIFF" + bytes(16040))


def _appeal() -> Appeal:
    return Appeal(reg_number="1024", registered_on=date(2026, 11, 2),
                  status=AppealStatus.REGISTERED, due_date=date(2026, 12, 2))


async def test_personal_texts_never_reach_the_remote_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With gTTS enabled in the settings, the fixed prompts go to it; an appeal's status
    and a citizen's phone number are rendered by espeak-ng all the same."""
    remote = RemoteStub()
    monkeypatch.setattr("ivr.tts.render_gtts", remote)
    texts = load_settings(DEFAULT_CONFIG, environ={}).prompts
    lib = PromptLibrary(Tts(engine="gtts", recordings_dir=tmp_path), {
        name: texts[name] for name in ("greeting", "menu", "appeal_registered",
                                       "callback_confirm_number")})
    lib.render_all()
    assert remote.texts == [texts["greeting"], texts["menu"]], "the remote engine is on"
    assert "prompts/gtts-" in lib.path("greeting")
    status = appeal_status_text(lib, _appeal(), executor=None, agency=None, tz=UTC)
    number = lib.fill("callback_confirm_number", number=ru.digits("79001234567"))
    paths = [Path(await lib.prepare(status)), lib.render_text(number)]
    assert [p.name[:7] for p in paths] == ["espeak-", "espeak-"]
    assert 0.3 < lib.seconds(str(paths[0])) < 15, "a real espeak-ng render"
    assert lib.cached(status) == paths[0].with_suffix(".wav")
    assert len(remote.texts) == 2
    assert len(list((tmp_path / "prompts").glob("gtts-*"))) == 2


def test_a_script_text_starting_with_a_dash_is_spoken_not_taken_for_an_option(
        tmp_path: Path) -> None:
    """A script «-f/etc/…» once made espeak-ng read that file aloud to callers."""
    secret = tmp_path / "secret.txt"
    secret.write_text("секретная строка конфигурации " * 30, encoding="utf-8")
    lib = library(tmp_path)
    said = wav_seconds(str(lib.render_text(f"-f{secret}", personal=False).with_suffix("")))
    read = wav_seconds(str(lib.render_text(secret.read_text(encoding="utf-8"),
                                           personal=False).with_suffix("")))
    assert 0.3 < said < read / 4, (said, read)
    assert wav_seconds(str(lib.render_text("--help").with_suffix(""))) > 0.3
