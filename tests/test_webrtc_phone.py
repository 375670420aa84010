"""The phone in the page (issue 29, WebRTC): Debian's Chromium with fake media devices
registers Петров's extension 1002 over SIP-over-WebSocket with the real Asterisk, rings
when a citizen's call is offered, answers, and audio flows both ways; hanging up in the
page sends the citizen on to the rating (R-H8); a transfer keyed on the page's keypad
passes the gate (R-H4). Bad input: the microphone refused, a second tab of the operator,
another employee's credentials.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from panoramisk.message import Message
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.asterisk_dev import DevAsterisk, render_config
from ivr.db.models import Call, OperatorPhone, Transfer, TransferOutcome
from ivr.demo import DEMO_PASSWORD
from ivr.runner import make_ami
from ivr.services.container import Services
from ivr.services.phones import passwords_for_render
from ivr.settings import Settings, SettingsError, load_settings
from ivr.simulate import (
    EventRecorder,
    SimulatedCall,
    caller_channel,
    is_event,
    place_call,
    wait_until,
)
from ivr.tracking import CallTracker
from web.app import init_app

from .conftest import OPEN_TIME, Stack, hotline_environ
from .support.browser import csp_violations
from .support.panel_client import audit_rows, log_in
from .support.records import services_on
from .support.smtp import free_port
from .test_transfers import _talking

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
CITIZEN = "79001234567"
SILENCE = 0.005  # RMS amplitude below which a recording counts as silence
HOTLINE = "88001234567"
MEDIA = ["--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
         "--autoplay-policy=no-user-gesture-required", "--no-sandbox"]
# Every RTCPeerConnection and WebSocket the page makes: the test reads the statistics of
# the one and cuts the other.
KEEP_PEERS = """
for (const [name, kept] of [["RTCPeerConnection", "__peers"], ["WebSocket", "__sockets"]]) {
  const Native = window[name];
  window[kept] = [];
  const Kept = function (...args) {
    const made = new Native(...args); window[kept].push(made); return made;
  };
  Kept.prototype = Native.prototype;
  Object.assign(Kept, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window[name] = Kept;
}
"""
CUT = "() => { for (const s of window.__sockets) s.close(); }"
INBOUND = """async () => {
  let packets = 0, energy = 0;
  for (const pc of window.__peers) {
    for (const s of (await pc.getStats()).values()) {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        packets += s.packetsReceived || 0; energy += s.totalAudioEnergy || 0;
      }
    }
  }
  return [packets, energy];
}"""


@pytest_asyncio.fixture
async def panel(seeded: Stack, settings: Settings,
                asterisk: DevAsterisk) -> AsyncIterator[tuple[str, Services]]:
    """The panel as ``hotline serve`` runs it, with the real phones as queue members
    (``PJSIP/<extension>``; the gate still rings colleagues as simulated operators) and no
    automatic wrap-up, so the operator takes the next call at once."""
    services = services_on(seeded.settings, seeded.settings.database.url, OPEN_TIME,
                           asterisk={"operator_dial": "PJSIP/{extension}"},
                           panel={"wrapup_seconds": 0})
    # The phones' passwords as the running Asterisk has them (rendered from the run's
    # database), in this test's database, where the panel hands them out.
    rendered = await asyncio.to_thread(passwords_for_render, settings)
    async with services.sessions() as s, s.begin():
        s.add_all(OperatorPhone(extension=e, sip_password=p) for e, p in rendered.items())
    listener, panel_ami = make_ami(services.settings), make_ami(services.settings)
    CallTracker(seeded.services, listener)
    runner = web.AppRunner(init_app(services, panel_ami))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await listener.start()
    await panel_ami.start()
    await listener.wait_connected(10)
    await panel_ami.wait_connected(10)
    yield f"http://127.0.0.1:{port}", services
    await runner.cleanup()
    await panel_ami.close()
    await listener.close()
    await services.close()


@pytest_asyncio.fixture
async def chromium() -> AsyncIterator[Any]:
    """Chromium with a fake microphone (a beep a second); whether the page may use it is
    each context's permission."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=MEDIA)
        yield browser
        await browser.close()


async def _context(browser: Browser, microphone: bool = True) -> BrowserContext:
    context = await browser.new_context(
        viewport={"width": 1366, "height": 768},
        permissions=["microphone", "notifications"] if microphone else [])
    await context.add_init_script(KEEP_PEERS)
    return context


async def _logged_in(context: BrowserContext, base: str, login: str = "petrov") -> Page:
    page = await context.new_page()
    await page.goto(f"{base}/login?next=/panel/workspace")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/panel/workspace$"))
    return page


def _contact(asterisk: DevAsterisk, aor: str) -> str:
    """The URI of the contact registered on ``aor`` (Asterisk's CLI), '' when none."""
    out = asterisk.rx("pjsip show contacts")
    found = re.search(rf"Contact:\s+{aor}/(\S+)", out)
    return found.group(1) if found else ""


def _rtp(asterisk: DevAsterisk, least: int, extension: str = "1002") -> bool:
    """Asterisk received and sent at least ``least`` RTP packets on the phone's channel
    (``pjsip show channelstats``: receive count, then transmit count)."""
    out = asterisk.rx("pjsip show channelstats")
    found = re.search(rf" {extension}-\S+\s+\S+\s+\S+\s+(\d+)\s+\d+\s+\d+\s+\S+\s+(\d+)",
                      out)
    if found is None:
        return False
    return min(int(found.group(1)), int(found.group(2))) >= least


def _sound(path: Path) -> float:
    """The RMS amplitude of a raw 8 kHz signed-linear recording by sox, when above
    silence (0 otherwise, or while too little is recorded yet)."""
    if not path.exists() or path.stat().st_size < 1600:
        return 0.0
    out = subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16",
                          "-c", "1", str(path), "-n", "stat"],
                         capture_output=True, text=True).stderr
    found = re.search(r"RMS\s+amplitude:\s+([0-9.]+)", out)
    level = float(found.group(1)) if found else 0.0
    return level if level > SILENCE else 0.0


async def _operator_channel(ami: AMIClient) -> str:
    reply = await ami.action({"Action": "CoreShowChannels"})
    return next((str(m["Channel"]) for m in reply if m.get("Event") == "CoreShowChannel"
                 and str(m.get("Channel", "")).startswith("PJSIP/1002-")), "")


async def _ringing(ami: AMIClient, page: Page) -> SimulatedCall:
    call = await place_call(ami, caller=CITIZEN, number=HOTLINE, dtmf="2", hold=60)
    await expect(page.locator("#phone-state")).to_contain_text("Входящий звонок",
                                                               timeout=30000)
    await expect(page.locator("#phone-answer")).to_be_enabled()
    return call


@SQLITE
async def test_the_page_phone_registers_rings_talks_both_ways_hangs_up_and_transfers(
    seeded: Stack, ami: AMIClient, events: EventRecorder, panel: tuple[str, Services],
    chromium: Browser, asterisk: DevAsterisk,
) -> None:
    base, services = panel
    page = await _logged_in(await _context(chromium), base)
    problems = csp_violations(page)
    await page.click("button[value=ready]")       # PJSIP/1002 in the topic queues
    await expect(page.locator("#phone-state")).to_contain_text("Телефон готов", timeout=15000)
    # The extension's contact at Asterisk is the browser's (JsSIP: a WebSocket contact).
    contact = await wait_until(lambda: asyncio.to_thread(_contact, asterisk, "1002"), 10,
                               "1002 registered")
    assert "transport=ws" in contact
    try:
        call = await _ringing(ami, page)
        await page.click("#phone-answer")
        await expect(page.locator("#phone-state")).to_contain_text("Разговор", timeout=10000)
        operator = await wait_until(lambda: _operator_channel(ami), 10, "operator's channel")

        # Browser → citizen: Asterisk receives the page's RTP, and what the citizen's leg
        # hears (the fake microphone's beeps) is not silence.
        heard = Path(seeded.settings.tts.recordings_dir) / f"webrtc-{uuid.uuid4().hex}.sln"
        asterisk.rx("module load app_mixmonitor.so")   # the test's ear only
        await asyncio.to_thread(asterisk.rx, f"mixmonitor start {caller_channel(events, call)} "
                                f"{heard}")
        await wait_until(lambda: asyncio.to_thread(_rtp, asterisk, 25), 10,
                         "RTP both ways on the browser's leg")
        await wait_until(lambda: asyncio.to_thread(_sound, heard), 10,
                         "the citizen hears the browser")
        # Asterisk → browser: the page's phone receives Asterisk's RTP.
        await wait_until(lambda: _received(page, 25), 10, "RTP in the browser")
        heard.unlink(missing_ok=True)

        # The WebSocket to Asterisk is lost mid-call: the page says so, the call goes on,
        # the phone connects and registers again.
        await page.evaluate(CUT)
        alert = page.locator("#phone-alert")
        await expect(alert).to_contain_text("Связь с телефонной станцией потеряна")
        await expect(alert).to_be_hidden(timeout=10000)
        assert await _operator_channel(ami) == operator
        # Hold and resume from the page reach Asterisk.
        for button, event in (("Удержание", "Hold"), ("Снять с удержания", "Unhold")):
            await page.click(f"#phone-hold:text('{button}')")
            await events.wait_for(_on(event, operator), 5, event)

        # The operator hangs up in the page: the citizen goes on to the rating (R-H8).
        await page.click("#phone-hangup")
        await expect(page.locator("#phone-state")).to_have_text("Разговор завершён.")
        rating = services.prompts.path("rating_answer")
        await events.wait_for(lambda e: call.ours(e) and is_event("AGIExecStart")(e)
                              and rating in str(e.get("Command", "")), 20, "rating")
        await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)},
                         check=False)

        # Another call, answered by the page itself (auto-answer after 3 s, this operator's
        # choice in this browser); the transfer keyed on the keypad (#1 1003) passes the gate.
        await page.click(".phone-more summary")
        await page.select_option("#phone-auto", "3")
        call = await _ringing(ami, page)
        await expect(page.locator("#phone-state")).to_contain_text("Разговор", timeout=10000)
        before = (await page.evaluate(INBOUND))[1]
        for key in "#1":
            await page.click(f"#phone-keypad button[data-key='{key}']")
        # Asterisk → browser: the transfer prompt reaches the page's speaker.
        await wait_until(lambda: _louder(page, before), 10, "audio from Asterisk")
        for key in "1003":
            await page.click(f"#phone-keypad button[data-key='{key}']")
        await _talking(events, call, "1003", set(), timeout=30)
        await expect(page.locator("#phone-state")).to_have_text("Разговор завершён.")
        async with seeded.services.sessions() as s:
            done = list(await s.scalars(select(Transfer.outcome).join(Call).where(
                Call.linkedid == call.linkedid)))
        assert done == [TransferOutcome.COMPLETED]
    finally:
        await page.click("button[value=offline]")
        await ami.action({"Action": "Hangup", "Channel": "/^Local/"}, check=False)
    assert problems == []


def _on(name: str, channel: str) -> Callable[[Message], bool]:
    return lambda e: is_event(name)(e) and e.get("Channel") == channel


async def _louder(page: Page, before: float) -> bool:
    return bool((await page.evaluate(INBOUND))[1] > before)


async def _received(page: Page, least: int) -> bool:
    return bool((await page.evaluate(INBOUND))[0] >= least)


@SQLITE
async def test_microphone_refused_second_tab_and_lost_websocket_are_explained(
    panel: tuple[str, Services], chromium: Browser, asterisk: DevAsterisk,
) -> None:
    base, _services = panel
    context = await _context(chromium)
    first = await _logged_in(context, base)
    state = first.locator("#phone-state")
    await expect(state).to_contain_text("Телефон готов", timeout=15000)
    # A second tab of the same operator: one phone registers, the other says so.
    second = await context.new_page()
    await second.goto(f"{base}/panel/workspace")
    await expect(second.locator("#phone-state")).to_contain_text("в другой вкладке")
    # The connection drops while idle: the page says so and registers again.
    await first.evaluate(CUT)
    await expect(first.locator("#phone-alert")).to_contain_text("Нет связи с телефонной")
    await expect(first.locator("#phone-alert")).to_be_hidden(timeout=10000)
    await expect(state).to_contain_text("Телефон готов")
    # The phone's tab closed: the other takes the phone over.
    await first.close()
    await expect(second.locator("#phone-state")).to_contain_text("Телефон готов",
                                                                 timeout=15000)
    # The microphone refused (no permission): a Russian explanation, no registration.
    refused = await _logged_in(await _context(chromium, microphone=False), base)
    await expect(refused.locator("#phone-alert")).to_contain_text(
        "Браузер не дал доступ к микрофону")
    await expect(refused.locator("#phone-state")).to_have_text(
        "Телефон не включён: нет микрофона.")
    await context.close()


@SQLITE
async def test_credentials_go_to_the_phone_owner_only_never_into_the_page(
    svc: Services, client: TestClient
) -> None:
    """The page's SIP password: to the employee whose extension it is, no-store, audited;
    nobody else's, never in the page source. The CSP lets the page reach the WebSocket."""
    async with svc.sessions() as s, s.begin():
        s.add_all(OperatorPhone(extension=e, sip_password=f"Secret{e}abcdefghijklmn")
                  for e in ("1001", "1002", "1003"))
    await log_in(client, "petrov")
    page = await client.get("/panel/workspace")
    assert page.status == 200
    text = await page.text()
    assert 'id="phone"' in text and "Secret1002" not in text
    ws = f"ws://{svc.settings.asterisk.http_bind}/ws"
    assert f"connect-src 'self' ws://{svc.settings.asterisk.http_bind};" in \
        page.headers["Content-Security-Policy"]
    own = await client.get("/panel/phone/credentials")
    assert own.status == 200 and own.headers["Cache-Control"] == "no-store"
    body = await own.json()
    assert (body["extension"], body["password"], body["ws_url"]) == (
        "1002", "Secret1002abcdefghijklmn", ws)
    assert body["uri"] == "sip:1002@127.0.0.1"
    # Asking for a colleague's phone changes nothing: the session decides whose it is.
    forged = await (await client.get("/panel/phone/credentials?extension=1001")).json()
    assert forged["extension"] == "1002" and "Secret1001" not in str(forged)
    assert ("view", "operator_phone", "пароль SIP выдан телефону в браузере") in \
        await audit_rows(svc)
    # No extension of one's own: no phone, said in Russian; no password of anybody's.
    await log_in(client, "kuznetsov")
    none = await (await client.get("/panel/phone/credentials")).json()
    assert none["available"] is False and none["id"] == "phone_not_webrtc"
    assert "не настроен" in none["reason"] and "password" not in none
    client.session.cookie_jar.clear()
    anonymous = await client.get("/panel/phone/credentials", allow_redirects=False)
    assert anonymous.status == 303 and "Secret" not in await anonymous.text()


STATIC = {"/static/js/phone.js": 200, "/static/vendor/jssip/jssip.min.js": 200,
          "/static/css/phone.css": 200, "/static/vendor/jssip/LICENSE": 404,
          "/static/js/../headers.py": 404, "/static/js/%2e%2e/app.js": 404,
          "/static/.hidden.js": 404, "/static/a/b/c/d.js": 404}


@SQLITE
async def test_static_serves_the_phone_files_and_nothing_else(client: TestClient) -> None:
    answers = {path: (await client.get(path)).status for path in STATIC}
    assert answers == STATIC


def test_endpoints_of_browser_phones_are_webrtc_the_others_plain(
    settings: Settings, tmp_path: Path
) -> None:
    """R-H4's gate is the same for both; only the media differ (docs/webrtc.md)."""
    own = settings.model_copy(update={"asterisk": settings.asterisk.model_copy(
        update={"webrtc_extensions": ["1002"]})})
    phones = {e: "A" * 24 for e in own.asterisk.operator_extensions}
    render_config(own, tmp_path, etc_dir=str(tmp_path), run_dir="/r", phones=phones, queues=[])
    pjsip = (tmp_path / "pjsip.conf").read_text()
    assert "[1002](operator-webrtc)" in pjsip and "[1001](operator-phone)" in pjsip
    assert re.search(r"webrtc = yes\ndtls_auto_generate_cert = yes", pjsip)
    assert re.search(r"\[transport-ws\]\ntype = transport\nprotocol = ws", pjsip)
    host, port = own.asterisk.http_bind.split(":")
    http = (tmp_path / "http.conf").read_text()
    assert f"bindaddr = {host}\nbindport = {port}\n" in http
    assert "res_http_websocket.so" in (tmp_path / "modules.conf").read_text()
    with pytest.raises(SettingsError, match="webrtc_extensions"):
        load_settings(environ=hotline_environ(HOTLINE_ASTERISK__WEBRTC_EXTENSIONS='["1009"]'))
