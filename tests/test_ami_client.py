"""Our AMI wrapper: checked pings, back-off reconnect, no re-sent actions, errors raised."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ivr.ami import AMIActionError, AMIClient, AMIConnectionLost, AMINotConnected
from ivr.asterisk_dev import DevAsterisk
from ivr.settings import Settings
from ivr.simulate import wait_until

from .support.fake_ami import FakeAMI


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeAMI]:
    server = FakeAMI()
    await server.start()
    yield server
    await server.close()


async def test_unanswered_ping_is_noticed_and_the_link_rebuilt(fake: FakeAMI) -> None:
    client = AMIClient("127.0.0.1", fake.port, "u", "secret-123", ping_interval=0.3,
                       action_timeout=0.5, reconnect_min_delay=0.1)
    await client.start()
    try:
        await client.wait_connected(5)
        fake.answer_pings = False  # the socket stays open, Asterisk "hangs"
        await wait_until(lambda: _at_least(fake, 2), 10, "client reconnects")
        fake.answer_pings = True
        await client.wait_connected(5)
        assert client.connections >= 2
    finally:
        await client.close()


async def _at_least(fake: FakeAMI, n: int) -> bool:
    return fake.connections >= n


async def test_a_link_that_stays_up_starts_no_task_per_ping(fake: FakeAMI) -> None:
    """One task waits for the link's loss while it lasts. A new one per ping interval made
    an idle service look busy, and a test that looks for tasks left running after it saw
    the session's AMI link's latest one."""
    client = AMIClient("127.0.0.1", fake.port, "u", "secret-123", ping_interval=0.05,
                       action_timeout=0.5)
    await client.start()
    try:
        await client.wait_connected(5)
        pings = _pings(fake)
        before = asyncio.all_tasks()
        await wait_until(lambda: _pinged(fake, pings + 4), 10, "four pings answered")
        started = [t for t in asyncio.all_tasks() - before if not t.done()]
        assert started == [], "tasks started while the link was up and idle"
    finally:
        await client.close()


def _pings(fake: FakeAMI) -> int:
    return sum(1 for action in fake.received if action.get("Action") == "Ping")


async def _pinged(fake: FakeAMI, n: int) -> bool:
    return _pings(fake) >= n


async def test_action_in_flight_fails_and_is_never_resent(fake: FakeAMI) -> None:
    client = AMIClient("127.0.0.1", fake.port, "u", "secret-123", ping_interval=30,
                       reconnect_min_delay=0.1)
    await client.start()
    try:
        await client.wait_connected(5)
        fake.drop_on_action = "Originate"
        with pytest.raises(AMIConnectionLost):
            await client.originate(Channel="Local/1@x", Context="c", Exten="s", Priority="1")
        fake.drop_on_action = None
        await wait_until(lambda: _at_least(fake, 2), 10, "reconnected")
        await client.wait_connected(5)
        await client.action({"Action": "Ping"})
        originates = [r for r in fake.received if r.get("Action") == "Originate"]
        assert len(originates) == 1, "panoramisk would have sent it again after reconnecting"
    finally:
        await client.close()


async def test_close_returns_even_when_a_cancellation_is_swallowed(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's wait_for may turn a cancellation into the inner call's own error (a
    refused connect); the supervisor then retried for ever and a service whose panel
    could not bind its port never exited. close() stops it all the same."""
    client = AMIClient("127.0.0.1", 1, "u", "secret-123", reconnect_max_delay=30)
    swallowed = 0

    async def connect() -> None:
        nonlocal swallowed
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed += 1
            raise OSError("connect refused") from None

    monkeypatch.setattr(client, "_connect", connect)
    await client.start()
    await asyncio.sleep(0.05)
    supervisor = client._supervisor
    await asyncio.wait_for(client.close(), 5)
    assert swallowed == 1 and supervisor is not None and supervisor.done()
    await client.start()   # and a closed client may be started again
    await asyncio.sleep(0.05)
    assert client._supervisor is not None and not client._supervisor.done()
    await asyncio.wait_for(client.close(), 5)
    assert swallowed == 2


async def test_not_connected_raises_at_once() -> None:
    client = AMIClient("127.0.0.1", 1, "u", "secret-123")
    with pytest.raises(AMINotConnected):
        await client.action({"Action": "Ping"})


async def test_error_responses_and_forbidden_actions_raise(ami: AMIClient) -> None:
    with pytest.raises(AMIActionError, match="No such queue"):
        await ami.action({"Action": "QueueAdd", "Queue": "nope", "Interface": "Local/1@x"})
    # Least privilege: the service's AMI users never get the `command` class.
    with pytest.raises(AMIActionError, match="Permission denied"):
        await ami.action({"Action": "Command", "Command": "core show uptime"})


async def test_reconnects_after_asterisk_restart(
    settings: Settings, asterisk: DevAsterisk
) -> None:
    client = AMIClient(settings.ami.host, settings.ami.port, settings.ami.username,
                       settings.ami.secret, ping_interval=1, reconnect_min_delay=0.2,
                       reconnect_max_delay=1)
    await client.start()
    try:
        await client.wait_connected(10)
        await asyncio.to_thread(asterisk.down)
        await wait_until(lambda: _disconnected(client), 10, "link loss noticed")
        await asyncio.to_thread(asterisk.up)
        await client.wait_connected(20)
        reply = await client.action({"Action": "Ping"})
        assert reply["Ping"] == "Pong"
        assert client.connections >= 2
    finally:
        await client.close()


async def _disconnected(client: AMIClient) -> bool:
    return not client.connected.is_set()
