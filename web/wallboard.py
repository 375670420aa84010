"""The live wallboard and listening in (issue 30).

``/panel/wallboard`` shows queues (waiting, the longest wait, today's service level and
abandoned calls), operators by state with how long, calls in the IVR; ``?tv=1`` is the
full-screen view for a wall screen. The page gets the board over Server-Sent Events
(``/panel/wallboard/live``) from :class:`ivr.board.LiveBoard`, which keeps it from the AMI
stream: a new state at every change, the whole board every ``KEEPALIVE`` seconds. The SSE
is written by hand, as the operator's ``/panel/live`` is: twenty lines did not call for a
dependency (aiohttp-sse).

``POST /panel/wallboard/spy`` rings the supervisor's phone into ChanSpy on an operator's
live call (:mod:`ivr.spy`); the form names the operator and the mode, never a channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from ivr import spy
from ivr.agent_states import STATE_NAMES
from ivr.ami import AMIClient
from ivr.board import LiveBoard, queue_figures
from ivr.db.models import AgentState, Role, Staff
from ivr.services import supervision
from ivr.services.container import Services

from . import auth
from .app_keys import SERVICES
from .errors import Conflict, Unprocessable
from .policy import OVERSEERS, actor, panel
from .records import _render, _svc, current_staff
from .workspace import DIRECTORY, HUB

SUPERVISORS = (Role.SUPERVISOR, Role.ADMINISTRATOR, Role.DEPARTMENT_HEAD)
KEEPALIVE = 10.0
FIGURES_TTL = 15.0      # today's service level and abandoned calls, from the records
BOARD = web.AppKey("live_board", LiveBoard)


class TodayFigures:
    """Per queue, today: asked of the database at most every ``FIGURES_TTL`` seconds."""

    def __init__(self) -> None:
        self.at = -FIGURES_TTL
        self.rows: dict[str, dict[str, float | None]] = {}

    async def get(self, svc: Services) -> dict[str, dict[str, float | None]]:
        if time.monotonic() - self.at >= FIGURES_TTL:
            self.at = time.monotonic()
            start, end = supervision.local_day_range(svc.calendar.today(svc.clock()),
                                                     svc.calendar.tz)
            async with svc.sessions() as session:
                self.rows = await queue_figures(session, start, end,
                                                svc.settings.ivr.service_level_seconds)
        return self.rows


FIGURES = web.AppKey("wallboard_figures", TodayFigures)


def queue_titles(svc: Services) -> dict[str, str]:
    ivr = svc.settings.ivr
    titles = {t.queue: t.title for t in ivr.topics if t.action == "queue"}
    titles[ivr.general_queue] = "Общая очередь"
    return titles


def _name(staff: Staff) -> str:
    return f"{staff.surname} {staff.first_name}"


async def board_view(app: web.Application) -> dict[str, Any]:
    """The board as the page shows it: Russian labels, names, who can be listened to."""
    svc: Services = app[SERVICES]
    board = app[BOARD].snapshot()
    figures = await app[FIGURES].get(svc)
    titles = queue_titles(svc)
    names = {s.extension: _name(s) for s in await app[DIRECTORY].staff(svc) if s.extension}
    on_call = app[HUB].current
    for queue in board["queues"]:
        queue["title"] = titles.get(queue["queue"], queue["queue"])
        queue.update(figures.get(queue["queue"], {"service_level": None, "abandoned": 0}))
    for operator in board["operators"]:
        state = AgentState(operator["state"])
        operator["name"] = names.get(operator["extension"], operator["extension"])
        operator["label"] = STATE_NAMES[state] + (
            f": {operator['reason']}" if state is AgentState.PAUSED and operator["reason"]
            else "")
        operator["spy"] = operator["extension"] in on_call
    ami = app[HUB].ami
    board["connected"] = ami is not None and ami.connected.is_set()
    return board


@panel(*SUPERVISORS)
async def page(request: web.Request) -> web.Response:
    return _render(request, "wallboard.html", {
        "tv": request.query.get("tv") == "1", "modes": spy.MODES,
        "board": await board_view(request.app),
        "can_spy": actor(request).role in OVERSEERS})


def _event(board: dict[str, Any]) -> bytes:
    return f"event: board\ndata: {json.dumps(board, ensure_ascii=False)}\n\n".encode()


@panel(*SUPERVISORS)
async def live(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the whole board at every change, and every KEEPALIVE s."""
    board = request.app[BOARD]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    changed = board.listen()
    changed.set()
    try:
        while not board.closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), KEEPALIVE)
            changed.clear()
            await response.write(_event(await board_view(request.app)))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        board.leave(changed)
    return response


@panel(*OVERSEERS, audit="call", refused="spy_refused", json=True)
async def start_spy(request: web.Request) -> web.Response:
    """Listen to, whisper to or barge into an operator's call from the supervisor's phone."""
    svc = _svc(request)
    me = await current_staff(request)
    form = await request.post()
    operator, mode = str(form.get("operator", "")), str(form.get("mode", ""))
    hub = request.app[HUB]
    call = hub.current.get(operator)        # the channel: from Asterisk, never the form
    if hub.ami is None or not hub.ami.connected.is_set():
        raise Conflict("Нет связи с Asterisk: попробуйте через минуту.", "no_ami")
    wanted = spy.SpyRequest(mode, me.extension or "", (call or {}).get("channel", ""),
                            operator)
    try:
        channel_id = await spy.start(hub.ami, svc.settings, wanted)
    except spy.SpyRefused as exc:
        raise Unprocessable(str(exc), exc.error_id) from None
    assert call is not None
    await auth.audit(svc, me.id, "spy", "call", call.get("linkedid", ""),
                     f"{spy.MODES[mode]}: оператор {operator}, телефон {me.extension}, "
                     f"канал {wanted.target}", request.remote or "")
    return web.json_response({"ok": True, "channel": channel_id, "mode": mode,
                              "message": f"Звоним на ваш телефон {me.extension}: "
                                         f"{spy.MODES[mode]}."})


def setup(app: web.Application, ami: AMIClient | None) -> None:
    app[BOARD] = board = LiveBoard(ami, lambda: queue_titles(app[SERVICES]))
    app[FIGURES] = TodayFigures()
    app.on_shutdown.append(board.close)
    app.router.add_get("/panel/wallboard", page)
    app.router.add_get("/panel/wallboard/live", live)
    app.router.add_post("/panel/wallboard/spy", start_spy)
