"""The panel under load (issue 5): p50/p95 latency of the supervisor's dashboard, the call
list with filters, the citizen's card and the knowledge-base search, with 20 concurrent
users, on SQLite and PostgreSQL, over five years of a busy hotline (:mod:`bench.generate`).

The panel runs as the service runs it (``hotline serve --only web``, its own process); the
users are aiohttp clients here, each logged in with its own session, each request one after
the other. Databases are generated once and kept in ``var/bench/`` (SQLite) or in a
throwaway cluster (PostgreSQL, port 25432).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time

import aiohttp

from ivr.db.migrate import upgrade
from ivr.settings import PROJECT_ROOT, Database, load_settings

from .generate import generate

BENCH_DIR = PROJECT_ROOT / "var" / "bench"
PORT = 28080
SCENARIOS = ("dashboard", "call list", "citizen card", "kb search")
QUERIES = ["пособие", "компенсация жилья", "справка", "пенсия ветеран", "порядок назначения",
           "субсидия оплата", "материнский капитал", "больничный"]


def _serve(url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    # Development: the shipped secrets are fine on loopback, and production refuses them.
    env.update({"HOTLINE_ENVIRONMENT": "development",
                "HOTLINE_DATABASE__URL": url, "HOTLINE_PANEL__PORT": str(PORT),
                "HOTLINE_PANEL__REUSE_PORT": "true",
                # No Asterisk in this benchmark: the wallboard says so and the rest works.
                "HOTLINE_AMI__PORT": "1", "HOTLINE_TTS__ENGINE": "espeak"})
    return subprocess.Popen([sys.executable, "-m", "ivr.cli", "serve", "--only", "web"],
                            env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def _wait_up(base: str) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError("the panel did not start")


async def _user(base: str, login: str, rounds: int, rng: random.Random, numbers: list[str],
                operators: list[str], out: dict[str, list[float]], think: float = 0) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(f"{base}/login", data={"login": login, "password": "hotline-demo",
                                                    "next": "/panel"}) as r:
            if r.status != 200:
                raise RuntimeError(f"login {login}: {r.status}")
        for _ in range(rounds):
            for scenario in SCENARIOS:
                if scenario == "dashboard":
                    path = f"/panel/supervisor?period={rng.choice(['today', 'week', 'month'])}"
                elif scenario == "call list":
                    path = (f"/panel/supervisor/calls?period=month&operator="
                            f"{rng.choice(operators)}")
                elif scenario == "citizen card":
                    path = f"/panel/workspace/card?caller={rng.choice(numbers)}"
                else:
                    path = f"/panel/workspace/kb?q={rng.choice(QUERIES)}"
                t0 = time.perf_counter()
                async with http.get(base + path) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{path}: {r.status}")
                out[scenario].append((time.perf_counter() - t0) * 1000)
                if think:   # a person reads the page before the next click
                    await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))


async def _logins(url: str, n: int) -> tuple[list[str], list[str], list[str]]:
    """``n`` supervisors sharing the demo password, some callers' numbers, operator ids."""
    from sqlalchemy import insert, select, update

    from ivr.db.engine import make_engine
    from ivr.db.models import Call, Role, Staff
    from ivr.passwords import hash_password

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            dept = await conn.scalar(select(Staff.department_id).limit(1))
            have = set(await conn.scalars(select(Staff.login)))
            password = hash_password("hotline-demo")
            for i in range(n):
                if f"boss{i}" not in have:
                    await conn.execute(insert(Staff).values(
                        login=f"boss{i}", surname="Руководитель", first_name=str(i),
                        patronymic="", position="руководитель", department_id=dept,
                        role=Role.SUPERVISOR.value, phone="", competence="",
                        password_hash=password, active=True, failed_logins=0))
            # Every operator can be a supervisor's drill-down, and log in for the card.
            await conn.execute(update(Staff).where(Staff.password_hash == "")
                               .values(password_hash=password))
            numbers = list(await conn.scalars(select(Call.caller_number).where(
                Call.id % 997 == 0).limit(2000)))
            operators = [str(x) for x in await conn.scalars(select(Staff.id).where(
                Staff.role == Role.OPERATOR.value))]
    finally:
        await engine.dispose()
    return [f"boss{i}" for i in range(n)], numbers, operators


async def measure(url: str, users: int, rounds: int, think: float,
                  workers: int) -> dict[str, list[float]]:
    logins, numbers, operators = await _logins(url, users)
    servers = [_serve(url) for _ in range(workers)]
    base = f"http://127.0.0.1:{PORT}"
    out: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    try:
        await _wait_up(base)
        await asyncio.sleep(5)   # up a few seconds, as before supervisors arrive: figures ready
        rng = random.Random(7)
        # One warm-up round, not counted.
        await _user(base, logins[0], 1, rng, numbers, operators, {s: [] for s in SCENARIOS})
        await asyncio.gather(*(
            _user(base, login, rounds, random.Random(i), numbers, operators, out, think)
            for i, login in enumerate(logins)))
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
    return out


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def prepare(backend: str, calls: int) -> tuple[str, object]:
    settings = load_settings()
    cluster = None
    if backend == "sqlite":
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        path = BENCH_DIR / f"panel-{calls}.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        if path.exists():
            return url, None
    else:
        from tests.support.postgres import TestCluster

        cluster = TestCluster(port=25432)
        cluster.start()
        url = cluster.create_database(f"panel_{calls}_{time.monotonic_ns() % 10**9}")
    upgrade(url)
    print(f"generating {calls:,} calls on {backend}…", flush=True)
    counts = await generate(settings.model_copy(update={"database": Database(url=url)}),
                            calls=calls, appeals=calls // 5, receptions=calls // 20)
    print("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
    return url, cluster


async def main(backends: list[str], calls: int, users: int, rounds: int,
               thinks: list[float], workers: int) -> None:
    print(f"panel: {users} concurrent users, {rounds} rounds of {len(SCENARIOS)} requests "
          f"each, {workers} panel process(es); think time 0 = every user clicks again the "
          "moment a page arrives")
    for backend in backends:
        url, cluster = await prepare(backend, calls)
        try:
            for think in thinks:
                out = await measure(url, users, rounds, think, workers)
                print(f"{backend}, think {think:g} s: {'scenario':<14}{'requests':>9}"
                      f"{'p50 ms':>9}{'p95 ms':>9}")
                for scenario, values in out.items():
                    print(f"{'':<{len(backend) + 15}}{scenario:<14}{len(values):>9}"
                          f"{_pct(values, 50):>9.0f}{_pct(values, 95):>9.0f}", flush=True)
        finally:
            if cluster is not None:
                cluster.stop()  # type: ignore[attr-defined]

