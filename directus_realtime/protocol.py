"""The Directus realtime protocol as a sans-I/O state machine.

Nothing here opens a socket, starts a timer or awaits anything. A driver (``client.py``)
feeds the machine what happened, always with the current time::

    proto.connect(now)                  # the user wants a connection
    proto.socket_opened(now)            # the transport says the socket is open
    proto.receive_text(text, now)       # a text frame arrived
    proto.socket_closed(now, code)      # the socket is gone
    proto.tick(now)                     # the deadline from next_deadline() has passed

and after each call drains ``proto.events()``: a list, in order, of what to do (``OpenSocket``,
``SendText``, ``CloseSocket``) and what to deliver (``Opened``, ``MessageReceived``,
``SubscriptionMessage``, ``RequestDone`` ...). Because the same machine runs in Pyodide and
CPython, the browser and the ``websockets`` transports cannot drift apart, and every rule below
is tested in milliseconds without a server (``tests/unit``).

The machine is one object, ``RealtimeProtocol``, whose concerns live in their own modules:
this one owns the connection's state (states, socket inputs, time, reconnect backoff, giving
up); ``session.py`` authentication and liveness; ``requests.py`` requests, their outbox and
pacing; ``subscriptions.py`` subscriptions and routing by uid; ``events.py`` what comes out of
``events()`` (``Action``: for the driver to do; ``Report``: for the user).

The rules, and where they do better than ``@directus/sdk``:

* uids come from one counter for the client's whole life, so a late reply can never be taken
  for the answer to a newer request (the SDK restarts its uids at 1 on every reconnect);
* a subscription's ``init`` is buffered like any other event, never dropped;
* an error without a uid fails nothing by itself: it is attributed to the one request that can
  have caused it, or else reported as an ``error`` event (the SDK fails every subscription);
* reconnection backs off exponentially with full jitter, unlimited by default, and starts over
  only once a connection has stayed up for a while (``stable_after``), so a server that takes
  the sign-in and drops the socket is not stormed; subscriptions are re-sent with fresh uids,
  unsubscribed ones are not; writes made while disconnected wait in a bounded outbox and are
  sent in order once the connection is back;
* a request whose reply is lost is sent again only when that is safe, and at most
  ``request_attempts`` times in all; one left unanswered on a connection that is demonstrably
  alive fails instead of costing a reconnect (the SDK has neither bound);
* a frame that does not decode (not JSON, not an object, an unusable uid, out of memory) is an
  ``InvalidFrame`` error event; the connection goes on;
* a connection that hears nothing for 1.5 heartbeat periods is treated as dead (half-open sockets
  do not freeze the client);
* a refused token stops the retries (no retry storm) until new credentials are given;
* what a subscription missed (a reconnect, a bus outage) is the live query's business
  (``window.py``): this core only routes.

Portability: plain classes and no ``typing`` at run time, so MicroPython can run it too.
"""

import json
import random

from .errors import (
    AuthenticationError,
    ConnectionFailed,
    ConnectionLost,
    DirectusError,
    InvalidFrame,
    OutboxFull,
    RequestTimeout,
)
from .events import (
    Action,
    Closed,
    CloseSocket,
    ErrorOccurred,
    MessageReceived,
    Opened,
    OpenSocket,
    Report,
    RequestDone,
    RequestFailed,
    ScheduleRefresh,
    SendText,
    StateChanged,
    SubscriptionEnded,
    SubscriptionMessage,
)
from .requests import DROPPED_AFTER, REQUEST_ATTEMPTS, SEND_RATE, Requests
from .session import PONG_TIMEOUT, PROBE_WHEN_UNSURE, PROBE_WHEN_WAITING, Session
from .subscriptions import Subscriptions

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .requests import _Request
    from .subscriptions import _Subscription

# Connection states, as shown to users (``#status[data-state]`` maps onto these).
CLOSED = "closed"  # never connected, or disconnect() was called
CONNECTING = "connecting"  # socket opening
AUTHENTICATING = "authenticating"  # socket open, waiting for {"type": "auth", "status": "ok"}
OPEN = "open"  # ready: subscriptions and requests flow
RECONNECTING = "reconnecting"  # waiting for the next attempt (see ``retry_at``)
OFFLINE = "offline"  # the host says the network is down; waiting for it to come back
FAILED = "failed"  # given up: refused credentials or retries used up; see ``failure``
LIVE_STATES = (CONNECTING, AUTHENTICATING, OPEN)  # a socket exists (``RealtimeProtocol._conn``)

AUTH_MODES = ("handshake", "public", "strict")

__all__ = [
    "AUTHENTICATING",
    "CLOSED",
    "CONNECTING",
    "DROPPED_AFTER",
    "FAILED",
    "LIVE_STATES",
    "OFFLINE",
    "OPEN",
    "PONG_TIMEOUT",
    "PROBE_WHEN_UNSURE",
    "PROBE_WHEN_WAITING",
    "RECONNECTING",
    "REQUEST_ATTEMPTS",
    "SEND_RATE",
    "Action",
    "AuthenticationError",
    "Backoff",
    "CloseSocket",
    "Closed",
    "ConnectionFailed",
    "ConnectionLost",
    "DirectusError",
    "ErrorOccurred",
    "InvalidFrame",
    "MessageReceived",
    "OpenSocket",
    "Opened",
    "OutboxFull",
    "RealtimeProtocol",
    "Report",
    "RequestDone",
    "RequestFailed",
    "RequestTimeout",
    "ScheduleRefresh",
    "SendText",
    "StateChanged",
    "SubscriptionEnded",
    "SubscriptionMessage",
    "websocket_url",
]


# --- Reconnect schedule ---------------------------------------------------------------------


class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).

    ``retries=None`` retries forever. ``rng`` is injectable so tests are deterministic.
    """

    def __init__(
        self,
        delay: float = 0.5,
        max_delay: float = 30.0,
        retries: "int | None" = None,
        rng: "Callable[[], float] | None" = None,
    ) -> None:
        self.delay = float(delay)
        self.max_delay = float(max_delay)
        self.retries = retries
        self.rng: Callable[[], float] = rng or random.random

    def exhausted(self, attempt: int) -> bool:
        return self.retries is not None and attempt >= self.retries

    def wait(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.delay * (2.0 ** min(attempt, 30)))
        return max(0.05, float(self.rng()) * ceiling)


def websocket_url(
    url: str,
    path_url: "str | None" = None,
    auth_mode: str = "handshake",
    access_token: "str | None" = None,
) -> str:
    """The socket URL for a Directus at ``url``.

    ``https://host/sub`` becomes ``wss://host/sub/websocket``: unlike the SDK, a Directus served
    under a sub-path keeps its path. ``path_url`` (the ``url`` option) wins when given. In
    ``strict`` mode the token travels in the query string, as Directus expects.
    """
    if path_url:
        result = path_url
    else:
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError("Directus URL must start with http://, https://, ws:// or wss://")
        scheme = scheme.lower()
        if scheme in ("ws", "wss"):
            result = url
        elif scheme in ("http", "https"):
            host, slash, path = rest.partition("/")
            path = path.split("?")[0].split("#")[0].strip("/")
            base = ("wss" if scheme == "https" else "ws") + "://" + host
            result = base + "/" + (path + "/" if path else "") + "websocket"
        else:
            raise ValueError("Unsupported URL scheme " + repr(scheme) + " in " + repr(url))
    if auth_mode == "strict" and access_token:
        result += ("&" if "?" in result else "?") + "access_token=" + _quote(access_token)
    return result


def _quote(value: object) -> str:
    safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    out = []
    for ch in str(value):
        if ch in safe:
            out.append(ch)
        else:
            for byte in ch.encode("utf-8"):
                out.append("%%%02X" % byte)
    return "".join(out)


# --- The machine ----------------------------------------------------------------------------


class _Connection:
    """What lives and dies with one socket: made when the socket is asked for, dropped with it."""

    def __init__(self, now: float, connect_timeout: "float | None") -> None:
        self.connect_deadline = now + connect_timeout if connect_timeout else None
        self.opened_at: float | None = None  # when it became OPEN
        self.last_heard = now
        self.last_ping: float | None = None  # when the server's last ping came
        self.probe_sent: float | None = None  # our unanswered liveness ping
        self.reauthenticating = False  # between TOKEN_EXPIRED and the new auth's "ok"
        self.subs_by_uid: dict[str, _Subscription] = {}  # uid on this connection
        self.requests: dict[int, _Request] = {}  # sent and waiting for a reply
        self.requests_by_uid: dict[str, _Request] = {}


class RealtimeProtocol(Session, Requests, Subscriptions):
    """The whole client state machine. See the module docstring for how to drive it.

    Args:
        url: the Directus URL, ``http(s)://`` or ``ws(s)://`` (see ``websocket_url``).
        auth_mode: ``handshake`` (an ``auth`` message first), ``public`` (none) or ``strict``
            (the token in the socket URL), as ``WEBSOCKETS_REST_AUTH`` is set on the server.
        access_token: a static or access token for the ``auth`` message.
        email: with ``password``: log the socket in (Directus answers with a refresh token).
        password: see ``email``.
        refresh_token: used when there is no access token, and after ``TOKEN_EXPIRED``.
        has_token_provider: the driver can fetch tokens: ask it with ``ScheduleRefresh``.
        heartbeat: answer the server's pings and take a silent connection for dead.
        heartbeat_period: the server's ``WEBSOCKETS_HEARTBEAT_PERIOD`` in seconds; silence
            for 1.5 periods drops the connection.
        connect_timeout: seconds from asking for a socket to the end of the handshake.
        request_timeout: seconds a request waits for its reply (``request(timeout=)`` wins).
        request_attempts: times a retryable request is sent (once per connection) before it
            fails. A timeout on a connection silent since the request drops the connection,
            so this also bounds the reconnects one request can cause; on a connection heard
            from meanwhile the request fails at once.
        reconnect: a ``Backoff``, or False to fail when the connection is lost.
        stable_after: seconds a connection must stay open before the backoff starts over;
            None means ``heartbeat_period``. A server that accepts the sign-in and then drops
            the socket thus gets growing delays, not a reconnect every ``Backoff.delay``.
        outbox_limit: requests that may wait for the connection, counting those in flight
            that a lost connection would send again; more fail with ``OutboxFull``.
        ws_url: the socket URL, when it is not derived from ``url`` (the SDK's ``url``).
        probes: ping a silent connection while a reply is awaited (see ``_probe_at``).
        send_rate: messages per second at most (None: unpaced). Requests wait in the outbox
            for their turn; ``REQUESTS_EXCEEDED`` ("retry after <ms>ms") pauses them that
            long, and the requests it may have dropped are sent again when that is safe.
    """

    def __init__(
        self,
        url: str,
        auth_mode: str = "handshake",
        access_token: "str | None" = None,
        email: "str | None" = None,
        password: "str | None" = None,
        refresh_token: "str | None" = None,
        has_token_provider: bool = False,
        heartbeat: bool = True,
        heartbeat_period: float = 30.0,
        connect_timeout: "float | None" = 10.0,
        request_timeout: float = 10.0,
        reconnect: "Backoff | bool | None" = None,
        outbox_limit: int = 1000,
        ws_url: "str | None" = None,
        probes: bool = True,
        request_attempts: int = REQUEST_ATTEMPTS,
        stable_after: "float | None" = None,
        send_rate: "float | None" = SEND_RATE,
    ) -> None:
        if auth_mode not in AUTH_MODES:
            raise ValueError("auth_mode must be one of " + ", ".join(AUTH_MODES))
        if request_attempts < 1:
            raise ValueError("request_attempts must be at least 1")
        self.url = url
        self.auth_mode = auth_mode
        self.access_token = access_token
        self.email = email
        self.password = password
        self.refresh_token = refresh_token
        self.has_token_provider = has_token_provider
        self.heartbeat = heartbeat
        self.heartbeat_period = float(heartbeat_period)
        self.probes = probes
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.request_attempts = request_attempts
        # A Backoff, or False: never (True means the default Backoff).
        self.reconnect = Backoff() if reconnect is None or reconnect is True else reconnect
        self.stable_after = self.heartbeat_period if stable_after is None else stable_after
        self.outbox_limit = outbox_limit
        self.ws_url = ws_url
        self.send_rate = float(send_rate) if send_rate else None
        self._burst = max(1.0, (self.send_rate or 0.0) / 8)  # the bucket's size
        self._tokens = self._burst  # what may be sent now (a token bucket)
        self._tokens_at = None  # when _tokens was last refilled
        self.paused_until = None  # REQUESTS_EXCEEDED: nothing paced is sent before then
        self._subs_suspect_at = None  # REQUESTS_EXCEEDED: unconfirmed subscriptions, again
        # Fail fast on a URL that can never work.
        websocket_url(url, ws_url, auth_mode, access_token)

        self.state = CLOSED
        self.failure: BaseException | None = None  # the error that put us in FAILED
        self.retry_at: float | None = None  # when RECONNECTING: the time of the next attempt
        self.attempt = 0  # failed attempts since a connection last stayed up (stable_after)
        self.ever_opened = False
        self.online = True

        self._uid = 0
        self._key = 0
        self._events: list[Action | Report] = []
        self._subs = {}  # key -> _Subscription
        self._outbox = []  # _Request, waiting for an open connection, in order
        self._conn = None  # the _Connection while the state is one of LIVE_STATES
        self._observed_period = None  # the server's ping interval, once seen twice

    # ----- public inputs -----

    def connect(self, now: float) -> None:
        """Start connecting (no-op when already connected or connecting)."""
        if self.state in LIVE_STATES:
            return
        self.failure = None
        self.attempt = 0
        if not self.online:
            self._set_state(OFFLINE)
            return
        self._open_socket(now)

    def disconnect(self, now: "float | None" = None) -> None:
        """Close for good: no reconnect; subscriptions end; waiting requests fail."""
        was_connected = self.state in LIVE_STATES
        error = ConnectionFailed("disconnect() was called.")
        self._drop_connection(retry_requests=False)
        self.retry_at = None
        if was_connected:
            self._emit(CloseSocket("disconnect"))
            self._emit(Closed(None, "disconnect"))
        self._set_state(CLOSED)
        self._end_everything(error)

    def set_online(self, online: bool, now: float) -> None:
        """The host's network status (the browser's ``online`` / ``offline`` events)."""
        self.online = bool(online)
        if not online and self.state == RECONNECTING:
            self.retry_at = None
            self._set_state(OFFLINE)
        elif online and self.state in (OFFLINE, RECONNECTING):
            self._open_socket(now)  # retry at once: the network just came back

    def socket_opened(self, now: float) -> None:
        if self.state != CONNECTING:
            return
        self._conn.last_heard = now
        if self.auth_mode == "handshake":
            credentials = self._auth_credentials()
            if credentials is None and self.has_token_provider:
                self._set_state(AUTHENTICATING)
                self._emit(ScheduleRefresh())  # the first token comes from the provider too
                return
            if credentials is None:
                self._fail(
                    AuthenticationError(
                        "NO_CREDENTIALS",
                        "auth_mode is 'handshake' but no token or email and password were "
                        "given. Pass a static token, or use auth_mode='public'.",
                    )
                )
                return
            self._set_state(AUTHENTICATING)
            self._send_auth()
        else:
            self._became_open(now)

    def socket_refused(self, now: float, status: int, reason: str = "") -> None:
        """The server answered the upgrade with an HTTP error instead of a WebSocket.

        401/403 mean the token (strict mode) or the page's origin was refused: retrying cannot
        help, so the client fails. Other statuses are treated like a lost connection.
        """
        if self.state != CONNECTING:
            return
        if status in (401, 403):
            self._fail(
                AuthenticationError(
                    "HTTP_%d" % status,
                    "Directus refused the WebSocket (HTTP %d%s). Check the token, and that "
                    "CORS_ORIGIN allows this page's origin."
                    % (status, ": " + reason if reason else ""),
                ),
                socket_open=False,
            )
            return
        self._emit(
            ErrorOccurred(ConnectionLost("Directus answered the upgrade with HTTP %d" % status))
        )
        self._connection_lost(now, "HTTP %d" % status)

    def socket_error(self, now: float, error: "BaseException | None" = None) -> None:
        self._emit(ErrorOccurred(error if error is not None else ConnectionLost("socket error")))

    def socket_closed(self, now: float, code: "int | None" = None, reason: str = "") -> None:
        if self.state not in LIVE_STATES:
            return  # a socket we already gave up on
        self._emit(Closed(code, reason))
        self._connection_lost(now, "closed (code " + str(code) + ")")

    def receive_text(self, text: str, now: float) -> None:
        conn = self._conn
        if conn is None:
            return  # from a socket the machine has already given up on
        conn.last_heard = now
        conn.probe_sent = None
        message, problem = _decode(text)
        if message is None:
            self._emit(ErrorOccurred(InvalidFrame(problem or "undecodable frame")))
            return
        kind = message.get("type")
        if kind == "ping":
            self._learn_heartbeat(conn, now)
        if kind == "ping" and self.heartbeat:
            pong = {"type": "pong"}
            if "uid" in message:
                pong["uid"] = message["uid"]
            self._send(pong)
            return
        self._emit(MessageReceived(message))
        if kind == "auth":
            self._on_auth(message, now)
        elif kind == "subscription":
            self._on_subscription(message)
        elif message.get("status") == "error":
            self._on_error(message, now)
        elif "uid" in message:
            self._on_reply(message, now)

    # ----- time -----

    def _deadlines(self) -> "list[tuple[float, Callable[[float], None]]]":
        """Every ``(time, action)`` the machine waits for, in the order ``tick()`` serves them
        when several have passed (a dead socket is dropped before it is probed)."""
        deadlines: list[tuple[float, Callable[[float], None]]] = []
        if self.state == RECONNECTING and self.retry_at is not None:
            deadlines.append((self.retry_at, self._open_socket))
        conn = self._conn
        if conn is None:
            return deadlines
        if self.state != OPEN:
            if conn.connect_deadline is not None:
                deadlines.append((conn.connect_deadline, self._connect_timed_out))
            return deadlines
        if self.heartbeat:
            deadlines.append((self._dead_at(), self._silent_too_long))
            probe_at = self._probe_at()
            if probe_at is not None:
                deadlines.append((probe_at, self._send_probe))
        for req in conn.requests.values():
            if req.deadline is not None:
                deadlines.append((req.deadline, _bind(self._request_timed_out, req)))
        flush_at = self._flush_at()
        if flush_at is not None:
            deadlines.append((flush_at, self._flush))
        suspect_at = self._suspect_at()
        if suspect_at is not None:
            deadlines.append((suspect_at, self._resend_dropped))
        return deadlines

    def tick(self, now: float) -> None:
        """Act on every deadline that has passed: connect/request timeouts, liveness, retry.

        Each action moves or removes its own deadline, and may change what else is due (a
        timeout drops the socket and its requests' deadlines), so the list is made again
        after each one.
        """
        while True:
            due = None
            for when, action in self._deadlines():
                if now >= when:
                    due = action
                    break
            if due is None:
                return
            due(now)

    def next_deadline(self) -> "float | None":
        """The earliest time at which ``tick()`` has something to do, or None."""
        times = [when for when, _ in self._deadlines()]
        return min(times) if times else None

    def _connect_timed_out(self, now: float) -> None:
        self._abort(now, RequestTimeout("Connection attempt timed out."), "connect timeout")

    def events(self) -> "list[Action | Report]":
        """Drain and return what happened since the last call, in order."""
        events, self._events = self._events, []
        return events

    # ----- internals -----

    def _emit(self, event: "Action | Report") -> None:
        self._events.append(event)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            previous, self.state = self.state, state
            self._emit(StateChanged(state, previous))

    def _next_uid(self) -> str:
        self._uid += 1
        return str(self._uid)

    def _next_key(self) -> int:
        self._key += 1
        return self._key

    def _send(self, message: "dict[str, Any]") -> None:
        if self.send_rate is not None:
            self._tokens -= 1  # every frame counts against Directus's limiter
        self._emit(SendText(json.dumps(message, separators=(",", ":"))))

    def _open_socket(self, now: float) -> None:
        self.retry_at = None
        self._conn = _Connection(now, self.connect_timeout)
        self._set_state(CONNECTING)
        token = self.access_token if self.auth_mode == "strict" else None
        self._emit(OpenSocket(websocket_url(self.url, self.ws_url, self.auth_mode, token)))

    def _became_open(self, now: float) -> None:
        self._conn.connect_deadline = None
        self._conn.opened_at = now
        self.ever_opened = True
        self._set_state(OPEN)
        self._emit(Opened())
        self._subs_suspect_at = None
        for sub in self._subs.values():
            self._send_subscription(sub)
        self._flush(now)

    # ----- losing the connection -----

    def _drop_connection(self, retry_requests: bool) -> None:
        """Forget the socket: subscriptions wait for the next one, requests retry or fail."""
        conn, self._conn = self._conn, None
        for sub in self._subs.values():
            sub.uid = None
            sub.confirmed = False
        if conn is None:
            return
        retried = []
        for req in sorted(conn.requests.values(), key=lambda r: r.key):
            if retry_requests and req.retry and req.attempts - req.dropped < self.request_attempts:
                req.uid = None
                req.deadline = None
                retried.append(req)
                continue
            why = "The connection closed before Directus answered"
            if retry_requests and req.retry:
                why += ", %d times" % req.attempts
            self._emit(
                RequestFailed(
                    req.key,
                    ConnectionLost(why + "; the request may or may not have been carried out."),
                )
            )
        self._outbox = retried + self._outbox

    def _abort(self, now: float, error: BaseException, reason: str) -> None:
        """Give up on a socket the transport still holds: close it, then as if it had closed."""
        self._emit(ErrorOccurred(error))
        self._emit(CloseSocket(reason))
        if self.state != CONNECTING:  # only a socket that opened gets a close event
            self._emit(Closed(None, reason))
        self._connection_lost(now, reason)

    def _connection_lost(self, now: float, why: str) -> None:
        """After any lost socket: retry the requests that may be, then schedule a reconnect."""
        conn = self._conn
        if conn is not None and conn.opened_at is not None:
            if now - conn.opened_at >= self.stable_after or conn.last_ping is not None:
                # It stayed up (a server pings once per its own heartbeat period, which may be
                # shorter than ``stable_after``): the backoff starts over.
                self.attempt = 0
        self._drop_connection(retry_requests=True)
        backoff = self.reconnect
        if not isinstance(backoff, Backoff) or backoff.exhausted(self.attempt):
            if not isinstance(backoff, Backoff):
                message = "The connection closed (" + why + ") and reconnect is off."
            else:
                message = "Gave up after %d attempts to reconnect." % self.attempt
            self._fail(ConnectionFailed(message), socket_open=False)
            return
        if not self.online:
            self._set_state(OFFLINE)
            return
        delay = backoff.wait(self.attempt)
        self.attempt += 1
        self.retry_at = now + delay
        self._set_state(RECONNECTING)

    def _fail(self, error: BaseException, socket_open: bool = True) -> None:
        """Give up until the user acts (new credentials, or connect() again)."""
        was_connected = socket_open and self.state in LIVE_STATES
        self._drop_connection(retry_requests=True)
        if was_connected:
            self._emit(CloseSocket("failed"))
        self.failure = error
        self.retry_at = None
        self._emit(ErrorOccurred(error))
        self._set_state(FAILED)
        self._end_everything(error)

    def _end_everything(self, error: BaseException) -> None:
        for key in list(self._subs):
            self._emit(SubscriptionEnded(key, error))
        self._subs = {}
        for req in self._outbox:
            if req.key is not None:
                self._emit(RequestFailed(req.key, error))
        self._outbox = []


def _bind(
    method: "Callable[[_Request, float], None]", req: "_Request"
) -> "Callable[[float], None]":
    """``method(req, now)`` as an action of ``now`` (MicroPython has no functools.partial)."""
    return lambda now: method(req, now)


def _decode(text: str) -> "tuple[dict[str, Any] | None, str | None]":
    """``(message, None)`` for a Directus message, else ``(None, why)``: whatever a frame
    holds, the machine reports it and goes on."""
    try:
        message = json.loads(text)
    except Exception as error:  # ValueError; MemoryError on a small heap; TypeError...
        return None, "The server sent a frame that does not decode (%s): %s" % (
            type(error).__name__,
            _preview(text),
        )
    if not isinstance(message, dict):
        return None, "The server sent a frame that is not a JSON object: " + _preview(text)
    if isinstance(message.get("uid"), (dict, list)):  # uids are looked up in dicts
        return None, "The server sent a uid that is not a string or a number: " + _preview(text)
    return message, None


def _preview(text: "Any") -> str:
    try:
        return str(text[:200])
    except Exception:
        return "<%s>" % type(text).__name__
