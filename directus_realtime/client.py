"""The asyncio driver around ``RealtimeProtocol``: the same code in Pyodide and in CPython.

It turns the machine's events into futures, async iterators and handler calls, keeps one timer
for ``next_deadline()``, and hands socket work to a transport. A transport is any callable
``transport(url, listener) -> socket`` where ``socket`` has ``send(text)`` and ``close()``, and
calls ``listener.socket_opened()``, ``listener.socket_message(text)``,
``listener.socket_closed(code, reason)``, ``listener.socket_error(error)`` and, when the
server answers the upgrade with an HTTP error, ``listener.socket_refused(status, reason)``.
The browser's is ``transports/browser.py`` (native ``WebSocket`` through the JS FFI); CPython's is
``transports/cpython.py`` (the ``websockets`` library). Nothing else differs between the two.

Portability: only the part of asyncio that MicroPython has too (``Event``, ``sleep``, tasks; no
futures, no ``call_later``), so PyScript's MicroPython runs this module unchanged.
"""

import asyncio
import sys
import time

from . import protocol as p
from . import writes as w
from .errors import ConnectionFailed, DirectusError, RealtimeError

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

    from .live import LiveQuery

EVENTS = ("open", "message", "close", "error")

# Opt-in debug logging: logging.getLogger("directus_realtime").setLevel(logging.DEBUG) shows
# every action and report of the core (CPython, Pyodide). MicroPython may have no logging.
try:
    import logging

    _log: "Any" = logging.getLogger("directus_realtime")
except ImportError:  # MicroPython without the logging module
    _log = None


# Pyodide and CPython have ensure_future; MicroPython's asyncio only create_task.
_spawn = getattr(asyncio, "ensure_future", None) or asyncio.create_task


def default_transport() -> "Callable[[str, Any], Any]":
    if sys.platform in ("emscripten", "webassembly"):  # Pyodide, MicroPython
        from .transports.browser import BrowserWebSocket

        return BrowserWebSocket
    from .transports.cpython import WebsocketsSocket

    return WebsocketsSocket


class Waiter:
    """A one-shot result, what ``asyncio.Future`` is (MicroPython has none): what ``connect()``,
    ``request()``, ``create()``, ``read()``... return.

    ``await`` it, or have ``add_done_callback(callback)`` call ``callback(waiter)`` the moment it
    is set. A callback runs inside the socket's message event, with no turn of the event loop in
    between: in PyScript a turn is a browser task, which a page that settles a JS Promise from
    Python can skip.
    """

    def __init__(self) -> None:
        self._event: Any = None  # made when awaited before it is done
        self._done = False
        self._result: object = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Waiter], object]] = []

    def done(self) -> bool:
        return self._done

    def result(self) -> object:
        """The result, or raise the error; ``RuntimeError`` when not done yet."""
        if not self._done:
            raise RuntimeError("Result is not set yet.")
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self) -> "BaseException | None":
        """The error (None if none); ``RuntimeError`` when not done yet."""
        if not self._done:
            raise RuntimeError("Result is not set yet.")
        return self._error

    def add_done_callback(self, callback: "Callable[[Waiter], object]") -> None:
        """Call ``callback(waiter)`` once done (now, if it is); an exception in it is printed."""
        if self._done:
            _safely(callback, self)
        else:
            self._callbacks.append(callback)

    def set_result(self, result: object) -> None:
        self._set(result, None)

    def set_exception(self, error: BaseException) -> None:
        self._set(None, error)

    def _set(self, result: object, error: "BaseException | None") -> None:
        if self._done:
            return
        self._done = True
        self._result = result
        self._error = error
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _safely(callback, self)

    def __await__(self) -> "Generator[Any, None, Any]":
        if not self._done:
            if self._event is None:
                self._event = asyncio.Event()
            wait = self._event.wait()
            yield from getattr(wait, "__await__", lambda: wait)()  # (MicroPython: a generator)
        return self.result()

    __iter__ = __await__  # what MicroPython's ``await`` calls (and asyncio.Future has too)


def _then(waiter: "Waiter", transform: "Callable[[Any], Any]") -> "Waiter":
    """A ``Waiter`` of ``transform(result)``, done when ``waiter`` is (errors pass through)."""
    out = Waiter()

    def settle(done: Waiter) -> None:
        error = done.exception()
        if error is None:
            out.set_result(transform(done.result()))
        else:
            out.set_exception(error)

    waiter.add_done_callback(settle)
    return out


class Subscription:
    """What ``subscribe()`` returns: an async iterator of the subscription's messages.

    Each message is Directus's own ``{type: "subscription", event, data, uid}``; the first is
    ``init``. Iteration stops after ``unsubscribe()`` and raises when the connection is gone for
    good (credentials refused, retries used up, ``disconnect()``), so a loop never hangs.

    ``listen(callback)`` is the other way to consume it: each message handed to the callback
    the moment it arrives, with ``await wait_closed()`` for the end.
    """

    def __init__(self, client: "RealtimeClient", key: int, uid: "str | None") -> None:
        self._client = client
        self.key = key
        self.uid = uid
        self._queue: list[dict[str, Any]] = []
        self._waiters: list[Waiter] = []
        self._callback: Callable[[dict[str, Any]], object] | None = None
        self._ended = False
        self._error: BaseException | None = None

    @property
    def subscription(self) -> "Subscription":
        """The SDK returns ``{subscription, unsubscribe}``; this mirrors ``.subscription``."""
        return self

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> "dict[str, Any]":
        while not self._queue:
            if self._ended:
                self._raise_end()
                raise StopAsyncIteration
            await self._wait()
        return self._queue.pop(0)

    def listen(self, callback: "Callable[[dict[str, Any]], object]") -> None:
        """Hand each message to ``callback(message)`` as it arrives, instead of ``async for``.

        The callback runs inside the socket's message event, with no turn of the event loop in
        between; an ``async for`` loop resumes one turn later, and in a browser a turn is a
        task of its own, which a page rendering each message feels. Messages already queued
        are handed over at once. An exception in the callback is printed and does not end the
        subscription. ``wait_closed()`` tells when it ends.
        """
        self._callback = callback
        queued, self._queue = self._queue, []
        for message in queued:
            _safely(callback, message)

    async def wait_closed(self) -> None:
        """Return when the subscription has ended by ``unsubscribe()``; raise what ended it
        otherwise (the connection gone for good, ``disconnect()``)."""
        while not self._ended:
            await self._wait()
        self._raise_end()

    def unsubscribe(self) -> None:
        self._client._unsubscribe(self)

    def _push(self, message: "dict[str, Any]") -> None:
        if self._callback is not None:
            _safely(self._callback, message)
            return
        self._queue.append(message)
        self._wake()

    def _end(self, error: "BaseException | None") -> None:
        self._ended = True
        self._error = error
        self._wake()

    async def _wait(self) -> None:
        waiter = Waiter()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set_result(None)

    def _raise_end(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class RealtimeClient:
    """A Directus realtime connection: the SDK's ``createDirectus(url).with(realtime())``.

    Build one with ``create_directus(url).with_(static_token(t)).with_(realtime())`` or directly::

        client = RealtimeClient("http://127.0.0.1:8055", access_token="...")
        await client.connect()
        sub = await client.subscribe("messages", event="create", query={"fields": ["*"]})
        async for message in sub:
            print(message)

    The keyword arguments are ``RealtimeProtocol``'s (each documented there), with
    ``reconnect`` as True, False, a dict (``delay``, ``max_delay``, ``retries``) or a
    ``Backoff``; and ``token_provider``, a callable (maybe async) that returns a fresh access
    token, ``transport`` (see the module docstring) and ``outbox_store``, where unconfirmed
    writes are kept (``writes.py``: memory by default, ``JsonFileStore(path)`` in CPython).
    """

    def __init__(
        self,
        url: str,
        *,
        access_token: "str | None" = None,
        email: "str | None" = None,
        password: "str | None" = None,
        refresh_token: "str | None" = None,
        token_provider: "Callable[[], Any] | None" = None,
        auth_mode: str = "handshake",
        heartbeat: bool = True,
        heartbeat_period: float = 30.0,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        reconnect: object = True,
        outbox_limit: int = 1000,
        ws_url: "str | None" = None,
        transport: "Callable[[str, Any], Any] | None" = None,
        request_attempts: int = p.REQUEST_ATTEMPTS,
        stable_after: "float | None" = None,
        send_rate: "float | None" = p.SEND_RATE,
        outbox_store: object = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token_provider = token_provider
        self._proto = p.RealtimeProtocol(
            self.url,
            auth_mode=auth_mode,
            access_token=access_token,
            email=email,
            password=password,
            refresh_token=refresh_token,
            has_token_provider=token_provider is not None,
            heartbeat=heartbeat,
            heartbeat_period=heartbeat_period,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            reconnect=_backoff(reconnect),
            outbox_limit=outbox_limit,
            ws_url=ws_url,
            request_attempts=request_attempts,
            stable_after=stable_after,
            send_rate=send_rate,
        )
        self._transport = transport or default_transport()
        self._socket = None
        self._handlers: dict[str, list[Callable[[Any], object]]] = {name: [] for name in EVENTS}
        self._state_handlers: list[Callable[[str, RealtimeClient], object]] = []
        self._subscriptions: dict[int, Subscription] = {}
        self._requests: dict[int | None, Waiter] = {}
        self._connect_waiters: list[Waiter] = []
        self._timer = DeadlineTimer(self._on_timer)  # calls tick() at next_deadline()
        self._pumping = False
        self._writes = _WriteOutbox(self, outbox_store)
        self._writes.load()

    # ----- the SDK's surface -----

    @property
    def state(self) -> str:
        """``closed``, ``connecting``, ``authenticating``, ``open``, ``reconnecting``,
        ``offline`` or ``failed``."""
        return self._proto.state

    @property
    def is_connected(self) -> bool:
        return self._proto.state == p.OPEN

    @property
    def failure(self) -> "BaseException | None":
        """The error that made the client give up (state ``failed``), else None."""
        return self._proto.failure

    @property
    def retry_in(self) -> "float | None":
        """While reconnecting: seconds until the next attempt, else None."""
        if self._proto.retry_at is None:
            return None
        return max(0.0, self._proto.retry_at - _now())

    @property
    def ever_connected(self) -> bool:
        return self._proto.ever_opened

    def connect(self) -> Waiter:
        """Open the connection; returns an awaitable that is done once authenticated.

        The socket opens when ``connect`` is called, not when the result is awaited (like the
        SDK's Promise): a page can go on with its own work while the handshake is under way.
        Awaiting raises when the client gives up (credentials refused, retries used up,
        disconnect()). A failed attempt is retried in the background with backoff.
        """
        waiter = Waiter()
        if self.is_connected:
            waiter.set_result(None)
        else:
            self._connect_waiters.append(waiter)
            self._pump(self._proto.connect, _now())
        return waiter

    def disconnect(self) -> None:
        """Close for good: no reconnect; subscriptions end, waiting requests fail."""
        self._pump(self._proto.disconnect, _now())

    def on_websocket(
        self, event: str, handler: "Callable[[object], object]"
    ) -> "Callable[[], None]":
        """Call ``handler`` on ``open``, ``message`` (the decoded message), ``close`` or
        ``error``. Returns a function that removes the handler."""
        if event not in self._handlers:
            raise ValueError("event must be one of " + ", ".join(EVENTS) + ", not " + repr(event))
        self._handlers[event].append(handler)

        def remove() -> None:
            if handler in self._handlers[event]:
                self._handlers[event].remove(handler)

        return remove

    def on_state(self, handler: "Callable[[str, RealtimeClient], object]") -> "Callable[[], None]":
        """Call ``handler(state, client)`` on every state change. Returns a remover."""
        self._state_handlers.append(handler)

        def remove() -> None:
            if handler in self._state_handlers:
                self._state_handlers.remove(handler)

        return remove

    def send_message(self, message: "dict[str, Any] | str") -> object:
        """Send a message as is (a dict gets a ``uid`` when it has none). Returns the uid.

        While disconnected, dict messages wait in the outbox instead of raising.
        """
        return self._pump(self._proto.send_message, message, _now())

    async def subscribe(
        self,
        collection: str,
        event: "str | None" = None,
        query: "dict[str, Any] | None" = None,
        uid: "str | None" = None,
        item: "str | int | None" = None,
    ) -> Subscription:
        """Subscribe to ``collection`` (optionally one ``event`` and one ``item``).

        Returns at once; the subscription is sent now, or when the connection opens, and again
        with a fresh uid after every reconnect. Events published while disconnected are not
        replayed by Directus: ``live()`` catches up on them.
        """
        return self._subscribe_now(collection, event, query, uid, item)

    def _subscribe_now(
        self,
        collection: str,
        event: "str | None" = None,
        query: "dict[str, Any] | None" = None,
        uid: "str | None" = None,
        item: "str | int | None" = None,
    ) -> Subscription:
        key = self._proto.subscribe(collection, event, query, uid, item)
        sub = self._subscriptions[key] = Subscription(self, key, uid)
        self._drain()
        return sub

    def live(
        self,
        collection: str,
        query: "dict[str, Any] | None" = None,
        store: object = None,
        check_every: "float | None" = 30.0,
        updated_field: "str | None" = "date_updated",
    ) -> "LiveQuery":
        """The rows of ``query`` on ``collection``, kept equal to the server's answer through
        reconnects and lost events, with optimistic writes (``live.py``, ``window.py``).

        ``store``: an object with ``load() -> dict | None`` and ``save(snapshot)`` that keeps
        the last rows, shown (not current) until the first answer. ``check_every``: seconds
        between checks while subscribed. ``updated_field``: the collection's date-updated
        field (None if it has none: checks then re-read the window).
        """
        from .live import LiveQuery

        return LiveQuery(self, collection, query, store, check_every, updated_field)

    def request(
        self, message: "dict[str, Any]", timeout: "float | None" = None, retry: "bool | None" = None
    ) -> Waiter:
        """Send ``message``; returns a ``Waiter`` (awaitable, with ``add_done_callback``) of
        Directus's reply (the whole reply dict).

        The message leaves (or joins the outbox) when ``request`` is called, not when it is
        awaited: like the SDK's Promises, and it spares the caller a task to get it going.
        """
        waiter = Waiter()
        key = self._proto.request(message, timeout, retry, _now())
        self._requests[key] = waiter
        self._drain()
        return waiter

    def create(
        self,
        collection: str,
        data: "dict[str, Any] | list[dict[str, Any]]",
        query: "dict[str, Any] | None" = None,
    ) -> Waiter:
        """Create one item (dict) or several (list); awaits what Directus stored."""
        return self._items("create", collection, data=data, query=query)

    def read(
        self,
        collection: str,
        id: "str | int | None" = None,
        ids: "list[Any] | None" = None,
        query: "dict[str, Any] | None" = None,
    ) -> Waiter:
        return self._items("read", collection, id=id, ids=ids, query=query)

    def update(
        self,
        collection: str,
        data: "dict[str, Any]",
        id: "str | int | None" = None,
        ids: "list[Any] | None" = None,
        query: "dict[str, Any] | None" = None,
    ) -> Waiter:
        return self._items("update", collection, data=data, id=id, ids=ids, query=query)

    def delete(
        self,
        collection: str,
        id: "str | int | None" = None,
        ids: "list[Any] | None" = None,
        query: "dict[str, Any] | None" = None,
    ) -> Waiter:
        return self._items("delete", collection, id=id, ids=ids, query=query)

    async def authenticate(self, access_token: str) -> None:
        """Re-authenticate the open socket with a new access token (keeps subscriptions)."""
        self._pump(self._proto.authenticate, _now(), access_token)

    def set_credentials(
        self,
        access_token: "str | None" = None,
        email: "str | None" = None,
        password: "str | None" = None,
        refresh_token: "str | None" = None,
    ) -> None:
        """Replace the credentials; a client that gave up on refused ones tries again."""
        self._pump(
            self._proto.set_credentials, _now(), access_token, email, password, refresh_token
        )

    def set_online(self, online: bool) -> None:
        """Tell the client the network went down or came back (retries at once when back)."""
        self._pump(self._proto.set_online, online, _now())

    def outbox(self) -> "list[dict[str, Any]]":
        """The messages waiting for the connection, in order."""
        return self._proto.outbox()

    # ----- internals -----

    def _items(self, action: str, collection: str, **fields: object) -> "Waiter":
        message: dict[str, Any] = {"type": "items", "collection": collection, "action": action}
        for name, value in fields.items():
            if value is not None:
                message[name] = value
        if w.is_write(message):
            return _then(self._writes.write(message, False), _data_of)
        return _then(self.request(message), _data_of)

    # ----- the outbox of writes (writes.py) -----

    def outbox_store_changed(self) -> None:
        """The store has entries this client does not know (e.g. a tab took over the
        outbox): load them and send them."""
        self._writes.load()
        self._drain()

    def pending_writes(self) -> "list[tuple[dict[str, Any], Waiter]]":
        """``(message, waiter)`` of every write not confirmed yet, oldest first."""
        return self._writes.pending()

    def _unsubscribe(self, sub: Subscription) -> None:
        self._pump(self._proto.unsubscribe, sub.key)

    def _pump(self, method: "Callable[..., Any]", *args: object) -> "Any":
        """Call a protocol method, then carry out everything it asked for."""
        result = method(*args)
        self._drain()
        return result

    def _drain(self) -> None:
        if self._pumping:
            return  # an outer _drain will pick the new events up
        self._pumping = True
        try:
            events = self._proto.events()
            while events:
                for event in events:
                    self._handle(event)
                events = self._proto.events()
        finally:
            self._pumping = False
        self._schedule_tick()

    def _handle(self, event: "p.Action | p.Report") -> None:
        if _log is not None:
            _log.debug("%r", event)
        getattr(self, _HANDLERS[type(event)])(event)

    # One method per kind of event (``_HANDLERS``); actions first, then reports.

    def _on_send_text(self, event: p.SendText) -> None:
        if self._socket is not None:
            self._socket.send(event.text)

    def _on_open_socket(self, event: p.OpenSocket) -> None:
        self._close_socket()
        listener = _Listener(self)
        self._socket = listener.socket = self._transport(event.url, listener)

    def _on_close_socket(self, event: p.CloseSocket) -> None:
        self._close_socket()

    def _on_schedule_refresh(self, event: p.ScheduleRefresh) -> None:
        _spawn(self._refresh_token())

    def _on_subscription_message(self, event: p.SubscriptionMessage) -> None:
        sub = self._subscriptions.get(event.key)
        if sub is not None:
            sub.uid = event.message.get("uid")
            sub._push(event.message)

    def _on_subscription_ended(self, event: p.SubscriptionEnded) -> None:
        sub = self._subscriptions.pop(event.key, None)
        if sub is not None:
            sub._end(event.error)

    def _on_request_done(self, event: p.RequestDone) -> None:
        waiter = self._requests.pop(event.key, None)
        if waiter is not None:
            waiter.set_result(event.reply)

    def _on_request_failed(self, event: p.RequestFailed) -> None:
        waiter = self._requests.pop(event.key, None)
        if waiter is not None:
            waiter.set_exception(event.error)

    def _on_opened(self, event: p.Opened) -> None:
        self._writes.resume()
        self._resolve_connect(None)
        self._call("open", event)

    def _on_message_received(self, event: p.MessageReceived) -> None:
        self._call("message", event.message)

    def _on_closed(self, event: p.Closed) -> None:
        self._call("close", event)

    def _on_error_occurred(self, event: p.ErrorOccurred) -> None:
        self._call("error", event.error)

    def _on_state_changed(self, event: p.StateChanged) -> None:
        if event.state in (p.FAILED, p.CLOSED):
            self._resolve_connect(
                self._proto.failure or ConnectionFailed("disconnect() was called.")
            )
        for handler in list(self._state_handlers):
            _safely(handler, event.state, self)

    def _call(self, name: str, arg: object) -> None:
        for handler in list(self._handlers[name]):
            _safely(handler, arg)

    def _resolve_connect(self, error: "BaseException | None") -> None:
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _close_socket(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            socket.close()

    def _schedule_tick(self) -> None:
        """Have tick() called at next_deadline()."""
        self._timer.schedule(self._proto.next_deadline())

    def _on_timer(self) -> None:
        self._pump(self._proto.tick, _now())

    async def _refresh_token(self) -> None:
        provider = self._token_provider
        if provider is None:
            return
        try:
            token = provider()
            if hasattr(token, "__await__") or hasattr(token, "send"):  # (MicroPython: send)
                token = await token
        except DirectusError as error:  # Directus said no: retrying cannot help
            self._pump(self._proto.token_refused, _now(), error)
            return
        except Exception as error:  # e.g. unreachable: the connect timeout retries later
            self._call("error", RealtimeError("token_provider failed: " + str(error)))
            return
        self._pump(self._proto.authenticate, _now(), token)


class _WriteOutbox:
    """The client's one outbox of writes: each write until it is stored or refused
    (``writes.write_outcome``), its entry in the store after every change."""

    def __init__(self, client: "RealtimeClient", store: "Any") -> None:
        self._client = client
        self._store = store if store is not None else w.MemoryStore()
        self._writes: dict[int, list[Any]] = {}  # seq -> [entry, Waiter of the whole reply]
        self._seq = 0
        self._kept: list[int] = []  # writes the client stopped for: sent at the next open

    def pending(self) -> "list[tuple[dict[str, Any], Waiter]]":
        return [(self._writes[k][0]["message"], self._writes[k][1]) for k in sorted(self._writes)]

    def load(self) -> None:
        try:
            entries = self._store.load() or []
        except Exception as error:  # an unreadable store is an empty one
            print("directus_realtime: the outbox store failed to load: " + repr(error))
            entries = []
        known = [e[0]["message"] for e in self._writes.values()]
        for entry in entries:
            message = entry.get("message") if isinstance(entry, dict) else None
            if isinstance(message, dict) and w.is_write(message) and message not in known:
                self.write(message, True)

    def write(self, message: "dict[str, Any]", sent_before: bool) -> "Waiter":
        self._seq += 1
        seq = self._seq
        self._writes[seq] = [w.entry(seq, message, sent_before), Waiter()]
        self._save()
        self._attempt(seq)
        waiter: Waiter = self._writes[seq][1]
        return waiter

    def _attempt(self, seq: int) -> None:
        entry = self._writes[seq][0]
        message = entry["message"]
        repeatable = w.idempotent(message)
        attempt = self._client.request(message, retry=repeatable)

        def settle(done: Waiter) -> None:
            if seq not in self._writes:
                return
            waiter: Waiter = self._writes[seq][1]
            error = done.exception()
            action = message.get("action")
            outcome = w.write_outcome(action, error, entry["sent"], repeatable)
            if outcome == w.RETRY:
                entry["sent"] = True
                self._save()
                if isinstance(error, DirectusError):  # Directus said "not now": wait a little
                    _call_later(1.0, lambda: self._attempt_again(seq))
                else:  # the core sends it once connected
                    self._attempt(seq)
                return
            if outcome == w.KEEP:
                # The caller hears of the stop; whoever still follows the write (a live query)
                # finds it in pending_writes() with a new waiter, settled when it is sent.
                self._kept.append(seq)
                self._writes[seq][1] = Waiter()
            else:
                self._writes.pop(seq, None)
                self._save()
            if outcome == w.STORED:
                waiter.set_result(done.result() if error is None else {"data": None})
            elif error is not None:
                waiter.set_exception(error)

        entry["sent"] = entry["sent"] or self._client.is_connected
        attempt.add_done_callback(settle)

    def resume(self) -> None:
        """The connection is open again: send the writes kept when the client stopped."""
        kept, self._kept = self._kept, []
        for seq in kept:
            self._attempt_again(seq)

    def _attempt_again(self, seq: int) -> None:
        if seq in self._writes:
            self._attempt(seq)

    def _save(self) -> None:
        try:
            self._store.save([self._writes[k][0] for k in sorted(self._writes)])
        except Exception as error:  # a full disk must not stop the client
            print("directus_realtime: the outbox store failed to save: " + repr(error))


# What the core's events() hold -> the RealtimeClient method that carries each out.
_HANDLERS = {
    p.SendText: "_on_send_text",
    p.OpenSocket: "_on_open_socket",
    p.CloseSocket: "_on_close_socket",
    p.ScheduleRefresh: "_on_schedule_refresh",
    p.SubscriptionMessage: "_on_subscription_message",
    p.SubscriptionEnded: "_on_subscription_ended",
    p.RequestDone: "_on_request_done",
    p.RequestFailed: "_on_request_failed",
    p.Opened: "_on_opened",
    p.MessageReceived: "_on_message_received",
    p.Closed: "_on_closed",
    p.ErrorOccurred: "_on_error_occurred",
    p.StateChanged: "_on_state_changed",
}


class _Listener:
    """What a transport calls; ties each callback to the socket it came from."""

    def __init__(self, client: "RealtimeClient") -> None:
        self._client = client
        self.socket = None

    def socket_opened(self) -> None:
        self._forward(self._client._proto.socket_opened)

    def socket_message(self, text: str) -> None:
        if self._is_current():
            self._client._pump(self._client._proto.receive_text, text, _now())

    def socket_closed(self, code: "int | None" = None, reason: str = "") -> None:
        self._forward(self._client._proto.socket_closed, code, reason)

    def socket_error(self, error: "BaseException | None" = None) -> None:
        self._forward(self._client._proto.socket_error, error)

    def socket_refused(self, status: int, reason: str = "") -> None:
        self._forward(self._client._proto.socket_refused, status, reason)

    def _is_current(self) -> bool:
        return self.socket is not None and self.socket is self._client._socket

    def _forward(self, method: "Callable[..., Any]", *args: object) -> None:
        if self._is_current():
            self._client._pump(method, _now(), *args)


class DeadlineTimer:
    """One timer for a sans-I/O machine's ``next_deadline()``: ``schedule(deadline)`` after each
    call into the machine, ``callback()`` when the deadline has come.

    A running timer that fires no later than the new deadline is kept: an early tick does
    nothing but schedule the next one, and most messages only push the deadline later.
    """

    def __init__(self, callback: "Callable[[], object]") -> None:
        self._callback = callback
        self._timer: Any = None
        self._at: float | None = None

    def schedule(self, deadline: "float | None") -> None:
        if self._timer is not None:
            if deadline is not None and self._at is not None and self._at <= deadline:
                return
            self.cancel()
        if deadline is not None:
            self._at = deadline
            self._timer = _call_later(max(0.0, deadline - _now()) + 0.001, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._callback()


def _call_later(delay: float, callback: "Callable[[], object]") -> "Any":
    """Call ``callback()`` in ``delay`` seconds; returns something with ``cancel()``.

    The loop's own timer where there is one: in Pyodide that is a browser ``setTimeout``, and
    moving it costs nothing, where a task that sleeps costs two turns of the loop (two browser
    tasks) to cancel and restart, and every request moves the deadline. MicroPython's asyncio
    has no ``call_later``: there a task sleeps.
    """
    try:
        loop = asyncio.get_running_loop()
    except (AttributeError, RuntimeError):
        loop = asyncio.get_event_loop()
    call_later = getattr(loop, "call_later", None)
    if call_later is not None:
        return call_later(delay, callback)
    return _spawn(_sleep_then(delay, callback))


async def _sleep_then(delay: float, callback: "Callable[[], object]") -> None:
    await asyncio.sleep(delay)
    callback()


def _data_of(reply: "Any") -> "Any":
    return reply.get("data")


def _safely(handler: "Callable[..., object]", *args: object) -> None:
    try:
        handler(*args)
    except Exception as error:  # a broken handler must not break the connection
        print("directus_realtime: a handler raised " + repr(error))


if hasattr(time, "monotonic"):

    def _now() -> float:
        return time.monotonic()

else:  # MicroPython: a millisecond counter that wraps around; unwrap it into seconds.
    _ticks_ms: "Any" = getattr(time, "ticks_ms")  # noqa: B009  (not in CPython's typeshed)
    _ticks_diff: "Any" = getattr(time, "ticks_diff")  # noqa: B009
    _clock = [_ticks_ms(), 0]  # the last reading, and milliseconds elapsed since the first

    def _now() -> float:
        ticks = _ticks_ms()
        _clock[1] += _ticks_diff(ticks, _clock[0])
        _clock[0] = ticks
        return float(_clock[1]) / 1000


def _backoff(reconnect: object) -> "p.Backoff | bool":
    if reconnect is False or reconnect is None:
        return False
    if reconnect is True:
        return p.Backoff()
    if isinstance(reconnect, p.Backoff):
        return reconnect
    if isinstance(reconnect, dict):
        return p.Backoff(
            delay=reconnect.get("delay", 0.5),
            max_delay=reconnect.get("max_delay", 30.0),
            retries=reconnect.get("retries"),
        )
    raise TypeError("reconnect must be True, False, a dict or a Backoff")
