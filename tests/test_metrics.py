"""``GET /metrics`` (issue 28): Prometheus's own parser reads it; the figures follow what
happens (a call recorded, a fallback, an AGI step, a scheduled job, a notice), Asterisk's
queues and operators come over AMI, and only the configured addresses may read it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from ipaddress import ip_network

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from agi.server import CallContext, FastAGIServer
from ivr.ami import AMIClient
from ivr.db.models import CallOutcome, Notification, NotificationStatus
from ivr.facts import Flagged
from ivr.scheduler import Periodic, Scheduler
from ivr.services.container import Services
from ivr.settings import Metrics as MetricsSettings
from ivr.simulate import wait_until
from web.app import init_app

from .conftest import PANEL_NOW
from .support.panel_client import audit_rows

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: TestClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def agi_step(svc: Services) -> None:
    """One AGI step through our FastAGI server, Asterisk's side played over TCP."""
    async def flow(call: CallContext) -> None:
        await call.agi.set_variable("HOTLINE_TOPIC", "x")

    server = FastAGIServer({"ivr-entry": flow}, svc, host="127.0.0.1", port=0,
                           latency=svc.metrics.agi_latency)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\nagi_network_script: ivr-entry\n\n")
        while await asyncio.wait_for(reader.readline(), 5):
            writer.write(b"200 result=1\n")
        writer.close()
    finally:
        await server.close()


async def test_metrics_parse_and_follow_calls_steps_jobs_and_notices(
    svc: Services, client: TestClient
) -> None:
    before = await scrape(client)
    assert before[("hotline_ami_connected", ())] == 0, "no AMI link in this app"
    assert ("hotline_queue_callers", (("queue", "hotline-general"),)) not in before
    answered = before.get(("hotline_calls_total", (("outcome", "answered"),)), 0)

    at = PANEL_NOW - timedelta(minutes=1)
    svc.recorder.arrival("metrics-1", "79001112233", "88001001010", at)
    svc.recorder.arrival("metrics-2", "79001112244", "88001001010", at)
    await svc.recorder.sync()
    in_ivr = await scrape(client)
    assert in_ivr[("hotline_ivr_callers", ())] == before[("hotline_ivr_callers", ())] + 2

    svc.recorder.outcome("metrics-1", CallOutcome.ANSWERED)
    svc.recorder.ended("metrics-1", PANEL_NOW)
    svc.recorder.put(Flagged("metrics-2", False, True, PANEL_NOW, "79001112244"))
    await agi_step(svc)
    job = Scheduler(svc, [Periodic("metrics-probe", 600, _noop)])
    await job.start()
    await wait_until(lambda: _ran(svc), 5, "the job ran once")
    await job.close()
    async with svc.sessions() as s, s.begin():
        s.add(Notification(dedup_key="metrics:1:email", kind="test", channel="email",
                           status=NotificationStatus.FAILED, address="a@example.org",
                           subject="t", body="t"))
    await svc.recorder.sync()
    after = await scrape(client)

    assert after[("hotline_calls_total", (("outcome", "answered"),))] == answered + 1
    assert after[("hotline_ivr_callers", ())] == in_ivr[("hotline_ivr_callers", ())] - 1
    assert after[("hotline_agi_fallbacks_total", ())] == (
        before[("hotline_agi_fallbacks_total", ())] + 1)
    assert after[("hotline_agi_step_seconds_count", (("script", "ivr-entry"),))] == 2
    assert after[("hotline_scheduler_job_lag_seconds", (("job", "metrics-probe"),))] == 0
    assert after[("hotline_scheduler_job_failures_total", (("job", "metrics-probe"),))] == 0
    assert after[("hotline_notices", (("status", "failed"),))] == (
        before[("hotline_notices", (("status", "failed"),))] + 1)
    assert after[("hotline_recorder_backlog", ())] == 0
    assert ("hotline_recorder_spool_bytes", ()) in after


async def _noop(_: Services) -> None:
    return None


async def _ran(svc: Services) -> bool:
    return "metrics-probe" in svc.metrics.jobs


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_metrics_refused_to_other_addresses_and_audited(svc: Services) -> None:
    """The test client comes from 127.0.0.1: outside `allow`, it is refused, and a forged
    X-Forwarded-For does not help."""
    svc.settings = svc.settings.model_copy(
        update={"metrics": MetricsSettings(allow=[ip_network("10.0.0.0/8")])})
    async with TestClient(TestServer(init_app(svc))) as client:
        refused = await client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
        assert refused.status == 403
        assert "hotline_" not in await refused.text()
    assert ("refused", "metrics", "address: GET /metrics") in await audit_rows(svc)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_metrics_read_queues_and_operators_from_asterisk(
    svc: Services, ami: AMIClient
) -> None:
    async with TestClient(TestServer(init_app(svc, ami))) as client:
        samples = await scrape(client)
    assert samples[("hotline_ami_connected", ())] == 1
    assert samples[("hotline_queue_callers", (("queue", "hotline-general"),))] >= 0
    assert ("hotline_queue_longest_wait_seconds", (("queue", "hotline-services"),)) in samples
    states = {labels[0][1] for name, labels in samples if name == "hotline_agents"}
    assert states == {"ready", "talking", "paused", "unavailable"}
