"""Call recordings in the panel and their retention (issue 30): the call's own operator and
supervisors listen (HTTP Range), only supervisors download, another operator is refused and
the attempt audited; a file gone from the disk is said so; the retention job removes the
files past recording.keep_years and marks their rows."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect
from sqlalchemy import select

from ivr.db.models import (
    Call,
    CallLeg,
    CallOutcome,
    CallRecording,
    RecordingKind,
    RecordingStatus,
    Staff,
)
from ivr.demo import DEMO_PASSWORD
from ivr.recordings import prepare_spool, store_finished
from ivr.services.container import Services
from ivr.services.retention import apply_retention
from ivr.settings import Settings
from web.app import init_app

from .support.browser import csp_violations
from .support.panel_client import audit_rows, log_in
from .support.records import services_on
from .support.smtp import free_port
from .test_metrics import scrape

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _tone_file(path: Path, seconds: float = 3, kind: str = "vorbis") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", kind, str(path),
                    "synth", str(seconds), "sine", "440"], check=True)


async def recorded_call(svc: Services, login: str, started: datetime = NOW) -> CallRecording:
    """A call answered by ``login`` with its stored recording (a 3 s tone on disk)."""
    linkedid = f"rec-{uuid.uuid4().hex[:12]}"
    relative = f"{started:%Y/%m/%d}/{linkedid}.ogg"
    _tone_file(svc.settings.recording.directory / relative)
    async with svc.sessions() as s, s.begin():
        staff_id = await s.scalar(select(Staff.id).where(Staff.login == login))
        call = Call(linkedid=linkedid, caller_number="79001234567", started_at=started,
                    answered_at=started, ended_at=started + timedelta(seconds=3),
                    operator_id=staff_id, outcome=CallOutcome.ANSWERED)
        s.add(call)
        await s.flush()
        leg = CallLeg(call_id=call.id, operator_id=staff_id, channel=f"PJSIP/x-{linkedid}",
                      answered_at=started)
        s.add(leg)
        await s.flush()
        row = CallRecording(linkedid=linkedid, call_id=call.id, leg_id=leg.id,
                            uniqueid=f"{linkedid}.1", channel=leg.channel,
                            kind=RecordingKind.QUEUE, status=RecordingStatus.STORED,
                            started_at=started, stored_at=started, path=relative,
                            duration_seconds=3.0, size_bytes=1)
        s.add(row)
    return row


@SQLITE
async def test_own_operator_listens_by_range_and_another_is_refused_and_audited(
        svc: Services, client: TestClient) -> None:
    row = await recorded_call(svc, "petrov")
    audio, download = f"/panel/recordings/{row.id}/audio", f"/panel/recordings/{row.id}/download"

    await log_in(client, "ivanova")
    refused = await client.get(audio)
    assert refused.status == 403 and "разговаривали с гражданином" in await refused.text()
    assert (await client.get(f"/panel/recordings?call={row.linkedid}")).status == 403
    page = await (await client.get("/panel/recordings")).text()
    assert audio not in page     # her list holds only the calls she spoke on

    await log_in(client, "petrov")
    page = await (await client.get(f"/panel/recordings?call={row.linkedid}")).text()
    assert f'<audio controls preload="none" src="{audio}">' in page and download not in page
    part = await client.get(audio, headers={"Range": "bytes=10-59"})
    assert part.status == 206 and len(await part.read()) == 50
    assert part.headers["Content-Range"].startswith("bytes 10-59/")
    assert part.headers["Content-Type"] == "audio/ogg"
    assert (await client.get(download)).status == 403   # download: supervisors only

    await log_in(client, "smirnova")
    whole = await client.get(download)
    assert whole.status == 200
    assert whole.headers["Content-Disposition"] == f'attachment; filename="zapis-{row.id}.ogg"'

    entries = [(a, o, d) for a, o, d in await audit_rows(svc) if o == "recording"]
    assert [a for a, _, _ in entries] == [
        "listen_refused", "refused", "listen", "download_refused", "download"]
    assert "recording_not_your_call" in entries[0][2] and "bytes=10-59" in entries[2][2]


@SQLITE
async def test_a_department_head_hears_only_the_calls_they_spoke_on(
        svc: Services, client: TestClient) -> None:
    """Recordings are for the overseers (supervisor, administrator), as live listening:
    a department head is refused another's call, its download and its place in the list."""
    row = await recorded_call(svc, "petrov")
    audio = f"/panel/recordings/{row.id}/audio"
    await log_in(client, "kuznetsov")
    assert (await client.get(audio)).status == 403
    assert (await client.get(f"/panel/recordings/{row.id}/download")).status == 403
    assert (await client.get(f"/panel/recordings?call={row.linkedid}")).status == 403
    assert audio not in await (await client.get("/panel/recordings")).text()
    huge = await client.get("/panel/recordings/99999999999999999999/audio")
    assert huge.status == 404, "an id past the database's integer is no route at all"
    await log_in(client, "orlov")
    assert (await client.get(f"/panel/recordings/{row.id}/download")).status == 200


@SQLITE
async def test_a_recording_missing_on_disk_is_said_so(svc: Services,
                                                      client: TestClient) -> None:
    row = await recorded_call(svc, "petrov")
    (svc.settings.recording.directory / str(row.path)).unlink()
    await log_in(client, "smirnova")
    page = await (await client.get(f"/panel/recordings?call={row.linkedid}")).text()
    assert "Файл записи не найден на диске." in page and "<audio" not in page
    gone = await client.get(f"/panel/recordings/{row.id}/audio")
    assert gone.status == 404 and "Файл записи не найден на диске" in await gone.text()


async def test_retention_removes_a_recording_past_its_period_and_keeps_a_younger_one(
        svc: Services) -> None:
    keep = svc.settings.recording.keep_years
    old = await recorded_call(svc, "petrov", NOW - timedelta(days=365 * keep + 2))
    young = await recorded_call(svc, "petrov", NOW - timedelta(days=365 * keep - 2))
    base = svc.settings.recording.directory

    report = await apply_retention(svc.sessions, svc.settings, NOW.date(), NOW)

    assert report.recordings == 1 and report.changed
    assert not (base / str(old.path)).exists() and (base / str(young.path)).is_file()
    async with svc.sessions() as s:
        rows = {r.id: r for r in await s.scalars(select(CallRecording).where(
            CallRecording.id.in_([old.id, young.id])))}
    assert (rows[old.id].status, rows[old.id].removed_at) == (RecordingStatus.REMOVED, NOW)
    assert (rows[young.id].status, rows[young.id].removed_at) == (RecordingStatus.STORED, None)
    again = await apply_retention(svc.sessions, svc.settings, NOW.date(), NOW)
    assert again.recordings == 0


@pytest_asyncio.fixture
async def served(svc: Services) -> AsyncIterator[str]:
    """The panel on a real port, for the browser."""
    runner = web.AppRunner(init_app(svc))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


# Muted: the browser's autoplay rule lets a page start muted media without a click.
PLAY_AND_SEEK = """async () => {
  const a = document.querySelector("audio");
  a.muted = true;
  await a.play();
  while (a.currentTime === 0) { await new Promise(r => setTimeout(r, 20)); }
  const seeked = new Promise(r => a.addEventListener("seeked", r, {once: true}));
  a.currentTime = 2;
  await seeked;
  return [a.duration, a.currentTime];
}"""


@SQLITE
async def test_the_supervisor_plays_and_seeks_a_recording_in_chromium(
        svc: Services, served: str, browser: Browser) -> None:
    row = await recorded_call(svc, "petrov")
    page = await browser.new_page()
    problems = csp_violations(page)
    await page.goto(f"{served}/login?next=/panel/recordings")
    await page.fill("input[name=login]", "smirnova")
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Записи разговоров")
    await page.goto(f"{served}/panel/recordings?call={row.linkedid}")
    duration, position = await page.evaluate(PLAY_AND_SEEK)
    assert abs(duration - 3) < 0.2 and 1.9 <= position <= 2.5
    listens = [d for a, o, d in await audit_rows(svc) if (a, o) == ("listen", "recording")]
    assert listens and all("bytes=" in d for d in listens)   # the player asks by Range
    assert problems == []


@SQLITE
async def test_disk_usage_of_recordings_on_the_supervisors_page_and_metrics(
        svc: Services, client: TestClient) -> None:
    row = await recorded_call(svc, "petrov")
    async with svc.sessions() as s, s.begin():
        stored = await s.get(CallRecording, row.id)
        assert stored is not None
        stored.size_bytes = 3 * 2**20
    assert (await scrape(client))[("hotline_recordings_bytes", ())] == 3 * 2**20
    await log_in(client, "smirnova")
    page = await (await client.get("/panel/supervisor")).text()
    assert '<dd id="kpi-recordings">3.0 МБ</dd>' in page
    assert f'href="/panel/recordings?call={row.linkedid}"' not in page   # rated calls only


async def test_the_store_job_keeps_a_file_whose_event_was_missed_and_closes_empty_ones(
        settings: Settings, sqlite_url: str, tmp_path: Path) -> None:
    """Nothing recorded is lost: a finished spool file is stored from its name alone; a row
    whose file never appeared (nothing was said) is closed as empty, not left "recording"."""
    svc = services_on(settings, sqlite_url, NOW, recording={"directory": tmp_path})
    try:
        prepare_spool(svc.settings)
        now = datetime.now(UTC)
        wav = svc.settings.recording.spool / "done" / "transfer+lost-1+lost-1.7.wav"
        _tone_file(wav, 2, "wav")
        # Closed 5 minutes ago: no call row will come for it any more.
        closed = (now - timedelta(minutes=5)).timestamp()
        os.utime(wav, (closed, closed))
        async with svc.sessions() as s, s.begin():
            s.add(CallRecording(linkedid="quiet-1", uniqueid="quiet-1.2", channel="x",
                                kind=RecordingKind.QUEUE, started_at=now - timedelta(minutes=5)))
        assert await store_finished(svc) == 1
        async with svc.sessions() as s:
            rows = {r.uniqueid: r for r in await s.scalars(select(CallRecording))}
    finally:
        await svc.close()
    lost, quiet = rows["lost-1.7"], rows["quiet-1.2"]
    assert (lost.status, lost.kind, lost.linkedid, lost.call_id) == (
        RecordingStatus.STORED, RecordingKind.TRANSFER, "lost-1", None)
    assert lost.duration_seconds == 2.0 and (tmp_path / str(lost.path)).is_file()
    assert not wav.exists()
    assert quiet.status is RecordingStatus.EMPTY
