"""AMI client: panoramisk's ``Manager`` for parsing and action bookkeeping, behind our wrapper.

What the wrapper adds, and why:

* reconnect with exponential back-off (panoramisk retries every 2 s flat, forever);
* a ping whose reply is checked (panoramisk pings but never reads the answer, so a
  half-dead link goes unnoticed);
* a timeout on every action, and ``Response: Error`` raised as :class:`AMIActionError`;
* actions in flight when the link drops fail with :class:`AMIConnectionLost` — panoramisk
  would re-send them after reconnecting, which for an ``Originate`` means dialling a
  citizen twice;
* a header name or value with CR, LF or NUL is refused before anything is sent
  (:class:`AMIHeaderError`): panoramisk writes ``key: value`` lines unescaped, and a line
  break in a pause reason would smuggle in an action of the sender's choosing;
* event handlers run as tasks we keep a reference to (panoramisk's ``ensure_future`` keeps
  none, so a task can be garbage-collected mid-run).

Events are subscribed in one table: ``client.subscribe("Newchannel", self._on_new_channel)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

log = logging.getLogger(__name__)

EventHandler = Callable[[Message], Awaitable[None] | None]
ConnectionHandler = Callable[[], Awaitable[None]]


class AMIError(Exception):
    pass


class AMINotConnected(AMIError):
    pass


class AMIConnectionLost(AMIError):
    pass


class AMITimeout(AMIError):
    pass


class AMIAuthError(AMIError):
    pass


class AMIHeaderError(AMIError, ValueError):
    """An action whose header name or value holds CR, LF or NUL: never sent. panoramisk
    writes ``key: value`` lines as they are, so a line break in a value would end the
    header and start another, or another action (an ``Originate`` of the sender's choice)."""


class AMIActionError(AMIError):
    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager with its own reconnect, pinger and re-send switched off."""

    def __init__(self, owner: AMIClient, **config: Any) -> None:
        super().__init__(**config)
        self._owner = owner

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        self._owner._link_lost(exc)

    async def send_awaiting_actions(self, *_: Any) -> None:
        self.awaiting_actions.clear()

    def dispatch(self, event: Message) -> list[str]:
        self._owner._dispatch(event)
        return []


class AMIClient:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        action_timeout: float = 5.0,
        ping_interval: float = 10.0,
        reconnect_min_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        events: str = "on",
    ) -> None:
        self.host, self.port = host, port
        self._username, self._secret = username, secret
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.reconnect_min_delay = reconnect_min_delay
        self.reconnect_max_delay = reconnect_max_delay
        self._events = events
        self._handlers: dict[str, list[EventHandler]] = defaultdict(list)
        # Per event name: its handlers, then the "*" ones (built on first use).
        self._table: dict[str, tuple[EventHandler, ...]] = {}
        self._on_connect: list[ConnectionHandler] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._manager: _Manager | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()
        self.connections = 0  # how many times a link was established (tests, metrics)
        self.last_error = ""  # why the latest attempt failed (`hotline doctor` says it)
        self.handler_errors = 0

    # --- subscription table -------------------------------------------------------------

    def subscribe(self, event: str, handler: EventHandler) -> None:
        """``event`` is an AMI event name, case-insensitive, or ``*`` for every event."""
        self._handlers[event.lower()].append(handler)
        self._table.clear()

    def on_connect(self, handler: ConnectionHandler) -> None:
        """Run after every (re)connection and login: the place to reconcile missed state."""
        self._on_connect.append(handler)

    def _dispatch(self, event: Message) -> None:
        name = str(event.get("Event", "")).lower()
        handlers = self._table.get(name)
        if handlers is None:
            handlers = self._table[name] = (*self._handlers.get(name, ()),
                                            *self._handlers.get("*", ()))
        for handler in handlers:
            try:
                result = handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("AMI handler for %s failed", name)
                continue
            if asyncio.iscoroutine(result):
                self._spawn(result, name)

    def _spawn(self, coro: Awaitable[Any], what: str) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, what))

    def _task_done(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.handler_errors += 1
            log.error("AMI task for %s failed", what, exc_info=task.exception())

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._supervisor is None:
            self._closing = False   # (a client may be started again after close())
            self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")

    async def wait_connected(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            raise AMINotConnected(f"no AMI connection to {self.host}:{self.port}") from None

    async def close(self) -> None:
        """Stop reconnecting and drop the link. Python 3.11's ``wait_for`` can swallow a
        cancellation that meets its inner call's end (a refused connect), and the
        supervisor then went on retrying for ever, holding up the service's shutdown: it
        is told to stop, and cancelled again until it has."""
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        while supervisor is not None and not supervisor.done():
            supervisor.cancel()
            await asyncio.wait({supervisor}, timeout=1.0)
        self._drop_link()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _supervise(self) -> None:
        delay = self.reconnect_min_delay
        while not self._closing:
            try:
                await self._connect()
                delay = self.reconnect_min_delay
                await self._watch()
            except asyncio.CancelledError:
                raise
            except AMIAuthError as exc:
                log.error("AMI login refused (%s); check ami.username / ami.secret", exc)
                self.last_error = f"login refused: {exc}"
                delay = self.reconnect_max_delay
            except (OSError, AMIError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("AMI %s:%d unavailable: %s; retrying in %.1fs",
                            self.host, self.port, exc, delay)
            self._drop_link()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_delay)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        manager = _Manager(self, host=self.host, port=self.port, loop=loop,
                           ping_delay=10**9, reconnect_timeout=10**9)
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(AMIProtocol, self.host, self.port), self.action_timeout)
        made: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        made.set_result((transport, protocol))
        manager.connection_made(made)
        if manager.pinger is not None:
            manager.pinger.cancel()
            manager.pinger = None
        self._manager = manager
        reply = await self.action({"Action": "Login", "Username": self._username,
                                   "Secret": self._secret, "Events": self._events},
                                  check=False)
        if not reply.success:
            raise AMIAuthError(str(reply.get("Message", "authentication failed")))
        self.connections += 1
        self.connected.set()
        log.info("AMI connected to %s:%d", self.host, self.port)
        for handler in self._on_connect:
            self._spawn(handler(), "on_connect")

    async def _watch(self) -> None:
        """Ping and check the reply; raise when the link is lost or a ping goes unanswered.
        One task waits for the loss for the link's life (a new one per ping interval was
        a task started every few seconds: an idle service never looked idle)."""
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            while True:
                done, _ = await asyncio.wait({lost}, timeout=self.ping_interval)
                if done:
                    raise AMIConnectionLost("connection closed by Asterisk")
                reply = await self.action({"Action": "Ping"}, check=False)
                if str(reply.get("Ping", "")).lower() != "pong" and not reply.success:
                    raise AMIConnectionLost(f"bad ping reply: {dict(reply)}")
        finally:
            lost.cancel()

    def _link_lost(self, exc: Exception | None) -> None:
        self.connected.clear()
        self._lost.set()
        if self._manager is not None:
            _fail_in_flight(self._manager)

    def _drop_link(self) -> None:
        manager, self._manager = self._manager, None
        self.connected.clear()
        if manager is not None and getattr(manager, "protocol", None) is not None:
            with contextlib.suppress(Exception):
                manager.protocol.close()
            _fail_in_flight(manager)

    # --- actions ------------------------------------------------------------------------

    async def action(
        self, action: dict[str, Any], *, timeout: float | None = None, check: bool = True,
        as_list: bool | None = None,
    ) -> Any:
        """Send one action and wait for its complete reply (a Message, or a list of them for
        actions that answer with an event list). ``Response: Error`` raises unless ``check``
        is false; a header with a line break or NUL raises :class:`AMIHeaderError`."""
        _check_headers(action)
        manager = self._manager
        if manager is None or getattr(manager, "protocol", None) is None or manager.protocol.closed:
            raise AMINotConnected("AMI is not connected")
        name = str(action.get("Action", "?"))
        # panoramisk looks up the Async header of any action whose reply ends in
        # "successfully queued" (PlayDTMF's, for one): absent, the lookup raises inside
        # data_received and the connection stops. Asterisk ignores it where it means nothing.
        action = {"Async": "false", **action}
        future = manager.send_action(dict(action), as_list=as_list)
        try:
            reply = await asyncio.wait_for(asyncio.shield(future),
                                           timeout or self.action_timeout)
        except TimeoutError:
            future.cancel()
            manager.responses.pop(getattr(future, "action_id", None), None)
            raise AMITimeout(f"{name}: no reply within {timeout or self.action_timeout:g}s") \
                from None
        first = reply[0] if isinstance(reply, list) else reply
        if check and str(first.get("Response", "")).lower() in ("error", "failure", "fail"):
            raise AMIActionError(name, str(first.get("Message", "error")))
        return reply

    async def queue_add(self, queue: str, interface: str, member_name: str,
                        *, paused: bool = False) -> Any:
        # as_list=False: panoramisk takes "Added interface to queue" for the start of an
        # event list and would wait for more replies that never come.
        return await self.action({"Action": "QueueAdd", "Queue": queue, "Interface": interface,
                                  "MemberName": member_name, "Paused": str(paused).lower()},
                                 as_list=False)

    async def queue_remove(self, queue: str, interface: str) -> Any:
        return await self.action({"Action": "QueueRemove", "Queue": queue,
                                  "Interface": interface}, as_list=False)

    async def originate(self, **fields: Any) -> Any:
        """Originate asynchronously; the outcome arrives as an ``OriginateResponse`` event."""
        return await self.action({"Action": "Originate", "Async": "true", **fields})


_FORBIDDEN = re.compile(r"[\r\n\0]")


def _check_headers(action: dict[str, Any]) -> None:
    """Every header name and value (each item of a list, as panoramisk writes one line per
    item) free of CR, LF and NUL."""
    for name, value in action.items():
        items = value if isinstance(value, (list, tuple)) else (value,)
        for text in (str(name), *(str(item) for item in items)):
            if _FORBIDDEN.search(text):
                what = str(action.get("Action", "?"))[:40]
                raise AMIHeaderError(f"{what!r}: header {str(name)[:40]!r} holds a line "
                                     "break or NUL; not sent")


def _fail_in_flight(manager: _Manager) -> None:
    """Fail every action still waiting for a reply; never let panoramisk re-send it.

    panoramisk's ``close()`` moves unanswered actions from ``responses`` to
    ``awaiting_actions`` (to re-send later), so both are emptied here.
    """
    pending = [*manager.awaiting_actions, *(manager.responses or {}).values()]
    manager.awaiting_actions.clear()
    for action in pending:
        if not action.future.done():
            action.future.set_exception(AMIConnectionLost("AMI connection lost"))
