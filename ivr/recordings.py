"""Call recordings (issue 30): from Asterisk's WAV spool to kept, compressed files.

``[hotline-record]`` in extensions.conf starts MixMonitor on the answering leg, writing
``<spool>/active/<kind>+<linkedid>+<uniqueid>.wav``; when the channel hangs up MixMonitor
moves the complete file to ``<spool>/done/``. Its ``HotlineRecording`` user event gives the
row its channel (so the leg can be found) as soon as the recording starts. The scheduled
``store-recordings`` job compresses every finished file with sox, off the call path, into
``<directory>/YYYY/MM/DD/`` and links the row to the call and the leg. The name alone is
enough to store a file whose event was never heard (the service was down): nothing
recorded is lost. A file sox cannot read is kept as it is under ``spool/failed/``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from panoramisk.message import Message
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .ami import AMIClient
from .db.models import Call, CallLeg, CallRecording, RecordingKind, RecordingStatus
from .services.container import Services
from .settings import Settings

log = logging.getLogger(__name__)

# The spool name [hotline-record] makes: Asterisk's own ids, plain characters only.
SPOOL_NAME = re.compile(r"^(queue|transfer|consultation|callback)\+([-A-Za-z0-9_.]{1,150})"
                        r"\+([-A-Za-z0-9_.]{1,150})\.wav$")
USER_EVENT = "HotlineRecording"
# A finished file whose call row is not written yet waits this long for it, then is
# stored linked by its linkedid only; a row whose file never appeared in the spool this
# long after it started was a conversation with nothing said.
CALL_ROW_GRACE = timedelta(minutes=2)
SOX_TYPE = {"ogg": "vorbis", "mp3": "mp3", "wav": "wav"}
SOX_TIMEOUT = 600


class RecordingError(Exception):
    """sox failed on a file; the message says how."""


@dataclass(frozen=True)
class SpoolName:
    kind: RecordingKind
    linkedid: str
    uniqueid: str

    @classmethod
    def parse(cls, name: str) -> SpoolName | None:
        found = SPOOL_NAME.match(name if name.endswith(".wav") else f"{name}.wav")
        if found is None:
            return None
        return cls(RecordingKind(found.group(1)), found.group(2), found.group(3))


def asterisk_spool(settings: Settings) -> str:
    """The spool as Asterisk writes it: the same path unless ``recording.asterisk_spool``."""
    rec = settings.recording
    return rec.asterisk_spool or str(rec.spool.resolve())


def prepare_spool(settings: Settings) -> None:
    for sub in ("active", "done", "failed"):
        (settings.recording.spool / sub).mkdir(parents=True, exist_ok=True)


def kept_file(settings: Settings, relative: str | None) -> Path | None:
    """The file a row names, if it is inside the recordings' folder and exists."""
    if not relative:
        return None
    base = settings.recording.directory.resolve()
    path = (base / relative).resolve()
    return path if path.is_relative_to(base) and path.is_file() else None


# --- the row, from the AMI event -------------------------------------------------------

class RecordingTracker:
    """``HotlineRecording`` user events → a row per recording, while it is being made."""

    def __init__(self, services: Services, ami: AMIClient) -> None:
        self.services = services
        ami.subscribe("UserEvent", self._on_user_event)

    async def _on_user_event(self, event: Message) -> None:
        if event.get("UserEvent") != USER_EVENT:
            return
        name = SpoolName.parse(str(event.get("Name", "")))
        if name is None or name.uniqueid != str(event.get("Uniqueid", "")):
            log.warning("HotlineRecording with an unexpected name: %r", event.get("Name"))
            return
        await started(self.services.sessions, name, str(event.get("Channel", ""))[:150],
                      _event_time(event))


def _event_time(event: Message) -> datetime:
    try:
        return datetime.fromtimestamp(float(str(event.get("Timestamp", ""))), UTC)
    except ValueError:
        return datetime.now(UTC)


async def started(sessions: async_sessionmaker[AsyncSession], name: SpoolName, channel: str,
                  at: datetime) -> None:
    """The recording's row; an event heard twice changes nothing."""
    async with sessions() as session, session.begin():
        found = await session.scalar(select(CallRecording).where(
            CallRecording.uniqueid == name.uniqueid))
        if found is None:
            session.add(CallRecording(linkedid=name.linkedid, uniqueid=name.uniqueid,
                                      channel=channel, kind=name.kind, started_at=at))
        elif not found.channel:
            found.channel = channel


# --- storing finished files (the scheduled job) ------------------------------------------

async def store_finished(services: Services) -> int:
    """Every complete file in ``spool/done``, compressed and linked; how many were stored."""
    settings = services.settings
    if not settings.recording.spool.is_dir():
        return 0
    prepare_spool(settings)
    stored = 0
    for wav in sorted((settings.recording.spool / "done").glob("*.wav")):
        name = SpoolName.parse(wav.name)
        if name is None:
            log.error("recording spool: %s is not a name [hotline-record] makes; left", wav)
            continue
        if await _store(services, wav, name):
            stored += 1
    await _close_empty(services, datetime.now(UTC))
    return stored


async def _close_empty(services: Services, now: datetime) -> None:
    """Rows still "recording" with no file in the spool: MixMonitor never opened one."""
    spool = services.settings.recording.spool
    async with services.sessions() as session, session.begin():
        for row in await session.scalars(select(CallRecording).where(
                CallRecording.status == RecordingStatus.RECORDING,
                CallRecording.started_at < now - CALL_ROW_GRACE)):
            name = f"{row.kind}+{row.linkedid}+{row.uniqueid}.wav"
            if not any((spool / sub / name).exists() for sub in ("active", "done")):
                row.status = RecordingStatus.EMPTY
                row.stored_at = now


async def _store(services: Services, wav: Path, name: SpoolName) -> bool:
    settings, now = services.settings, datetime.now(UTC)
    async with services.sessions() as session, session.begin():
        row = await _row(session, name, wav, now)
        call = await session.scalar(select(Call).where(Call.linkedid == name.linkedid))
        if call is None and now - row.started_at < CALL_ROW_GRACE and name.kind != "callback":
            return False   # the call's row is still in the recorder's batch: next round
        row.call_id = call.id if call else None
        if call is not None and row.channel:
            row.leg_id = await session.scalar(select(CallLeg.id).where(
                CallLeg.call_id == call.id, CallLeg.channel == row.channel))
        try:
            row.duration_seconds = await sox_duration(wav)
            row.path = await _compress(settings, wav, row)
            row.status = RecordingStatus.STORED
        except RecordingError as exc:
            log.error("recording %s kept uncompressed: %s", wav.name, exc)
            failed = settings.recording.spool / "failed" / wav.name
            os.replace(wav, failed)
            row.path = str(failed.relative_to(settings.recording.directory))
            row.status = RecordingStatus.FAILED
        kept = settings.recording.directory / row.path
        row.size_bytes = kept.stat().st_size
        row.stored_at = now
    await asyncio.to_thread(wav.unlink, True)
    return row.status is RecordingStatus.STORED


async def _row(session: AsyncSession, name: SpoolName, wav: Path,
               now: datetime) -> CallRecording:
    row = await session.scalar(select(CallRecording).where(
        CallRecording.uniqueid == name.uniqueid))
    if row is None:
        # Its event went unheard: the file's closing time stands for its start.
        closed = datetime.fromtimestamp((await asyncio.to_thread(wav.stat)).st_mtime, UTC)
        row = CallRecording(linkedid=name.linkedid, uniqueid=name.uniqueid, channel="",
                            kind=name.kind, status=RecordingStatus.RECORDING,
                            started_at=min(closed, now))
        session.add(row)
        await session.flush()
    return row


async def _compress(settings: Settings, wav: Path, row: CallRecording) -> str:
    """sox into ``YYYY/MM/DD/<call or linkedid>-<uniqueid>.<format>`` (the local day of the
    call); the relative path."""
    rec = settings.recording
    day = row.started_at.astimezone(settings.organisation.tz)
    owner = str(row.call_id) if row.call_id else row.linkedid
    relative = f"{day:%Y/%m/%d}/{owner}-{row.uniqueid}.{rec.format}"
    target = rec.directory / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    await _sox("sox", str(wav), "-t", SOX_TYPE[rec.format], str(partial))
    os.replace(partial, target)
    return relative


async def sox_duration(path: Path) -> float:
    out = await _sox("sox", "--i", "-D", str(path))
    try:
        return round(float(out.strip()), 2)
    except ValueError:
        raise RecordingError(f"sox gave no duration for {path.name}: {out!r}") from None


async def _sox(*args: str) -> str:
    """sox without a shell: every argument is ours (paths we built)."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SOX_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RecordingError(f"sox took over {SOX_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise RecordingError(err.decode(errors="replace").strip()[:500])
    return out.decode(errors="replace")


# --- figures --------------------------------------------------------------------------------

async def disk_bytes(session: AsyncSession) -> int:
    """What the kept recordings take on disk (as stored; the spool is not counted)."""
    kept = (RecordingStatus.STORED, RecordingStatus.FAILED)
    return int(await session.scalar(select(func.coalesce(func.sum(
        CallRecording.size_bytes), 0)).where(CallRecording.status.in_(kept))) or 0)
