"""Prompt rendering: 8 kHz mono WAV, cached by engine and text, uploads override, offline."""

from __future__ import annotations

import asyncio
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ivr.settings import Tts
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
    lib.forget_uploads()  # what saving an upload does; otherwise seen within UPLOADS_RECHECK
    assert lib.path("greeting") == str(tmp_path / "uploads" / "greeting")
    assert lib.seconds(lib.path("greeting")) == 1.0
    # Removed by someone else: noticed once the folder's modification time changes.
    lib.UPLOADS_RECHECK = 0.0
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


async def test_what_the_library_remembers_is_bounded(tmp_path: Path) -> None:
    """Dynamic texts (appeal numbers, dates) are many over months of calls: the texts,
    paths and lengths kept in memory start over when full, and a text asked for again is
    still found on disk, not rendered twice."""
    lib = library(tmp_path)
    lib.REMEMBERED = 3
    texts = [f"Обращение номер {n}." for n in range(8)]
    first = [await lib.prepare(text) for text in texts]
    assert len(set(first)) == len(texts)
    lengths = [lib.seconds(path) for path in first]
    assert all(0.3 < length < 5 for length in lengths)
    mtimes = [_mtime(path) for path in first]
    lib._prepared.clear()  # as after a restart: every text is looked for on disk
    assert [await lib.prepare(text) for text in texts] == first
    assert [lib.seconds(path) for path in first] == lengths
    assert [_mtime(path) for path in first] == mtimes, "found again, not rendered again"
    for memo in (lib._found, lib._prepared, lib._seconds):
        assert 1 <= len(memo) <= 3
