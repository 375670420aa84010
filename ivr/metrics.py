"""Figures for Prometheus (``GET /metrics``), in its text format.

Two kinds of figure:

* read when scraped — calls by outcome, fallbacks, recovered calls, callers in the IVR and
  notices from the database (true across restarts and across ``--only`` processes); callers
  in each queue, the longest wait and operators by state from Asterisk (QueueSummary,
  QueueStatus on the panel's AMI link);
* fed by this process as things happen — the AGI step latency histogram, the scheduler's
  job runs, the call recorder's backlog and spool. A service split with ``--only`` shows
  these only for the part running in the process that serves ``/metrics``.

The registry is this object's own, not prometheus-client's global one: two applications in
one process (the tests) never clash over metric names.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from .ami import AMIClient
    from .services.container import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# An AGI step's own work between Asterisk's request (or reply) and our next command:
# database look-ups and decisions, milliseconds when healthy, the caller's silence if not.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# A call row left open longer than this (its hangup unheard) is not counted as in the IVR.
IVR_STALE = timedelta(hours=2)
# QueueMember's Status 5: AST_DEVICE_UNAVAILABLE (the phone is not registered).
UNAVAILABLE = "5"


@dataclass
class JobRun:
    every_seconds: float
    finished: float          # time.monotonic() of the latest run's end
    failures: int = 0


@dataclass
class Snapshot:
    """What a scrape read from the database and Asterisk, handed to the collector."""

    calls: dict[str, int] = field(default_factory=dict)
    fallbacks: int = 0
    recovered: int = 0
    ivr_callers: int = 0
    notices: dict[str, int] = field(default_factory=dict)
    ami_connected: bool = False
    queues: list[dict[str, Any]] = field(default_factory=list)
    agents: dict[str, int] = field(default_factory=dict)
    recorder_backlog: int = 0
    spool_bytes: int = 0
    recorder_refused: int = 0
    recordings_bytes: int = 0


class Metrics:
    """One process's figures and the registry ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.agi_step = Histogram(
            "hotline_agi_step_seconds", "Our own time before each AGI command, by script",
            ["script"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.jobs: dict[str, JobRun] = {}
        self._snapshot: Snapshot | None = None
        self.registry.register(_ScrapeCollector(self))

    def agi_latency(self, script: str, seconds: float) -> None:
        self.agi_step.labels(script).observe(seconds)

    def job_ran(self, name: str, every_seconds: float, ok: bool) -> None:
        run = self.jobs.setdefault(name, JobRun(every_seconds, 0.0))
        run.finished = time.monotonic()
        run.failures += 0 if ok else 1

    async def render(self, services: Services, ami: AMIClient | None) -> bytes:
        snapshot = await read_snapshot(services, ami)
        # No await between setting the snapshot and rendering: a concurrent scrape can't
        # swap it mid-render.
        self._snapshot = snapshot
        try:
            return generate_latest(self.registry)
        finally:
            self._snapshot = None


class _ScrapeCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []   # figures vary by scrape; nothing to check for duplicates up front

    def collect(self) -> Iterator[Metric]:
        snap = self.metrics._snapshot
        if snap is not None:
            yield from _database_families(snap)
            yield from _asterisk_families(snap)
        yield from _process_families(self.metrics, time.monotonic())


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _database_families(snap: Snapshot) -> Iterator[Metric]:
    calls = CounterMetricFamily("hotline_calls", "Ended calls, by outcome", labels=["outcome"])
    for outcome, count in sorted(snap.calls.items()):
        calls.add_metric([outcome], count)
    yield calls
    yield CounterMetricFamily("hotline_agi_fallbacks", "Calls that passed through agi-fail",
                              value=snap.fallbacks)
    yield CounterMetricFamily("hotline_calls_recovered",
                              "Calls imported from Asterisk's records after a restart",
                              value=snap.recovered)
    yield _gauge("hotline_ivr_callers", "Callers in the IVR menu, not yet in a queue",
                 snap.ivr_callers)
    notices = GaugeMetricFamily("hotline_notices", "Notices to citizens not yet sent, and "
                                "those that failed, by status", labels=["status"])
    for status in ("pending", "sending", "failed", "outbox"):
        notices.add_metric([status], snap.notices.get(status, 0))
    yield notices
    yield _gauge("hotline_recorder_backlog", "Call facts accepted but not yet written",
                 snap.recorder_backlog)
    yield _gauge("hotline_recorder_spool_bytes", "Size of the call recorder's disk spool",
                 snap.spool_bytes)
    yield CounterMetricFamily("hotline_recorder_refused",
                              "Call facts refused because the spool was full",
                              value=snap.recorder_refused)
    yield _gauge("hotline_recordings_bytes", "Disk taken by the kept call recordings",
                 snap.recordings_bytes)


def _asterisk_families(snap: Snapshot) -> Iterator[Metric]:
    yield _gauge("hotline_ami_connected", "1 when the panel's AMI link is up",
                 1 if snap.ami_connected else 0)
    if not snap.ami_connected:
        return
    waiting = GaugeMetricFamily("hotline_queue_callers", "Callers waiting in each queue",
                                labels=["queue"])
    longest = GaugeMetricFamily("hotline_queue_longest_wait_seconds",
                                "The longest current wait in each queue", labels=["queue"])
    for queue in snap.queues:
        waiting.add_metric([queue["queue"]], queue["waiting"])
        longest.add_metric([queue["queue"]], queue["longest"])
    yield waiting
    yield longest
    agents = GaugeMetricFamily("hotline_agents", "Operators in the queues, by state",
                               labels=["state"])
    for state in ("ready", "talking", "paused", "unavailable"):
        agents.add_metric([state], snap.agents.get(state, 0))
    yield agents


def _process_families(metrics: Metrics, now: float) -> Iterator[Metric]:
    lag = GaugeMetricFamily("hotline_scheduler_job_lag_seconds",
                            "How long a scheduled job is overdue (0: on time)", labels=["job"])
    failures = CounterMetricFamily("hotline_scheduler_job_failures",
                                   "Failed runs of each scheduled job", labels=["job"])
    for name, run in sorted(metrics.jobs.items()):
        lag.add_metric([name], max(0.0, now - run.finished - run.every_seconds))
        failures.add_metric([name], run.failures)
    yield lag
    yield failures


async def read_snapshot(services: Services, ami: AMIClient | None) -> Snapshot:
    recorder = services.recorder
    snap = Snapshot(recorder_backlog=recorder.backlog, spool_bytes=recorder.spool_bytes,
                    recorder_refused=recorder.stats["refused"])
    async with services.sessions() as session:
        await _read_database(session, snap, services.clock())
    if ami is not None and ami.connected.is_set():
        await _read_asterisk(ami, snap)
    return snap


async def _read_database(session: AsyncSession, snap: Snapshot, now: datetime) -> None:
    from .db.models import Call, CallOutcome, Notification
    from .recordings import disk_bytes

    ended = Call.outcome != CallOutcome.IN_PROGRESS
    rows = await session.execute(select(Call.outcome, func.count()).where(ended)
                                 .group_by(Call.outcome))
    snap.calls = {str(outcome): int(count) for outcome, count in rows.all()}
    snap.fallbacks = int(await session.scalar(
        select(func.count()).select_from(Call).where(Call.fallback)) or 0)
    snap.recovered = int(await session.scalar(
        select(func.count()).select_from(Call).where(Call.recovered)) or 0)
    snap.ivr_callers = int(await session.scalar(
        select(func.count()).select_from(Call).where(
            Call.ended_at.is_(None), Call.queue_joined_at.is_(None),
            Call.started_at >= now - IVR_STALE)) or 0)
    waiting = ("pending", "sending", "failed", "outbox")
    rows = await session.execute(select(Notification.status, func.count())
                                 .where(Notification.status.in_(waiting))
                                 .group_by(Notification.status))
    snap.notices = {str(status): int(count) for status, count in rows.all()}
    snap.recordings_bytes = await disk_bytes(session)


async def _read_asterisk(ami: AMIClient, snap: Snapshot) -> None:
    from .ami import AMIError

    try:
        summary = await ami.action({"Action": "QueueSummary"})
        status = await ami.action({"Action": "QueueStatus"})
    except AMIError:
        return   # reported as not connected: the figures would be made up
    snap.ami_connected = True
    snap.queues = [{"queue": str(m.get("Queue")), "waiting": _int(m.get("Callers")),
                    "longest": _int(m.get("LongestHoldTime"))}
                   for m in summary if m.get("Event") == "QueueSummary"]
    states: dict[str, str] = {}
    for m in status:
        if m.get("Event") == "QueueMember":
            # One operator in several queues counts once.
            states[str(m.get("StateInterface") or m.get("Location") or m.get("Name"))] = (
                _agent_state(m))
    for state in states.values():
        snap.agents[state] = snap.agents.get(state, 0) + 1


def _agent_state(member: Any) -> str:
    if str(member.get("InCall")) == "1":
        return "talking"
    if str(member.get("Status")) == UNAVAILABLE:
        return "unavailable"
    return "paused" if str(member.get("Paused")) == "1" else "ready"


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0
