"""Prompt rendering: text → 8 kHz mono 16-bit WAV that Asterisk plays without transcoding.

gTTS (Russian) when the engine is ``auto`` or ``gtts`` and Google is reachable; espeak-ng with
a Russian voice otherwise. Files are cached in ``recordings/prompts`` by engine and text hash,
so a call never waits for synthesis; an uploaded studio recording
(``recordings/uploads/<name>.wav``) overrides the synthesised one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from .settings import Tts

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class TTSError(Exception):
    pass


def _sox_to_asterisk(src: Path, dst: Path) -> None:
    sox = shutil.which("sox")
    if sox is None:
        raise TTSError("sox is not installed (apt-get install sox libsox-fmt-mp3)")
    # A unique temporary name: two calls may render the same new text at the same moment.
    tmp = dst.with_name(f".{dst.stem}.{uuid.uuid4().hex}.tmp.wav")
    subprocess.run(
        [sox, str(src), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp)],
        check=True, capture_output=True, timeout=60,
    )
    tmp.replace(dst)  # atomic: Asterisk never sees half a file


def render_espeak(text: str, dst: Path, voice: str) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise TTSError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(raw), text],
                       check=True, capture_output=True, timeout=60)
        _sox_to_asterisk(raw, dst)


def render_gtts(text: str, dst: Path) -> None:
    from gtts import gTTS  # imported lazily: only the online engine needs it

    with tempfile.TemporaryDirectory() as tmp:
        mp3 = Path(tmp) / "speech.mp3"
        try:
            gTTS(text=text, lang="ru", timeout=10).save(str(mp3))
        except Exception as exc:  # gTTS raises its own and requests' errors
            raise TTSError(f"gTTS failed: {exc}") from exc
        _sox_to_asterisk(mp3, dst)


WAV_HEADER = 44
BYTES_PER_SECOND = 16000  # 8 kHz, 16-bit, mono


def wav_seconds(path_without_extension: str) -> float:
    """Length of one of our prompt files; 0 for a file that is not there."""
    try:
        size = Path(path_without_extension + ".wav").stat().st_size
    except OSError:
        return 0.0
    return max(0, size - WAV_HEADER) / BYTES_PER_SECOND


class PromptLibrary:
    """Named prompts → files. ``path(name)`` is what flows hand to Asterisk (no extension).

    Lookups during calls touch no disk: a rendered file is named by its engine and text
    hash and never changes once written, so a text found rendered stays found (a text not
    yet rendered is looked up again next time). Uploaded recordings can come and go; the
    uploads folder is listed again when its modification time changes, checked at most
    every ``UPLOADS_RECHECK`` seconds.
    """

    UPLOADS_RECHECK = 1.0
    # Texts, paths and lengths kept per process. Dynamic texts (appeal numbers, dates,
    # times) are many over months of calls; a full memo starts over, and a text asked for
    # again is found on disk again.
    REMEMBERED = 10_000

    def __init__(self, tts: Tts, texts: Mapping[str, str]) -> None:
        self.tts = tts
        self.texts = dict(texts)
        self.root = Path(tts.recordings_dir)
        self.cache_dir = self.root / "prompts"
        self.uploads_dir = self.root / "uploads"
        self._online_failed = tts.engine == "espeak"
        self._inflight: dict[str, asyncio.Future[Path]] = {}
        self._found: dict[str, Path] = {}           # text → its rendered file
        self._named: dict[str, str] = {}            # prompt name → path without extension
        self._prepared: dict[str, str] = {}         # text → its file without extension
        self._seconds: dict[str, float] = {}        # path without extension → audio length
        self._uploads: frozenset[str] = frozenset()
        self._uploads_mtime: int | None = None
        self._uploads_checked = -math.inf

    def _cache_path(self, engine: str, text: str) -> Path:
        digest = hashlib.sha256(f"{engine}\0{self.tts.espeak_voice}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{engine}-{digest[:20]}.wav"

    def _existing(self, text: str) -> Path | None:
        for engine in ("gtts", "espeak"):
            path = self._cache_path(engine, text)
            if path.exists():
                return path
        return None

    def cached(self, text: str) -> Path | None:
        """The rendered file for ``text`` if there is one (espeak-only runs ignore gTTS's)."""
        found = self._found.get(text)
        if found is not None:
            return found
        if self.tts.engine == "espeak":
            path = self._cache_path("espeak", text)
            found = path if path.exists() else None
        else:
            found = self._existing(text)
        if found is not None:
            self._remember(self._found, text, found)
        return found

    def render_text(self, text: str) -> Path:
        """Render one text (or find it cached) and return the WAV path."""
        found = self.cached(text)
        if found:
            return found
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if not self._online_failed:
            dst = self._cache_path("gtts", text)
            try:
                render_gtts(text, dst)
                return dst
            except TTSError as exc:
                if self.tts.engine == "gtts":
                    raise
                # Offline: stop trying the network for the rest of this run.
                log.warning("gTTS unavailable, using espeak-ng: %s", exc)
                self._online_failed = True
        dst = self._cache_path("espeak", text)
        render_espeak(text, dst, self.tts.espeak_voice)
        return dst

    def is_template(self, name: str) -> bool:
        return "{" in self.texts.get(name, "")

    def fill(self, name: str, **values: str) -> str:
        """A template prompt with its {fields} filled in (dates, numbers already in words)."""
        return self.texts[name].format(**values)

    async def prepare(self, text: str) -> str:
        """Render a dynamic text off the event loop; the path to play, without extension.
        A text rendered before costs one stat, no thread hop, and one found before a
        dictionary lookup (the greeting's script is asked for on every call: its path
        worked out by pathlib again was ~10 µs of a quiet time's call)."""
        known = self._prepared.get(text)
        if known is not None:
            return known
        path = self.cached(text)
        if path is None:
            pending = self._inflight.get(text)
            if pending is None:
                # One render per text however many calls ask for it at once.
                pending = asyncio.ensure_future(asyncio.to_thread(self.render_text, text))
                self._inflight[text] = pending
                pending.add_done_callback(lambda _: self._inflight.pop(text, None))
            path = await asyncio.shield(pending)
        known = str(path.with_suffix(""))
        self._remember(self._prepared, text, known)
        return known

    def render_all(self, extra: Iterable[str] = ()) -> dict[str, Path]:
        """Render every fixed prompt and point ``current/<name>.wav`` at it, so the
        dialplan can play a prompt by name (``${PROMPTS}/technical_fallback``); and the
        ``extra`` texts (filled templates known in advance, e.g. the queue announcements).
        Other templates are rendered during calls, while something else plays."""
        for text in extra:
            self.render_text(text)
        rendered = {name: self.render_text(text) for name, text in self.texts.items()
                    if not self.is_template(name)}
        current = self.root / "current"
        current.mkdir(parents=True, exist_ok=True)
        for name, path in rendered.items():
            link = current / f"{name}.wav"
            tmp = current / f".{name}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(Path("..") / path.relative_to(self.root))
            tmp.replace(link)  # atomic swap: a caller never hits a missing prompt
        return rendered

    def _refresh_uploads(self) -> None:
        now = time.monotonic()
        if now - self._uploads_checked < self.UPLOADS_RECHECK:
            return
        self._uploads_checked = now
        try:
            mtime: int | None = os.stat(self.uploads_dir).st_mtime_ns
        except OSError:
            mtime = None
        if mtime == self._uploads_mtime:
            return
        names: frozenset[str] = frozenset()
        if mtime is not None:
            with os.scandir(self.uploads_dir) as entries:
                names = frozenset(e.name[:-4] for e in entries if e.name.endswith(".wav"))
        self._uploads, self._uploads_mtime = names, mtime
        if mtime is not None and time.time_ns() - mtime < 2_000_000_000:
            # Timestamps are coarse: a change in the same tick would look like none.
            # A folder changed this recently is listed again at the next check.
            self._uploads_mtime = None
        self._named.clear()
        self._seconds.clear()  # an upload replaced under the same name has a new length

    def forget_uploads(self) -> None:
        """Look at the uploads folder again on the next lookup (after an upload/removal)."""
        self._uploads_checked = -math.inf
        self._uploads_mtime = None

    def uploaded(self, name: str) -> bool:
        self._refresh_uploads()
        return name in self._uploads

    def path(self, name: str) -> str:
        """The file to play for a named prompt, without extension, as Asterisk wants it."""
        if self.uploaded(name):
            return str(self.uploads_dir / name)
        known = self._named.get(name)
        if known is not None:
            return known
        if name not in self.texts:
            raise KeyError(f"no prompt named {name!r} in settings [prompts]")
        rendered = self.cached(self.texts[name])
        if rendered is None:
            # Rendering here would make the caller wait; start-up renders everything first.
            raise TTSError(f"prompt {name!r} is not rendered: run `hotline prompts render`")
        self._named[name] = known = str(rendered.with_suffix(""))
        return known

    def seconds(self, path_without_extension: str) -> float:
        """Audio length of a file this library handed out (the AGI watchdog's lease)."""
        self._refresh_uploads()
        length = self._seconds.get(path_without_extension)
        if length is None:
            length = wav_seconds(path_without_extension)
            if length:  # a file not there yet is measured again next time
                self._remember(self._seconds, path_without_extension, length)
        return length

    def _remember(self, memo: dict[str, _T], key: str, value: _T) -> None:
        if len(memo) >= self.REMEMBERED:
            memo.clear()
        memo[key] = value
