"""Prompt rendering: text → 8 kHz mono 16-bit WAV that Asterisk plays without transcoding.

espeak-ng with a Russian voice renders everything on this machine. A remote engine (gTTS,
Google's service) is used only when ``tts.engine`` asks for it, and then only for texts
without personal data: the fixed prompts, the knowledge base's scripts and sentences made
of the organisation's own data. Every other text is *personal* (the default of every
method here): anything built from a citizen's data (numbers, names, appeal numbers, dates
of a booking, notes) is rendered locally, whatever the settings say.

Files are kept in ``recordings/prompts`` by engine and text hash, so a call never waits for
synthesis twice; an uploaded studio recording (``recordings/uploads/<name>.wav``)
overrides the synthesised one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from .settings import Tts

log = logging.getLogger(__name__)

LOCAL = "espeak"
REMOTE = "gtts"


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
        # "--": a script text starting with "-" ("-f/etc/…") is spoken, never an option.
        subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(raw), "--", text],
                       check=True, capture_output=True, timeout=60)
        _sox_to_asterisk(raw, dst)


def render_gtts(text: str, dst: Path) -> None:
    """The remote engine: the text leaves this machine for Google's service."""
    from gtts import gTTS  # imported lazily: only the remote engine needs it

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

    A rendered file is named by its engine and text hash and never changes once written,
    so finding a text again is one file existence check.
    """

    def __init__(self, tts: Tts, texts: Mapping[str, str]) -> None:
        self.tts = tts
        self.texts = dict(texts)
        self.root = Path(tts.recordings_dir)
        self.cache_dir = self.root / "prompts"
        self.uploads_dir = self.root / "uploads"
        # "auto" stops asking the remote engine once it failed (offline) for this process.
        self._remote_off = tts.engine == LOCAL
        self._inflight: dict[tuple[str, bool], asyncio.Future[Path]] = {}

    def _cache_path(self, engine: str, text: str) -> Path:
        digest = hashlib.sha256(f"{engine}\0{self.tts.espeak_voice}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{engine}-{digest[:20]}.wav"

    def _engines(self, personal: bool) -> tuple[str, ...]:
        """The engines whose files may be played for a text, preferred first."""
        if personal or self.tts.engine == LOCAL:
            return (LOCAL,)
        return (REMOTE, LOCAL)

    def cached(self, text: str, *, personal: bool = True) -> Path | None:
        """The rendered file for ``text`` if there is one."""
        for engine in self._engines(personal):
            path = self._cache_path(engine, text)
            if path.exists():
                return path
        return None

    def render_text(self, text: str, *, personal: bool = True) -> Path:
        """Render one text (or find it rendered) and return the WAV path. Only a text the
        caller marks ``personal=False`` may go to the remote engine."""
        found = self.cached(text, personal=personal)
        if found:
            return found
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if REMOTE in self._engines(personal) and not self._remote_off:
            dst = self._cache_path(REMOTE, text)
            try:
                render_gtts(text, dst)
                return dst
            except TTSError as exc:
                if self.tts.engine == REMOTE:
                    raise
                log.warning("gTTS unavailable, using espeak-ng: %s", exc)
                self._remote_off = True
        dst = self._cache_path(LOCAL, text)
        render_espeak(text, dst, self.tts.espeak_voice)
        return dst

    def is_template(self, name: str) -> bool:
        return "{" in self.texts.get(name, "")

    def fill(self, name: str, **values: str) -> str:
        """A template prompt with its {fields} filled in (dates, numbers already in words)."""
        return self.texts[name].format(**values)

    async def prepare(self, text: str, *, personal: bool = True) -> str:
        """Render a dynamic text off the event loop; the path to play, without extension.
        ``personal=False`` only for a text with no citizen's data in it."""
        path = self.cached(text, personal=personal)
        if path is None:
            key = (text, personal)
            pending = self._inflight.get(key)
            if pending is None:
                # One render per text however many calls ask for it at once.
                pending = asyncio.ensure_future(
                    asyncio.to_thread(self.render_text, text, personal=personal))
                self._inflight[key] = pending
                pending.add_done_callback(lambda _: self._inflight.pop(key, None))
            path = await asyncio.shield(pending)
        return str(path.with_suffix(""))

    def render_all(self, extra: Iterable[str] = ()) -> dict[str, Path]:
        """Render every fixed prompt and point ``current/<name>.wav`` at it, so the
        dialplan can play a prompt by name (``${PROMPTS}/technical_fallback``); and the
        ``extra`` texts (filled templates known in advance and free of personal data, e.g.
        the queue announcements). Other templates are rendered during calls."""
        for text in extra:
            self.render_text(text, personal=False)
        rendered = {name: self.render_text(text, personal=False)
                    for name, text in self.texts.items() if not self.is_template(name)}
        current = self.root / "current"
        current.mkdir(parents=True, exist_ok=True)
        for name, path in rendered.items():
            link = current / f"{name}.wav"
            tmp = current / f".{name}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(Path("..") / path.relative_to(self.root))
            tmp.replace(link)  # atomic swap: a caller never hits a missing prompt
        return rendered

    def uploaded(self, name: str) -> bool:
        return (self.uploads_dir / f"{name}.wav").is_file()

    def path(self, name: str) -> str:
        """The file to play for a named prompt, without extension, as Asterisk wants it."""
        if name not in self.texts:
            raise KeyError(f"no prompt named {name!r} in settings [prompts]")
        if self.uploaded(name):
            return str(self.uploads_dir / name)
        rendered = self.cached(self.texts[name], personal=False)
        if rendered is None:
            # Rendering here would make the caller wait; start-up renders everything first.
            raise TTSError(f"prompt {name!r} is not rendered: run `hotline prompts render`")
        return str(rendered.with_suffix(""))

    def seconds(self, path_without_extension: str) -> float:
        """Audio length of a file this library handed out (the AGI watchdog's lease)."""
        return wav_seconds(path_without_extension)
