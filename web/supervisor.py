"""The supervisor's dashboard (issue 5): the live wallboard from Asterisk, today's queue
figures, ratings by operator / topic / day / week with charts drawn here (no CDN: the panel
runs in a closed LAN), the calls behind each figure, low ratings with a one-click callback,
transfers, callbacks, survey answers, journal topics with no article. Every table exports
to CSV."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr import recordings
from ivr.agent_states import STATE_NAMES
from ivr.ami import AMIError
from ivr.db.models import Call, CallbackSource, Role
from ivr.dialling import DiallingPolicy, NumberRefused
from ivr.hygiene import csv_text
from ivr.services import agent_day, journal, kpi, supervision, surveys
from ivr.services.callbacks import create_callback, offered_windows
from ivr.services.container import Services

from . import auth
from .app_keys import SERVICES
from .callbacks import CALLBACK_NAMES
from .errors import Invalid, NotFound, Unprocessable
from .policy import actor, panel
from .records import _render, _svc
from .workspace import HUB, QUALITY_NAMES

log = logging.getLogger(__name__)
# The figures and the calls behind them: the contact centre's supervisor, administrators,
# department heads.
SUPERVISORS = (Role.SUPERVISOR, Role.ADMINISTRATOR, Role.DEPARTMENT_HEAD)
PERIODS = {"today": ("сегодня", 0), "week": ("7 дней", 7), "month": ("30 дней", 30)}


def _period(request: web.Request) -> tuple[str, datetime, datetime]:
    return period_range(_svc(request), request.query.get("period", "today"))


def period_range(svc: Services, name: str) -> tuple[str, datetime, datetime]:
    if name not in PERIODS:
        name = "today"
    today = svc.calendar.today(svc.clock())
    start, end = supervision.local_day_range(today, svc.calendar.tz)
    return name, start - timedelta(days=PERIODS[name][1]), end


async def wallboard(request: web.Request) -> dict[str, Any]:
    """Callers waiting, the longest wait, operators by state, per queue, from Asterisk."""
    ami = request.app[HUB].ami
    if ami is None or not ami.connected.is_set():
        return {"error": "нет связи с Asterisk", "queues": [], "members": []}
    try:
        summary = await ami.action({"Action": "QueueSummary"})
        status = await ami.action({"Action": "QueueStatus"})
    except AMIError as exc:
        return {"error": str(exc), "queues": [], "members": []}
    queues = [{"queue": str(m.get("Queue")), "waiting": int(m.get("Callers", 0) or 0),
               "longest": int(m.get("LongestHoldTime", 0) or 0),
               "available": int(m.get("Available", 0) or 0),
               "logged_in": int(m.get("LoggedIn", 0) or 0)}
              for m in summary if m.get("Event") == "QueueSummary"]
    members: dict[str, dict[str, str]] = {}
    for m in status:
        if m.get("Event") != "QueueMember":
            continue
        name = str(m.get("Name") or m.get("MemberName") or "")
        state = ("разговаривает" if str(m.get("InCall")) == "1" else
                 f"пауза: {m.get('PausedReason') or 'без причины'}" if str(m.get("Paused")) == "1"
                 else "готов")
        members[name] = {"name": name, "state": state}
    return {"error": "", "queues": sorted(queues, key=lambda q: q["queue"]),
            "members": sorted(members.values(), key=lambda m: m["name"])}


def chart_data(rows: list[supervision.RatingRow]) -> dict[str, Any]:
    """Per day, the shares of «ответ получен» and «удовлетворён» (%), and the ratings, for
    the page's chart (uPlot, web/static/js/supervisor.js)."""
    return {"labels": [r.key for r in rows],
            "answered": [round(r.answered_share * 100) for r in rows],
            "satisfied": [round(r.satisfied_share * 100) for r in rows],
            "rated": [r.rated for r in rows]}


# The figures of a period are shared by every supervisor of a process: computed at start-up
# and recomputed once they are FIGURES_TTL seconds old, in the background, while the page
# shows the last ones with their age. Only figures twice that old (nobody looked for a
# while) make the asker wait for new ones, at most FRESH_WAIT seconds; so the page, its CSV
# and «пересчитываются раз в полминуты» agree, and a request almost never waits for a
# recomputation over a million calls (docs/benchmarks.md). The wallboard is live.
FIGURES_TTL = 30.0
FRESH_WAIT = 5.0


class Figures:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self.refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}

    @property
    def svc(self) -> Services:
        return self.app[SERVICES]

    async def get(self, name: str) -> dict[str, Any]:
        name, start, _ = period_range(self.svc, name)
        key = (name, start.isoformat())
        cached = self.cache.get(key)
        if cached is None:          # the first ask: everyone waits for one computation
            await asyncio.shield(self._start(key, name))
            cached = self.cache[key]
        elif (age := time.monotonic() - cached[0]) >= FIGURES_TTL:
            renewal = self._start(key, name)
            if age >= 2 * FIGURES_TTL:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(renewal), FRESH_WAIT)
                cached = self.cache[key]
        return {**cached[1], "age_seconds": int(time.monotonic() - cached[0])}

    def _start(self, key: tuple[str, str], name: str) -> asyncio.Task[None]:
        task = self.refreshing.get(key)
        if task is None:
            task = self.refreshing[key] = asyncio.create_task(self._refresh(key, name))
        return task

    async def _refresh(self, key: tuple[str, str], name: str) -> None:
        try:
            self.cache[key] = (time.monotonic(), await _compute(self.svc, name))
        except Exception:
            if key in self.cache:   # in the background: keep the last figures, say why
                log.exception("supervisor figures (%s) not refreshed", name)
            else:
                raise
        finally:
            self.refreshing.pop(key, None)

    async def warm(self, _app: web.Application) -> None:
        """At start-up, in the background: the first supervisor does not wait."""
        for name in PERIODS:
            key = (name, period_range(self.svc, name)[1].isoformat())
            self._start(key, name).add_done_callback(_quiet)

    async def close(self, _app: web.Application) -> None:
        """Cancel figures being computed and wait for them (a query in SQLite's thread
        ends first), so their sessions are closed before the engine is."""
        tasks = list(self.refreshing.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("supervisor figures not prepared at start-up: %s", task.exception())


FIGURES = web.AppKey("supervisor_figures", Figures)


async def _tables(request: web.Request) -> dict[str, Any]:
    return await request.app[FIGURES].get(request.query.get("period", "today"))


async def _compute(svc: Services, name: str) -> dict[str, Any]:
    name, start, end = period_range(svc, name)
    tz = svc.calendar.tz
    async with svc.sessions() as session:
        kpis = await kpi.call_kpis(session, start, end,
                                   svc.settings.ivr.service_level_seconds)
        by_operator = await supervision.ratings_by(session, "operator", start, end, tz)
        by_topic = await supervision.ratings_by(session, "topic", start, end, tz)
        by_day = await supervision.ratings_by(session, "day", start - timedelta(days=13)
                                              if name == "today" else start, end, tz)
        by_week = await supervision.ratings_by(session, "week", end - timedelta(weeks=8),
                                               end, tz)
        low = await supervision.calls_behind(session, start=start, end=end, low_only=True,
                                             limit=50)
        twice, refused = await supervision.transfer_review(session, start, end)
        overdue = await kpi.overdue_callbacks(session, svc.calendar.today(svc.clock()))
        gaps = await supervision.journal_gaps(session, start, end)
        # R-H6: every period at once, so the supervisor compares today with the month.
        journal_missing = await journal.gaps_by_period(
            session, {p: period_range(svc, p)[1:] for p in PERIODS})
        appeal_surveys = await surveys.summary(session, start, end, about="appeal")
        reception_surveys = await surveys.summary(session, start, end, about="reception")
    return {"period": name, "periods": PERIODS, "start": start, "end": end, "kpis": kpis,
            "computed_at": svc.clock(),
            "by_operator": by_operator, "by_topic": by_topic, "by_day": by_day,
            "by_week": by_week, "low": low, "twice": twice, "refused": refused,
            "overdue": overdue, "gaps": gaps, "journal_missing": journal_missing,
            "appeal_surveys": appeal_surveys,
            "reception_surveys": reception_surveys, "chart": chart_data(by_day),
            "quality_names": QUALITY_NAMES}


@panel(*SUPERVISORS, audit="dashboard")
async def dashboard(request: web.Request) -> web.Response:
    me = actor(request)
    context = await _tables(request)
    context["board"] = await wallboard(request)
    async with _svc(request).sessions() as session:
        context["recordings_mb"] = await recordings.disk_bytes(session) / 2**20
    topic_titles, queue_titles = await _titles(_svc(request))
    context.update(
        queue_titles=queue_titles, topic_titles=topic_titles, callback_names=CALLBACK_NAMES,
        service_level_seconds=_svc(request).settings.ivr.service_level_seconds)
    await auth.audit(_svc(request), me.staff_id, "view", "dashboard", context["period"], "",
                     request.remote or "")
    return _render(request, "supervisor.html", context)


async def _titles(svc: Services) -> tuple[dict[str, str], dict[str, str]]:
    """Topic and queue titles as callers hear them: the administrator's menu, not the
    settings that only seeded it."""
    setup = await svc.menu.fresh(svc)
    return ({t.code: t.title for t in setup.ivr.topics},
            {q.name: q.title for q in setup.queues})


def _csv(rows: list[list[object]], filename: str) -> web.Response:
    # Journal text is typed by people: no cell may reach a spreadsheet as a formula.
    return web.Response(body=("\ufeff" + csv_text(rows)).encode(), headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}.csv"'})


@panel(*SUPERVISORS, audit="dashboard")
async def export(request: web.Request) -> web.Response:
    me = actor(request)
    table = request.match_info["table"]
    context = await _tables(request)
    header = ["", "оценок", "ответ получен", "удовлетворён", "частично", "не удовлетворён"]
    titles, _ = await _titles(_svc(request))   # people read titles, never topic codes
    if table in ("by_operator", "by_topic", "by_day", "by_week"):
        rows: list[list[object]] = [header] + [
            [titles.get(r.key, r.key) if table == "by_topic" else r.key, r.rated,
             r.answer_received, r.satisfied, r.partly, r.not_satisfied]
            for r in context[table]]
    elif table == "low":
        rows = [["звонок", "номер", "тема", "вопрос", "ответ получен", "оценка"]] + [
            [c.linkedid, c.caller_number, _topic_title(c, titles),
             "; ".join(j.question for j in c.journal if j.question),
             _yes_no(c.rating.answer_received if c.rating else None),
             QUALITY_NAMES.get(c.rating.quality.value, "")
             if c.rating and c.rating.quality else ""]
            for c in context["low"]]
    elif table == "refused":
        rows = [["звонок", "кто переводил", "кому", "когда"]] + [
            [t.call_id, t.from_staff_id or "", t.to_target, t.requested_at.isoformat()]
            for t in context["refused"]]
    elif table == "gaps":
        rows = [["тема", "вопросов", "без статьи"]] + [
            [titles.get(topic, topic), asked, unanswered]
            for topic, asked, unanswered in context["gaps"]]
    else:
        raise web.HTTPNotFound()
    await auth.audit(_svc(request), me.staff_id, "export", "dashboard", table, "",
                     request.remote or "")
    return _csv(rows, f"{table}-{context['period']}")


def _topic_title(call: Call, titles: dict[str, str]) -> str:
    """The operator's journal topic, else the menu's; both are topic codes."""
    code = (call.journal[0].topic if call.journal else call.topic) or ""
    return titles.get(code, code)


def _yes_no(value: bool | None) -> str:
    return "" if value is None else "да" if value else "нет"


@panel(*SUPERVISORS, audit="call_list")
async def calls(request: web.Request) -> web.Response:
    """Drill-down: the calls behind a figure, with their journal and transfers."""
    me = actor(request)
    svc = _svc(request)
    name, start, end = _period(request)
    day = request.query.get("day", "")
    if day:
        try:
            start, end = supervision.local_day_range(datetime.fromisoformat(day).date(),
                                                     svc.calendar.tz)
        except ValueError:
            raise Invalid("day: ГГГГ-ММ-ДД", "bad_day") from None
    operator = request.query.get("operator", "")
    before = _keyset(request.query.get("before", ""))
    async with svc.sessions() as session:
        rows = await supervision.calls_behind(
            session, start=start, end=end,
            operator_id=int(operator) if operator.isdigit() else None,
            topic=request.query.get("topic") or None,
            low_only=request.query.get("low") == "1", limit=CALLS_PAGE, before=before)
    await auth.audit(svc, me.staff_id, "view", "call_list", request.query_string, "",
                     request.remote or "")
    query = {k: v for k, v in request.query.items() if k != "before"}
    earlier = ""
    if len(rows) == CALLS_PAGE and rows[-1].rating is not None:
        last = rows[-1].rating
        earlier = (f"{request.path}?"
                   f"{urlencode({**query, 'before': f'{last.rated_at.isoformat()}_{last.id}'})}")
    return _render(request, "supervisor_calls.html", {
        "rows": rows, "period": name, "quality_names": QUALITY_NAMES, "earlier": earlier,
        "topic_titles": (await _titles(svc))[0],
        "transfer_names": TRANSFER_NAMES,
        "first_page_url": f"{request.path}?{urlencode(query)}" if before else ""})


CALLS_PAGE = 50
TRANSFER_NAMES = {"pending": "ожидает", "completed": "состоялся", "refused": "отказано",
                  "failed": "не ответили", "cancelled": "отменён"}


def _keyset(value: str) -> tuple[datetime, int] | None:
    """``before=<rating time, ISO>_<rating id>``: where the previous page ended."""
    if not value:
        return None
    at, _, rating_id = value.rpartition("_")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise Invalid("before: время_номер", "bad_keyset") from None
    if moment.tzinfo is None or not rating_id.isdigit():
        raise Invalid("before: время_номер", "bad_keyset")
    return moment, int(rating_id)


def _question(call: Call) -> str:
    """The question as the first operator wrote it (R-H6)."""
    return next((j.question for j in call.journal if j.question), "")


@panel(*SUPERVISORS, audit="callback")
async def callback_low(request: web.Request) -> web.StreamResponse:
    """One click: a callback to the citizen behind a low rating."""
    me = actor(request)
    svc = _svc(request)
    form = await request.post()
    async with svc.sessions() as session:
        call = await session.scalar(select(Call).where(Call.linkedid == str(
            form.get("linkedid", ""))).options(selectinload(Call.journal)))
    if call is None or not call.caller_number:
        raise NotFound("Звонок не найден.", "call_not_found")
    windows = offered_windows(svc.calendar, svc.clock(), svc.settings.ivr.callback_days)
    try:
        made = await create_callback(
            svc.sessions, phone=call.caller_number, windows=windows,
            source=CallbackSource.SUPERVISOR, policy=DiallingPolicy.from_settings(svc.settings),
            linkedid=call.linkedid, topic=call.topic,
            question=f"Низкая оценка: {_question(call) or 'вопрос не записан'}")
    except NumberRefused as exc:
        raise Unprocessable(f"Обратный звонок невозможен. {exc}", exc.error_id) from None
    await auth.audit(svc, me.staff_id, "create", "callback", made or "", call.linkedid,
                     request.remote or "")
    raise web.HTTPSeeOther(f"/panel/supervisor?period={request.query.get('period', 'today')}"
                           f"&callback={'ok' if made else 'exists'}")


@panel(*SUPERVISORS, audit="dashboard")
async def operators_day(request: web.Request) -> web.Response:
    """Everybody's day from the agent-state facts: the state now and since when, calls,
    talk time, time ready, in wrap-up and paused by reason. The page refreshes itself."""
    me = actor(request)
    svc = _svc(request)
    now = svc.clock()
    start, end = supervision.local_day_range(svc.calendar.today(now), svc.calendar.tz)
    async with svc.sessions() as session:
        rows = await agent_day.days(session, start, end, now)
    await auth.audit(svc, me.staff_id, "view", "dashboard", "operators", "",
                     request.remote or "")
    reasons = sorted({reason for row in rows for reason in row.pauses})
    return _render(request, "supervisor_operators.html", {
        "rows": rows, "reasons": reasons, "duration": agent_day.duration,
        "state_names": STATE_NAMES, "read_at": now})


def setup(app: web.Application) -> None:
    app[FIGURES] = figures = Figures(app)
    app.on_startup.append(figures.warm)
    app.on_shutdown.append(figures.close)
    app.router.add_get("/panel/supervisor", dashboard)
    app.router.add_get("/panel/supervisor/calls", calls)
    app.router.add_get("/panel/supervisor/operators", operators_day)
    app.router.add_get(r"/panel/supervisor/export/{table}", export)
    app.router.add_post("/panel/supervisor/callback", callback_low)
