"""Secrets, accounts and first run (issue 25): no shipped secret in production, demo data
only where it belongs, the first administrator, passwords that end sessions, tokens that
expire, a SIP password per phone, login limits and small request bodies. Real database,
real HTTP, the real Asterisk for SIP, the ``hotline`` command as a subprocess."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, text

from ivr import passwords
from ivr.asterisk_dev import DevAsterisk, render_config
from ivr.db.engine import make_engine
from ivr.db.migrate import upgrade
from ivr.db.models import ApiToken, AuditEntry, Citizen, Staff
from ivr.demo import DEMO_PASSWORD, DemoRefused, seed_demo
from ivr.services.accounts import token_hash
from ivr.services.container import Services
from ivr.services.phones import passwords_for_render
from ivr.settings import DEFAULT_CONFIG, Settings, load_settings
from ivr.shipped import production_refusal
from web import auth
from web.api import API_BODY_BYTES
from web.app import init_app

from ..conftest import hotline_environ
from ..support.records import services_on
from ..support.sip import register

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def hotline(url: str, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args],
                          env=hotline_environ(HOTLINE_DATABASE__URL=url, **env),
                          capture_output=True, text=True, timeout=90, check=False, input=stdin)


def shown_phone_password(run: subprocess.CompletedProcess[str], extension: str) -> str:
    """The SIP password `hotline phones list` prints for one extension."""
    return next(line.split("\t")[2] for line in run.stdout.splitlines()
                if line.startswith(f"{extension}\t"))


def shown_password(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, run.stderr
    found = re.search(r"^password: (\S+)$", run.stdout, re.M)
    assert found, run.stdout
    return found.group(1)


@pytest_asyncio.fixture
async def svc(settings: Settings, db_url: str) -> AsyncIterator[Services]:
    services = services_on(settings, db_url, NOW)
    yield services
    await services.close()


async def login(client: TestClient, name: str, password: str = DEMO_PASSWORD) -> int:
    resp = await client.post("/login", data={"login": name, "password": password,
                                             "next": "/panel"}, allow_redirects=False)
    return resp.status


async def audit_actions(svc: Services) -> list[str]:
    await svc.recorder.sync()
    async with svc.sessions() as s:
        return list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- production: no shipped secret ------------------------------------------------------

def test_production_refuses_to_serve_with_a_shipped_secret(sqlite_url: str) -> None:
    """`hotline serve` in production exits non-zero, naming the shipped key in one line."""
    both = hotline(sqlite_url, "serve", HOTLINE_ENVIRONMENT="production")
    assert both.returncode == 2
    [line] = both.stderr.strip().splitlines()
    assert "refusing to start in production" in line
    assert "ami.secret" in line and "panel.secret" in line and "HOTLINE_AMI__SECRET" in line
    one = hotline(sqlite_url, "serve", HOTLINE_ENVIRONMENT="production",
                  HOTLINE_PANEL__SECRET="a-secret-nobody-else-has-0123456789abcdef")
    assert one.returncode == 2
    assert one.stderr.strip() == ("hotline serve: refusing to start in production: ami.secret "
                                  "is the shipped value; set HOTLINE_AMI__SECRET")


def test_production_is_the_default_and_changed_secrets_pass() -> None:
    shipped = load_settings(DEFAULT_CONFIG, environ={})
    assert shipped.environment == "production"
    assert production_refusal(shipped) is not None
    changed = {"HOTLINE_AMI__SECRET": "our-own-ami-secret",
               "HOTLINE_PANEL__SECRET": "our-own-panel-secret-0123456789abcdef"}
    # The test contexts (unauthenticated calls into the hotline) are refused as well.
    with_tests = load_settings(DEFAULT_CONFIG, environ=changed)
    assert production_refusal(with_tests) == (
        "refusing to start in production: asterisk.load_test_contexts is on; "
        "set HOTLINE_ASTERISK__LOAD_TEST_CONTEXTS=false")
    ready = load_settings(DEFAULT_CONFIG, environ={
        **changed, "HOTLINE_ASTERISK__LOAD_TEST_CONTEXTS": "false"})
    assert production_refusal(ready) is None
    development = load_settings(DEFAULT_CONFIG, environ={"HOTLINE_ENVIRONMENT": "development"})
    assert production_refusal(development) is None


# --- demo data and the first administrator --------------------------------------------

async def test_demo_never_in_production_nor_into_a_database_with_other_data(
        sqlite_url: str) -> None:
    refused = hotline(sqlite_url, "demo", HOTLINE_ENVIRONMENT="production")
    assert refused.returncode == 2 and "production" in refused.stderr
    assert shown_password(hotline(sqlite_url, "init"))
    mixed = hotline(sqlite_url, "demo")
    assert mixed.returncode == 2
    assert "not the demo's" in mixed.stderr and "staff admin" in mixed.stderr

    engine = make_engine(sqlite_url)
    async with engine.connect() as conn:
        logins = list((await conn.execute(text("SELECT login FROM staff"))).scalars())
    await engine.dispose()
    assert logins == ["admin"], "nothing of the demo was written"


@SQLITE
async def test_demo_runs_again_on_its_own_data_never_on_other(
    settings: Settings, svc: Services, tmp_path: Path
) -> None:
    first = await seed_demo(svc.settings, today=NOW.date())
    assert await seed_demo(svc.settings, today=NOW.date()) == first, "seeded: nothing written"
    url = f"sqlite+aiosqlite:///{tmp_path}/other.sqlite3"
    upgrade(url)
    other = services_on(settings, url, NOW)
    try:
        async with other.sessions() as s, s.begin():
            s.add(Citizen(surname="Орлова", first_name="Нина"))
        with pytest.raises(DemoRefused, match="citizens"):
            await seed_demo(other.settings, today=NOW.date())
    finally:
        await other.close()


@SQLITE
async def test_init_prints_a_password_that_logs_in_once_only(
    svc: Services, db_url: str, client: TestClient
) -> None:
    """R-X2: the first administrator, on an empty database, through the real panel."""
    password = shown_password(hotline(db_url, "init", "--login", "chief"))
    assert len(password) >= passwords.MIN_LENGTH
    assert await login(client, "chief", password) == 303
    assert (await client.get("/panel", allow_redirects=False)).status == 200
    again = hotline(db_url, "init", "--login", "second")
    assert again.returncode == 2 and "Администратор уже есть" in again.stderr
    async with svc.sessions() as s:
        assert list(await s.scalars(select(Staff.login))) == ["chief"]


@SQLITE
async def test_staff_add_checks_what_it_is_given(svc: Services, db_url: str) -> None:
    await seed_demo(svc.settings, today=NOW.date())
    args = ["staff", "add", "novikova", "--surname", "Новикова", "--first-name", "Ирина",
            "--role", "operator", "--department", "Обращения", "--extension", "1004",
            "--email", "novikova@example.org"]
    assert shown_password(hotline(db_url, *args))
    twice = hotline(db_url, *args)
    assert twice.returncode == 2 and "уже занят" in twice.stderr
    taken = hotline(db_url, *args[:2], "novikov2", *args[3:])
    assert taken.returncode == 2 and "1004 уже закреплён" in taken.stderr
    bad = hotline(db_url, "staff", "add", "x y", "--surname", "А", "--first-name", "Б",
                  "--role", "operator", "--department", "Обращения")
    assert bad.returncode == 2 and "Логин" in bad.stderr
    async with svc.sessions() as s:
        added = await s.scalar(select(Staff).where(Staff.login == "novikova"))
    assert added is not None and added.email == "novikova@example.org"
    assert added.extension == "1004" and added.password_hash.startswith("$argon2id$")


# --- passwords end sessions; tokens expire, are revoked, stop with the employee ----------

@SQLITE
async def test_a_changed_password_or_disabling_ends_open_sessions(
    svc: Services, db_url: str, client: TestClient
) -> None:
    await seed_demo(svc.settings, today=NOW.date())
    assert await login(client, "ivanova") == 303
    assert (await client.get("/panel", allow_redirects=False)).status == 200
    new = shown_password(hotline(db_url, "staff", "password", "ivanova"))
    gone = await client.get("/panel", allow_redirects=False)
    assert gone.status == 303 and gone.headers["Location"].startswith("/login"), \
        "the old cookie no longer works"
    assert await login(client, "ivanova") == 401, "the old password no longer works"
    assert await login(client, "ivanova", new) == 303
    phone = shown_phone_password(hotline(db_url, "phones", "list"), "1001")
    disabled = hotline(db_url, "staff", "disable", "ivanova")
    assert disabled.returncode == 0 and "phone 1001: new SIP password" in disabled.stdout
    assert shown_phone_password(hotline(db_url, "phones", "list"), "1001") != phone, \
        "a workspace left open no longer registers the leaver's phone"
    assert (await client.get("/panel", allow_redirects=False)).status == 303
    assert await login(client, "ivanova", new) == 401
    assert "password_set" in await audit_actions(svc)


@SQLITE
async def test_tokens_expire_are_revoked_and_stop_with_the_employee(
    svc: Services, db_url: str, client: TestClient
) -> None:
    await seed_demo(svc.settings, today=NOW.date())
    svc.clock = lambda: datetime.now(UTC)

    def token(days: str = "30") -> str:
        run = hotline(db_url, "api-token", "create", "--login", "smirnova", "--name", "BI",
                      "--days", days)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    async def status(value: str) -> int:
        resp = await client.get("/api/v1/appeals", headers={"Authorization": f"Bearer {value}"})
        return resp.status

    assert hotline(db_url, "api-token", "create", "--login", "smirnova", "--name", "BI",
                   "--days", "0").returncode == 2
    short, revoked = token("1"), token()
    assert await status(short) == 200
    svc.clock = lambda: datetime.now(UTC) + timedelta(days=1, minutes=1)
    assert await status(short) == 401, "expired"
    assert await status(revoked) == 200
    async with svc.sessions() as s:
        ids = list(await s.scalars(select(ApiToken.id).order_by(ApiToken.id)))
    assert hotline(db_url, "api-token", "revoke", str(ids[1])).returncode == 0
    assert await status(revoked) == 401, "revoked"
    listed = hotline(db_url, "api-token", "list").stdout
    assert f"{ids[1]}\tBI\tsmirnova" in listed and "revoked" in listed
    kept = token()
    assert await status(kept) == 200
    assert hotline(db_url, "staff", "disable", "smirnova").returncode == 0
    answer = await client.get("/api/v1/appeals", headers={"Authorization": f"Bearer {kept}"})
    assert answer.status == 401 and "отключён" in (await answer.json())["error"]


# --- a SIP password per operator phone ----------------------------------------------------

def test_each_phone_has_its_own_password_in_pjsip_conf(
    settings: Settings, sqlite_url: str, tmp_path: Path
) -> None:
    own = settings.model_copy(update={"database": settings.database.model_copy(
        update={"url": sqlite_url})})
    render_config(own, tmp_path, etc_dir=str(tmp_path), run_dir="/var/lib/asterisk")
    stored = passwords_for_render(own)
    assert list(stored) == own.asterisk.operator_extensions
    assert len(set(stored.values())) == len(stored), "no two phones share a password"
    conf = (tmp_path / "pjsip.conf").read_text()
    for extension, password in stored.items():
        assert re.search(rf"\[{extension}\]\ntype = auth\nauth_type = userpass\n"
                         rf"username = {extension}\npassword = {password}\n", conf)
    listed = hotline(sqlite_url, "phones", "list").stdout.splitlines()
    assert listed == [f"{ext}\t-\t{pw}" for ext, pw in stored.items()]
    unknown = hotline(sqlite_url, "phones", "regenerate", "9999")
    assert unknown.returncode == 2


async def test_the_running_asterisk_takes_each_phone_only_with_its_own_password(
    settings: Settings, asterisk: DevAsterisk
) -> None:
    """A phone registering over SIP must authenticate with its own password; another
    phone's is refused; a regenerated one reaches the running Asterisk at once."""
    bind = settings.asterisk.sip_bind
    stored = await asyncio.to_thread(passwords_for_render, settings)
    first, second = settings.asterisk.operator_extensions[:2]
    assert await asyncio.to_thread(register, bind, first, stored[first]) == 200
    assert await asyncio.to_thread(register, bind, second, stored[second]) == 200
    assert await asyncio.to_thread(register, bind, first, stored[second]) in (401, 403)
    run = await asyncio.to_thread(hotline, settings.database.url, "phones", "regenerate", first)
    assert run.returncode == 0 and "res_pjsip reloaded" in run.stdout, run.stdout
    new = run.stdout.split()[1]
    assert new != stored[first]
    assert await asyncio.to_thread(register, bind, first, stored[first]) in (401, 403)
    assert await asyncio.to_thread(register, bind, first, new) == 200


# --- login limits, hashing off the loop, small bodies ----------------------------------

@SQLITE
async def test_login_attempts_are_limited_per_address_and_per_login(
    settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "SLOWDOWN_SECONDS", 0.001)
    svc = services_on(settings, db_url, NOW, panel={"login_failures_per_address": 4,
                                                     "login_failures_per_login": 3})
    await seed_demo(svc.settings, today=NOW.date())
    server = TestServer(init_app(svc), host="127.0.0.1")
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    try:
        async with TestClient(server) as here, \
                TestClient(server, connector=other) as there:
            for _ in range(3):
                assert await login(here, "ivanova", "wrong password") == 401
            throttled = await here.post("/login", data={"login": "ivanova",
                                                        "password": DEMO_PASSWORD})
            assert throttled.status == 429
            assert "Слишком много неудачных попыток входа" in await throttled.text()
            assert await login(there, "Ivanova") == 429, "per login, from any address"
            assert await login(here, "petrov") == 303, "another login from the same address"
            for n in range(4):
                assert await login(there, f"nobody{n}", "guess") == 401
            assert await login(there, "sidorova") == 429, "per address, whichever login"
            assert await login(here, "sidorova") == 303
    finally:
        await svc.recorder.sync()
        actions = await audit_actions(svc)
        await svc.close()
    assert actions.count("login_throttled") == 3


@SQLITE
async def test_passwords_are_checked_off_the_event_loop_a_few_at_a_time(
    svc: Services, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_demo(svc.settings, today=NOW.date())
    real, lock = passwords.verify, threading.Lock()
    running, most, threads = 0, 0, set()

    def counted(hashed: str, password: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        time.sleep(0.05)
        try:
            return real(hashed, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(passwords, "verify", counted)
    logins = ["ivanova", "petrov", "sidorova", "kuznetsov", "smirnova", "orlov"] * 2
    statuses = await asyncio.gather(*(login(client, name) for name in logins))
    assert statuses == [303] * len(logins)
    assert most == passwords.HASH_SLOTS, "bounded, and more than one at a time"
    assert threading.get_ident() not in threads, "never on the event loop's thread"


@SQLITE
async def test_bodies_are_small_on_login_and_large_only_for_the_csv_import(
    svc: Services, client: TestClient
) -> None:
    await seed_demo(svc.settings, today=NOW.date())
    big = await client.post("/login", data=b"login=x&password=" + b"a" * (20 * 1024 * 1024),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status == 413
    assert await login(client, "ivanova") == 303
    # A logged-in employee's form may be longer than anyone's.
    page = await client.get("/panel")
    csrf = re.search(r'name="_csrf" value="([^"]+)"', await page.text())
    assert csrf
    out = await client.post("/logout", data={"_csrf": csrf.group(1), "pad": "я" * 50_000},
                            allow_redirects=False)
    assert out.status == 303
    async with svc.sessions() as s, s.begin():
        staff_id = await s.scalar(select(Staff.id).where(Staff.login == "kuznetsov"))
        s.add(ApiToken(name="СЭДД", token_hash=token_hash("csv-token"), staff_id=staff_id))
    header = ("reg_number,registered_on,channel,surname,email,topic,text\n")
    rows = "".join(f"77{n:02d},24.11.2026,почта,Лебедева,l{n}@example.org,Пособия,"
                   f"{'Прошу разъяснить. ' * 5000}\n" for n in range(12))
    body = (header + rows).encode()
    assert len(body) > 1.5 * API_BODY_BYTES
    imported = await client.post("/api/v1/appeals/import", data=body,
                                 headers={"Authorization": "Bearer csv-token"})
    assert imported.status == 200, await imported.text()
    assert (await imported.json())["imported"] == 12
