"""Call recordings in the panel (issue 30): a call's recordings with a seekable player,
streamed with HTTP Range by aiohttp's ``FileResponse``; download for the overseers.

The overseers (supervisor, administrator) hear every call; any other employee, a
department head too, the calls they spoke on (web.scopes). Every
listen, download and list view is audit-logged, and so is every refusal (the policy).
A file the row names but the disk no longer has is said so, not hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiohttp import web
from sqlalchemy import Select, and_, exists, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.db.models import (
    Call,
    CallbackAttempt,
    CallLeg,
    CallRecording,
    RecordingKind,
    RecordingStatus,
    Staff,
    Transfer,
    TransferOutcome,
)
from ivr.recordings import kept_file

from . import auth, scopes
from .errors import Invalid, NotFound
from .policy import OVERSEERS, STAFF, Actor, actor, panel
from .records import _render, _svc

KIND_NAMES = {RecordingKind.QUEUE: "ответ из очереди", RecordingKind.TRANSFER: "после перевода",
              RecordingKind.CONSULTATION: "консультация с коллегой",
              RecordingKind.CALLBACK: "обратный звонок"}
# Not every host's mimetypes knows .ogg: the player needs the real type to play it.
MEDIA_TYPES = {".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".wav": "audio/wav"}
LINKEDID = re.compile(r"^[-A-Za-z0-9_.]{1,150}$")
PAGE = 50


@dataclass(frozen=True)
class Entry:
    """One recording as the list shows it; ``state``: playable, missing, removed, pending,
    empty."""

    id: int
    linkedid: str
    started_at: datetime
    kind: str
    operator: str
    duration: str
    state: str
    removed_at: datetime | None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _state(request: web.Request, row: CallRecording) -> str:
    if row.status is RecordingStatus.REMOVED:
        return "removed"
    if row.status is RecordingStatus.RECORDING:
        return "pending"
    if row.status is RecordingStatus.EMPTY:
        return "empty"
    return "playable" if kept_file(_svc(request).settings, row.path) else "missing"


def _heard_by(staff_id: int) -> Select[tuple[str]]:
    """The linkedids of the calls an employee spoke on or made as a callback."""
    spoke = select(Call.linkedid).where(or_(
        Call.operator_id == staff_id,
        exists().where(CallLeg.call_id == Call.id, CallLeg.operator_id == staff_id),
        exists().where(Transfer.call_id == Call.id, Transfer.to_staff_id == staff_id,
                       Transfer.outcome == TransferOutcome.COMPLETED)))
    called = select(CallbackAttempt.linkedid).where(CallbackAttempt.staff_id == staff_id,
                                                    CallbackAttempt.linkedid.is_not(None))
    return select(union(spoke, called).subquery().c[0])


async def _entries(request: web.Request, session: AsyncSession, me: Actor,
                   linkedid: str) -> list[Entry]:
    query = (select(CallRecording, Staff.surname, Staff.first_name)
             .outerjoin(CallLeg, CallLeg.id == CallRecording.leg_id)
             .outerjoin(Staff, and_(Staff.id == CallLeg.operator_id))
             .order_by(CallRecording.started_at.desc(), CallRecording.id.desc()).limit(PAGE))
    if linkedid:
        query = query.where(CallRecording.linkedid == linkedid)
    elif not me.overseer:
        query = query.where(CallRecording.linkedid.in_(_heard_by(me.staff_id)))
    rows = (await session.execute(query)).tuples().all()
    return [Entry(r.id, r.linkedid, r.started_at, KIND_NAMES[r.kind],
                  f"{surname} {first}" if surname else "", _duration(r.duration_seconds),
                  _state(request, r), r.removed_at) for r, surname, first in rows]


@panel(*STAFF, check=scopes.call_recordings_reader, audit="recording")
async def recordings_page(request: web.Request) -> web.Response:
    """A call's recordings (``?call=<linkedid>``), or the latest the employee may hear."""
    me, svc = actor(request), _svc(request)
    linkedid = request.query.get("call", "")
    if linkedid and not LINKEDID.match(linkedid):
        raise Invalid("Неверный номер звонка.", "bad_linkedid")
    async with svc.sessions() as session:
        entries = await _entries(request, session, me, linkedid)
    await auth.audit(svc, me.staff_id, "view", "recording_list", linkedid, "",
                     request.remote or "")
    return _render(request, "recordings.html", {
        "entries": entries, "call": linkedid, "may_download": me.overseer})


async def _kept(request: web.Request) -> tuple[CallRecording, Path]:
    svc = _svc(request)
    async with svc.sessions() as session:
        row = await session.get(CallRecording, int(request.match_info["id"]))
    if row is None:
        raise NotFound("Запись разговора не найдена.", "recording_not_found")
    if row.status is RecordingStatus.REMOVED:
        raise NotFound("Запись удалена: истёк срок её хранения.", "recording_removed")
    if row.status is RecordingStatus.EMPTY:
        raise NotFound("Запись пуста: собеседник положил трубку сразу.", "recording_empty")
    path = kept_file(svc.settings, row.path)
    if path is None:
        raise NotFound("Файл записи не найден на диске. Сообщите администратору.",
                       "recording_file_missing")
    return row, path


def _media_type(path: Path) -> dict[str, str]:
    return {"Content-Type": MEDIA_TYPES.get(path.suffix, "application/octet-stream")}


@panel(*STAFF, check=scopes.recording_listener, audit="recording", refused="listen_refused")
async def audio(request: web.Request) -> web.FileResponse:
    """The file itself; Range requests (the player's seeking) answered by aiohttp."""
    row, path = await _kept(request)
    await auth.audit(_svc(request), actor(request).staff_id, "listen", "recording", row.id,
                     f"{row.linkedid}; {request.headers.get('Range', 'весь файл')}"[:200],
                     request.remote or "")
    return web.FileResponse(path, headers=_media_type(path))


@panel(*OVERSEERS, check=scopes.recording_listener, audit="recording",
       refused="download_refused")
async def download(request: web.Request) -> web.FileResponse:
    row, path = await _kept(request)
    await auth.audit(_svc(request), actor(request).staff_id, "download", "recording", row.id,
                     row.linkedid, request.remote or "")
    name = f"zapis-{row.id}{path.suffix}"
    return web.FileResponse(path, headers={
        **_media_type(path), "Content-Disposition": f'attachment; filename="{name}"'})


def setup(app: web.Application) -> None:
    app.router.add_get("/panel/recordings", recordings_page)
    app.router.add_get(r"/panel/recordings/{id:\d{1,9}}/audio", audio)
    app.router.add_get(r"/panel/recordings/{id:\d{1,9}}/download", download)
