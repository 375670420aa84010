"""``hotline doctor``: is this install ready to take calls? One line per check, in the
order a problem is best fixed in; the exit status is non-zero when any check failed.

Every check is bounded in time and never changes anything: it may run beside the service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import aiosmtplib

from .ami import AMIClient
from .settings import Settings

TIMEOUT = 5.0
# AMI actions the service sends (ivr/, web/): each must be allowed by manager.conf's
# write classes, or a feature fails only when first used.
REQUIRED_ACTIONS = (
    "Originate", "Hangup", "Setvar", "Getvar", "Status", "CoreShowChannels",
    "BlindTransfer", "QueueAdd", "QueueRemove", "QueuePause", "QueueStatus",
    "QueueSummary", "QueueReload",
)
# Actions a feature can do without (it degrades quietly): named, not failed.
OPTIONAL_ACTIONS = {"DeviceStateList": "colleagues' phone state on the transfer form "
                                       "(res_manager_devicestate.so)"}


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL':<5}{self.check:<10}{self.detail}"


class Failed(Exception):
    """A check's failure, phrased as the rest of its line."""


async def check_database(settings: Settings) -> str:
    from .db.engine import SQLITE_PREFIX
    from .db.migrate import applied_revisions, head_revisions

    url = settings.database.url
    path = Path(url.removeprefix(SQLITE_PREFIX))
    if url.startswith(SQLITE_PREFIX) and not await asyncio.to_thread(path.is_file):
        # Connecting would create an empty file: the doctor changes nothing.
        raise Failed(f"no database file {path}: run `hotline db upgrade`")
    try:
        applied = await applied_revisions(settings.database.url)
    except Exception as exc:
        raise Failed(f"unreachable: {_first_line(exc)}") from None
    heads = head_revisions()
    if applied != heads:
        at = ", ".join(sorted(applied)) or "no schema"
        raise Failed(f"at {at}, the code needs {', '.join(sorted(heads))}: "
                     "run `hotline db upgrade`")
    return f"reachable, schema at {', '.join(sorted(heads))}"


async def check_ami(settings: Settings) -> str:
    from .runner import make_ami

    cfg = settings.ami
    client = make_ami(settings)
    await client.start()
    try:
        if not await _logged_in(client):
            why = client.last_error or "no answer"
            raise Failed(f"{cfg.username}@{cfg.host}:{cfg.port}: {why}")
        # ListCommands lists only the actions this user may send, of the modules loaded.
        reply = await client.action({"Action": "ListCommands"})
        allowed = {str(key).lower() for key in dict(reply)}
        missing = [a for a in REQUIRED_ACTIONS if a.lower() not in allowed]
        if missing:
            raise Failed(f"logged in as {cfg.username}, but manager.conf does not allow "
                         f"(or no loaded module offers): {', '.join(missing)}")
        without = [f"{a}: {why}" for a, why in OPTIONAL_ACTIONS.items()
                   if a.lower() not in allowed]
        return (f"logged in as {cfg.username}, all {len(REQUIRED_ACTIONS)} actions allowed"
                + (f"; not available: {'; '.join(without)}" if without else ""))
    finally:
        await client.close()


async def _logged_in(client: AMIClient) -> bool:
    """Connected, or the first attempt's failure known (the client would retry for ever)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not client.connected.is_set() and not client.last_error:
        if asyncio.get_running_loop().time() > deadline:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.connected.wait(), 0.05)
    return client.connected.is_set()


async def check_agi(settings: Settings) -> str:
    """Asterisk's dialplan points at our FastAGI address, Asterisk's address is let in, and
    something listens there. (Connecting from Asterisk itself would need a test context,
    which production does not load.)"""
    from .runner import make_ami

    cfg = settings.agi
    expected = f"agi://{cfg.host}:{cfg.port}"
    client = make_ami(settings)
    await client.start()
    try:
        if not await _logged_in(client):
            raise Failed("cannot ask Asterisk for its AGI_URL: no AMI link (see ami)")
        url = str((await client.action({"Action": "Getvar", "Variable": "AGI_URL"}))
                  .get("Value") or "")
    finally:
        await client.close()
    if url != expected:
        raise Failed(f"the dialplan calls {url or 'nothing'}, the service listens at "
                     f"{expected}: run `hotline asterisk-config install`")
    asterisk = ip_address(settings.ami.host)
    if not any(asterisk in net for net in cfg.allowed_peers if net.version == asterisk.version):
        raise Failed(f"Asterisk's address {asterisk} is not in agi.allowed_peers")
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "") else cfg.host
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, cfg.port), TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise Failed(f"nothing listens at {expected} ({_first_line(exc)}): "
                     "is `hotline serve` (or `--only agi`) running?") from None
    writer.close()
    return f"{expected}, as the dialplan says"


async def check_prompts(settings: Settings) -> str:
    return await asyncio.to_thread(_prompts_rendered, settings)


def _prompts_rendered(settings: Settings) -> str:
    from .tts import PromptLibrary, TTSError

    prompts = PromptLibrary(settings.tts, settings.prompts)
    fixed = [name for name in settings.prompts if not prompts.is_template(name)]
    missing = []
    for name in fixed:
        try:
            prompts.path(name)
        except TTSError:
            missing.append(name)
            continue
        if not (prompts.root / "current" / f"{name}.wav").exists():
            missing.append(name)
    if missing:
        raise Failed(f"not rendered: {', '.join(missing[:5])}"
                     f"{' …' if len(missing) > 5 else ''}: run `hotline prompts render`")
    return f"{len(fixed)} rendered in {prompts.root}"


async def check_smtp(settings: Settings) -> str:
    cfg = settings.smtp
    smtp = aiosmtplib.SMTP(hostname=cfg.host, port=cfg.port, timeout=TIMEOUT,
                           start_tls=cfg.starttls, use_tls=False)
    try:
        await smtp.connect()
        if cfg.username:
            await smtp.login(cfg.username, cfg.password)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise Failed(f"{cfg.host}:{cfg.port}: {_first_line(exc)}") from None
    finally:
        with contextlib.suppress(Exception):
            await smtp.quit()
    return f"{cfg.host}:{cfg.port} answers{' and accepts the login' if cfg.username else ''}"


async def check_secrets(settings: Settings) -> str:
    from .shipped import env_name, production_refusal, shipped_secrets_in_use

    keys = shipped_secrets_in_use(settings)
    if keys:
        raise Failed("still the shipped value: " + ", ".join(
            f"{key} (set {env_name(key)})" for key in keys))
    refusal = production_refusal(settings)
    if refusal:
        raise Failed(refusal.removeprefix("refusing to start in production: "))
    return "none of the shipped secrets is in use"


CHECKS: dict[str, Callable[[Settings], Awaitable[str]]] = {
    "database": check_database,
    "secrets": check_secrets,
    "ami": check_ami,
    "agi": check_agi,
    "prompts": check_prompts,
    "smtp": check_smtp,
}


async def run_checks(settings: Settings) -> list[Finding]:
    found = []
    for name, check in CHECKS.items():
        try:
            detail = await asyncio.wait_for(check(settings), 3 * TIMEOUT)
            found.append(Finding(name, True, detail))
        except Failed as exc:
            found.append(Finding(name, False, str(exc)))
        except Exception as exc:  # a check that broke is a failed check, never a traceback
            found.append(Finding(name, False, f"{type(exc).__name__}: {_first_line(exc)}"))
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
