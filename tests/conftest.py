"""Shared fixtures: the real development Asterisk, PostgreSQL, our FastAGI server.

The test Asterisk is its own instance (system name ``hotline-test``, its own ports), so the
suite can run beside a ``make run`` instance. Nothing here sleeps and hopes: waits are for a
condition with a deadline.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from agi.routes import ROUTES
from agi.server import CallContext, FastAGIServer
from ivr.ami import AMIClient
from ivr.asterisk_dev import DevAsterisk
from ivr.db.engine import SQLITE_PREFIX
from ivr.db.migrate import upgrade
from ivr.demo import seed_demo
from ivr.phrases import render_prompts
from ivr.runner import make_agi_server
from ivr.services.container import Services
from ivr.services.kb import refresh_scripts
from ivr.settings import PROJECT_ROOT, Database, Settings, load_settings
from ivr.simulate import EventRecorder, wait_until
from web.app import init_app

from .support.postgres import TestCluster
from .support.records import services_on


def _slot() -> int:
    """Which test instance this process is: its own Asterisk, ports and files, so runs
    side by side (pytest-xdist workers, two developers' runs) never meet."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        return 1 + int(worker[2:])
    return int(os.environ.get("HOTLINE_TEST_SLOT", "0"))


SLOT = _slot()
TEST_VAR = PROJECT_ROOT / "var" / (f"test{SLOT}" if SLOT else "test")
PORT_SHIFT = 10 * SLOT

TEST_OVERRIDES = {
    "HOTLINE_ENVIRONMENT": "development",  # the shipped secrets are the tests' own
    "HOTLINE_TTS__ENGINE": "espeak",  # tests never touch the network
    "HOTLINE_TTS__RECORDINGS_DIR": str(TEST_VAR / "recordings"),
    # Calls are recorded into this run's own folder; the notice is on only where a test
    # checks it (tests/test_recordings_call.py), so other calls reach the queue as before.
    "HOTLINE_RECORDING__DIRECTORY": str(TEST_VAR / "recordings" / "calls"),
    "HOTLINE_RECORDING__NOTICE": "false",
    "HOTLINE_AMI__PORT": str(15038 + PORT_SHIFT),
    "HOTLINE_AMI__USERNAME": "hotline-test",
    "HOTLINE_AMI__PING_INTERVAL": "2",
    "HOTLINE_AGI__PORT": str(14573 + PORT_SHIFT),
    "HOTLINE_AGI__HEADER_TIMEOUT": "2",
    "HOTLINE_PANEL__PORT": str(18080 + PORT_SHIFT),
    "HOTLINE_ASTERISK__SYSTEM_NAME": f"hotline-test{SLOT or ''}",
    "HOTLINE_ASTERISK__RUNTIME_DIR": str(TEST_VAR / "asterisk"),
    "HOTLINE_ASTERISK__SIP_BIND": f"127.0.0.1:{15060 + PORT_SHIFT}",
    "HOTLINE_ASTERISK__HTTP_BIND": f"127.0.0.1:{18088 + PORT_SHIFT}",
    # Browser phones' RTP on loopback: no DNS lookup of this host's name per call.
    "HOTLINE_ASTERISK__MEDIA_ADDRESS": "127.0.0.1",
    "HOTLINE_ASTERISK__LOAD_TEST_CONTEXTS": "true",
    "HOTLINE_DATABASE__URL": f"sqlite+aiosqlite:///{TEST_VAR}/default.sqlite3",
    "HOTLINE_DATABASE__SPOOL_DIR": str(TEST_VAR / "spool"),
    "HOTLINE_IVR__QUEUE_WAIT_BEFORE_OFFER": "8",
    "HOTLINE_IVR__QUEUE_ANNOUNCE_EVERY": "8",
    # Colleagues are simulated operators inside Asterisk.
    "HOTLINE_ASTERISK__OPERATOR_DIAL": "Local/{extension}@operator-sim/n",
    # Citizens called back are simulated inside Asterisk as well.
    "HOTLINE_ASTERISK__TRUNK_DIAL": "Local/{number}@citizen-sim/n",
    "HOTLINE_CALLBACKS__RETRY_SECONDS": "2",
    "HOTLINE_CALLBACKS__CITIZEN_RING_SECONDS": "4",
    # Prompts a simulated call hears to the end, shortened: the flows under test are the
    # same, only the wording the tests wait through is. The greeting (also the seeded
    # knowledge-base script, ivr.demo) still outlasts a key typed one second in.
    "HOTLINE_PROMPTS__GREETING": "Горячая линия министерства.",
    "HOTLINE_PROMPTS__AFTER_HOURS": "Нерабочее время. Откроемся {next_opening}.",
    "HOTLINE_PROMPTS__TRANSFER_CONNECTING": "Соединяю.",
    "HOTLINE_PROMPTS__TRANSFER_WHISPER": "Тема: {topic}. {sender} {note}",
    "HOTLINE_PROMPTS__TRANSFER_REFUSED": "Третий перевод невозможен.",
    # Said through, not cut short by a key (agi/flows/verification.py).
    "HOTLINE_PROMPTS__APPEAL_NOT_VERIFIED": "Не подошло.",
    "HOTLINE_PROMPTS__RECEPTION_NOT_VERIFIED": "Не подошли.",
    "HOTLINE_PROMPTS__CONNECTING": "Ждите оператора.",
    "HOTLINE_PROMPTS__CALLBACK_STAFF": "Вопрос: {question}.",
    "HOTLINE_PROMPTS__CALLBACK_INTRO": "Вам звонит {org}.",
    "HOTLINE_PROMPTS__REMINDER_CANCELLED": "Запись отменена.",
    "HOTLINE_PROMPTS__AGENCY_INFO": "Обратитесь: {agency}, телефон {phone}.",
    "HOTLINE_PROMPTS__NOTICE_INTRO": "Звонит {org}.",
    # Spoken in every reception reminder call (ivr/letters.py).
    "HOTLINE_ORGANISATION__DIRECTIONS": "Кабинет 101.",
}

# The service's clock in tests: a working Wednesday morning in Moscow, whenever CI runs.
OPEN_TIME = datetime(2026, 11, 25, 11, 0, tzinfo=ZoneInfo("Europe/Moscow"))


def hotline_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    return {**env, **TEST_OVERRIDES, **extra}


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(environ=hotline_environ())


@pytest.fixture(scope="session")
def asterisk(settings: Settings, sqlite_template: Path) -> Iterator[DevAsterisk]:
    render_prompts(settings)
    # The phones' SIP passwords rendered into pjsip.conf come from a database of this run.
    copy_sqlite(sqlite_template, Path(settings.database.url.removeprefix(SQLITE_PREFIX)))
    dev = DevAsterisk(settings)
    dev.down()  # a leftover from an interrupted run
    dev.up()
    yield dev
    dev.down()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TestCluster]:
    port = os.environ.get("HOTLINE_TEST_PG_PORT", str(15432 + PORT_SHIFT))
    cluster = TestCluster(port=int(port))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest_asyncio.fixture(scope="session")
async def session_ami(settings: Settings, asterisk: DevAsterisk) -> AsyncIterator[AMIClient]:
    client = AMIClient(settings.ami.host, settings.ami.port, settings.ami.username,
                       settings.ami.secret, ping_interval=settings.ami.ping_interval,
                       reconnect_max_delay=2)
    await client.start()
    yield client
    await client.close()


@pytest_asyncio.fixture
async def ami(session_ami: AMIClient) -> AsyncIterator[AMIClient]:
    # Some tests restart Asterisk; every test starts with a live link, and leaves no
    # caller behind for the next one.
    await session_ami.wait_connected(30)
    yield session_ami
    await quiesce(session_ami)


@pytest.fixture(scope="session")
def events(session_ami: AMIClient) -> EventRecorder:
    return EventRecorder(session_ami)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PG_TEMPLATE = "hotline_template"


# Migrations run once per run (per xdist worker: its own TEST_VAR and cluster) into a
# template; every test's database is a copy. The chain itself: tests/test_database.py.
@pytest.fixture(scope="session")
def sqlite_template() -> Path:
    path = TEST_VAR / "template.sqlite3"
    remove_sqlite(path)
    upgrade(f"{SQLITE_PREFIX}{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_cluster: TestCluster) -> str:
    upgrade(pg_cluster.create_database(PG_TEMPLATE))
    return PG_TEMPLATE


def remove_sqlite(path: Path) -> None:
    """No database at ``path``, nor a journal of an old one that SQLite would replay into
    the next file made there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        old.unlink(missing_ok=True)


def copy_sqlite(template: Path, path: Path) -> None:
    remove_sqlite(path)
    shutil.copyfile(template, path)


def fresh_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: the migrations' own tests start from one."""
    if backend == "sqlite":
        url = f"{SQLITE_PREFIX}{tmp_path}/hotline.sqlite3"
    else:
        cluster: TestCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
    return url


def migrated_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at the newest schema, copied from this run's template."""
    if backend == "sqlite":
        path = tmp_path / "hotline.sqlite3"
        copy_sqlite(request.getfixturevalue("sqlite_template"), path)
        return f"{SQLITE_PREFIX}{path}"
    cluster: TestCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t_{uuid.uuid4().hex[:12]}",
                                   template=request.getfixturevalue("pg_template"))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_database(request.param, request, tmp_path)


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_database("sqlite", request, tmp_path)


async def _boom(call: CallContext) -> None:
    await call.agi.answer()
    raise RuntimeError("deliberate failure in a test flow")


TEST_ROUTES = {**ROUTES, "test-boom": _boom}


@dataclass
class Stack:
    settings: Settings
    services: Services
    agi: FastAGIServer


async def start_stack(settings: Settings, url: str) -> Stack:
    settings = settings.model_copy(update={"database": Database(url=url)})
    services = Services.create(settings)
    services.clock = lambda: OPEN_TIME
    server = make_agi_server(services, TEST_ROUTES)
    await server.start()
    return Stack(settings, services, server)


async def _channel_count(ami: AMIClient) -> int:
    reply = await ami.action({"Action": "CoreShowChannels"})
    return sum(1 for m in reply if m.get("Event") == "CoreShowChannel")


async def quiesce(ami: AMIClient, timeout: float = 30) -> None:
    """No test's caller may still be waiting in a queue when the next test starts."""
    try:
        await wait_until(lambda: _no_channels(ami), timeout, "Asterisk idle")
    except TimeoutError:
        await ami.action({"Action": "Hangup", "Channel": "/.*/"}, check=False)
        await wait_until(lambda: _no_channels(ami), 10, "Asterisk idle after hangup")


async def _no_channels(ami: AMIClient) -> bool:
    await ami.wait_connected(30)
    return await _channel_count(ami) == 0


@pytest_asyncio.fixture
async def stack(settings: Settings, db_url: str, asterisk: DevAsterisk) -> AsyncIterator[Stack]:
    """Database (SQLite, then PostgreSQL) + our FastAGI server on the test port."""
    s = await start_stack(settings, db_url)
    yield s
    await s.agi.close()
    await s.services.close()


@pytest_asyncio.fixture
async def seeded(stack: Stack) -> AsyncIterator[Stack]:
    """The stack with the demo's staff, citizens, appeals and knowledge base."""
    await seed_demo(stack.settings, today=OPEN_TIME.date())
    await refresh_scripts(stack.services)
    yield stack


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield b
        await b.close()


# The panel's clock in tests: 11:00 in Moscow on a working Wednesday.
PANEL_NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str) -> AsyncIterator[Services]:
    """Services on a fresh database with the demo's staff and records (a test module that
    needs other settings or data defines its own ``svc``)."""
    services = services_on(settings, db_url, PANEL_NOW)
    await seed_demo(services.settings, today=PANEL_NOW.date())
    yield services
    await services.close()


@pytest_asyncio.fixture
async def client(svc: Services) -> AsyncIterator[TestClient]:
    """The panel over HTTP on ``svc``, without an AMI link."""
    async with TestClient(TestServer(init_app(svc))) as c:
        yield c
