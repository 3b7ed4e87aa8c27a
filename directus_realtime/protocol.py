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

# Liveness probes (see RealtimeProtocol._probe_at), in seconds; ``probes=False`` turns them off.
PROBE_WHEN_WAITING = 2.0  # silence while a reply is awaited
PROBE_WHEN_UNSURE = 10.0  # silence before the server's ping period is known
PONG_TIMEOUT = 2.0

# Times a retryable request is sent before it fails (each lost or timed-out attempt costs a
# reconnect, so this is also what one unanswerable request can cost the server).
REQUEST_ATTEMPTS = 3

# Messages per second the client sends at most (a burst of as many, then that pace). Directus's
# rate limiter (RATE_LIMITER_ENABLED) allows 50 per second per connection by default and drops
# what is over, pongs included: this keeps under it with room for the heartbeat.
SEND_RATE = 40.0


# --- What the machine asks the driver to do -----------------------------------------------


class OpenSocket:
    """Open a WebSocket to ``url``; report back with socket_opened / socket_closed."""

    def __init__(self, url):
        self.url = url


class SendText:
    """Send ``text`` as one text frame on the current socket."""

    def __init__(self, text):
        self.text = text


class CloseSocket:
    """Close the current socket (the machine already considers it gone)."""

    def __init__(self, reason=""):
        self.reason = reason


class ScheduleRefresh:
    """Fetch a fresh access token (``token_provider``) and pass it to ``authenticate()``."""


# --- What the machine delivers to the user --------------------------------------------------


class Opened:
    """The connection is open and authenticated: the SDK's ``open`` event."""


class Closed:
    """The socket closed: the SDK's ``close`` event."""

    def __init__(self, code=None, reason=""):
        self.code = code
        self.reason = reason


class ErrorOccurred:
    """The SDK's ``error`` event: a socket error, a bad frame, or an error nobody asked for."""

    def __init__(self, error):
        self.error = error


class MessageReceived:
    """Every decoded message from the server (the SDK's ``message`` event), pings excepted."""

    def __init__(self, message):
        self.message = message


class StateChanged:
    def __init__(self, state, previous):
        self.state = state
        self.previous = previous


class SubscriptionMessage:
    """A ``{type: "subscription", event, data, uid}`` message for subscription ``key``."""

    def __init__(self, key, message):
        self.key = key
        self.message = message


class SubscriptionEnded:
    """Subscription ``key`` will get nothing more; ``error`` is None when it was unsubscribed."""

    def __init__(self, key, error=None):
        self.key = key
        self.error = error


class RequestDone:
    def __init__(self, key, reply):
        self.key = key
        self.reply = reply

    @property
    def data(self):
        return self.reply.get("data")


class RequestFailed:
    def __init__(self, key, error):
        self.key = key
        self.error = error


# --- Reconnect schedule ---------------------------------------------------------------------


class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).

    ``retries=None`` retries forever. ``rng`` is injectable so tests are deterministic.
    """

    def __init__(self, delay=0.5, max_delay=30.0, retries=None, rng=None):
        self.delay = float(delay)
        self.max_delay = float(max_delay)
        self.retries = retries
        self.rng = rng or random.random

    def exhausted(self, attempt):
        return self.retries is not None and attempt >= self.retries

    def wait(self, attempt):
        ceiling = min(self.max_delay, self.delay * (2 ** min(attempt, 30)))
        return max(0.05, self.rng() * ceiling)


def websocket_url(url, path_url=None, auth_mode="handshake", access_token=None):
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


def _quote(value):
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


class _Subscription:
    def __init__(self, key, message, fixed_uid):
        self.key = key
        self.message = message  # the subscribe message without uid
        self.fixed_uid = fixed_uid  # a uid the user chose; else a fresh one per connection
        self.uid = None  # the uid on the current connection
        self.confirmed = False
        self.missed = False  # events were lost to an expired token: subscribe again


class _Request:
    def __init__(self, key, message, timeout, retry):
        self.key = key
        self.message = message  # without uid
        self.timeout = timeout
        self.retry = retry  # safe to send again after a lost reply
        self.uid = None
        self.deadline = None
        self.sent_at = None
        self.attempts = 0  # times sent
        self.followup = None  # "read-after-duplicate": see _on_reply
        self.dropped = 0  # attempts Directus's rate limiter may have dropped (not counted)


class _Connection:
    """What lives and dies with one socket: made when the socket is asked for, dropped with it."""

    def __init__(self, now, connect_timeout):
        self.connect_deadline = now + connect_timeout if connect_timeout else None
        self.opened_at = None  # when it became OPEN
        self.last_heard = now
        self.last_ping = None  # when the server's last ping came
        self.probe_sent = None  # when our unanswered liveness ping went out
        self.reauthenticating = False  # between TOKEN_EXPIRED and the new auth's "ok"
        self.subs_by_uid = {}  # uid on this connection -> _Subscription
        self.requests = {}  # key -> _Request, sent and waiting for a reply
        self.requests_by_uid = {}


class RealtimeProtocol:
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
        url,
        auth_mode="handshake",
        access_token=None,
        email=None,
        password=None,
        refresh_token=None,
        has_token_provider=False,
        heartbeat=True,
        heartbeat_period=30.0,
        connect_timeout=10.0,
        request_timeout=10.0,
        reconnect=None,
        outbox_limit=1000,
        ws_url=None,
        probes=True,
        request_attempts=REQUEST_ATTEMPTS,
        stable_after=None,
        send_rate=SEND_RATE,
    ):
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
        self.reconnect = Backoff() if reconnect is None else reconnect  # False: never
        self.stable_after = self.heartbeat_period if stable_after is None else stable_after
        self.outbox_limit = outbox_limit
        self.ws_url = ws_url
        self.send_rate = float(send_rate) if send_rate else None
        self._tokens = self.send_rate or 0.0  # what may be sent now (a token bucket)
        self._tokens_at = None  # when _tokens was last refilled
        self.paused_until = None  # REQUESTS_EXCEEDED: nothing paced is sent before then
        self._resend_subs = []  # subscriptions the rate limiter may have dropped
        # Fail fast on a URL that can never work.
        websocket_url(url, ws_url, auth_mode, access_token)

        self.state = CLOSED
        self.failure = None  # the error that put us in FAILED
        self.retry_at = None  # when RECONNECTING: the time of the next attempt
        self.attempt = 0  # failed attempts since a connection last stayed up (stable_after)
        self.ever_opened = False
        self.online = True

        self._uid = 0
        self._key = 0
        self._events = []
        self._subs = {}  # key -> _Subscription
        self._outbox = []  # _Request, waiting for an open connection, in order
        self._conn = None  # the _Connection while the state is one of LIVE_STATES
        self._observed_period = None  # the server's ping interval, once seen twice

    # ----- public inputs -----

    def connect(self, now):
        """Start connecting (no-op when already connected or connecting)."""
        if self.state in LIVE_STATES:
            return
        self.failure = None
        self.attempt = 0
        if not self.online:
            self._set_state(OFFLINE)
            return
        self._open_socket(now)

    def disconnect(self, now=None):
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

    def set_credentials(
        self, now, access_token=None, email=None, password=None, refresh_token=None
    ):
        """New credentials: used by the next auth; a FAILED client starts connecting again."""
        self.access_token = access_token
        self.email = email
        self.password = password
        self.refresh_token = refresh_token
        if self.state == FAILED:
            self.connect(now)

    def set_online(self, online, now):
        """The host's network status (the browser's ``online`` / ``offline`` events)."""
        self.online = bool(online)
        if not online and self.state == RECONNECTING:
            self.retry_at = None
            self._set_state(OFFLINE)
        elif online and self.state in (OFFLINE, RECONNECTING):
            self._open_socket(now)  # retry at once: the network just came back

    def authenticate(self, now, access_token):
        """Send a fresh access token on the open socket (after ``ScheduleRefresh``)."""
        self.access_token = access_token
        if self.state in (OPEN, AUTHENTICATING):
            self._send_auth()

    def token_refused(self, now, error):
        """The token provider could not get a token (e.g. the password was refused)."""
        if self.state in LIVE_STATES:
            self._fail(AuthenticationError(getattr(error, "code", "AUTH_FAILED"), str(error)))

    def socket_opened(self, now):
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

    def socket_refused(self, now, status, reason=""):
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

    def socket_error(self, now, error=None):
        self._emit(ErrorOccurred(error if error is not None else ConnectionLost("socket error")))

    def socket_closed(self, now, code=None, reason=""):
        if self.state not in LIVE_STATES:
            return  # a socket we already gave up on
        self._emit(Closed(code, reason))
        self._connection_lost(now, "closed (code " + str(code) + ")")

    def receive_text(self, text, now):
        conn = self._conn
        if conn is None:
            return  # from a socket the machine has already given up on
        conn.last_heard = now
        conn.probe_sent = None
        message, problem = _decode(text)
        if problem is not None:
            self._emit(ErrorOccurred(InvalidFrame(problem)))
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

    def _learn_heartbeat(self, conn, now):
        """Directus pings every WEBSOCKETS_HEARTBEAT_PERIOD; a server that pings more often
        than ``heartbeat_period`` gets its dead connections noticed sooner."""
        if conn.last_ping is not None:
            interval = now - conn.last_ping
            if 0.5 <= interval < self.heartbeat_period:
                self._observed_period = interval
        conn.last_ping = now

    def _probe_at(self):
        """When to ping Directus ourselves, or None.

        The server's heartbeat alone finds a dead connection only after 1.5 periods (45 s by
        default, until the real period has been seen twice). So when a reply is awaited, or
        the period is not known yet, a silent connection is asked: a ping Directus must answer
        with a pong within ``PONG_TIMEOUT``.
        """
        conn = self._conn
        if conn.probe_sent is not None or not self.probes:
            return None
        if conn.requests:
            return conn.last_heard + PROBE_WHEN_WAITING
        if self._observed_period is None:
            return conn.last_heard + PROBE_WHEN_UNSURE
        return None

    def _dead_at(self):
        conn = self._conn
        dead_at = conn.last_heard + self.liveness_period()
        if conn.probe_sent is not None:
            dead_at = min(dead_at, conn.probe_sent + PONG_TIMEOUT)
        return dead_at

    def liveness_period(self):
        """Seconds of silence after which an open connection is taken for dead."""
        period = self.heartbeat_period
        if self._observed_period is not None and self._observed_period < period:
            period = self._observed_period
        return 1.5 * period

    # ----- time -----

    def _deadlines(self):
        """Every ``(time, action)`` the machine waits for, in the order ``tick()`` serves them
        when several have passed (a dead socket is dropped before it is probed)."""
        deadlines = []
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
        return deadlines

    def tick(self, now):
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

    def next_deadline(self):
        """The earliest time at which ``tick()`` has something to do, or None."""
        times = [when for when, _ in self._deadlines()]
        return min(times) if times else None

    def _connect_timed_out(self, now):
        self._abort(now, RequestTimeout("Connection attempt timed out."), "connect timeout")

    def _silent_too_long(self, now):
        error = ConnectionLost(
            "Nothing heard from Directus for %.1f s; reconnecting." % (now - self._conn.last_heard)
        )
        self._abort(now, error, "no heartbeat")

    def _send_probe(self, now):
        self._conn.probe_sent = now
        self._send({"type": "ping", "uid": self._next_uid()})

    def _request_timed_out(self, req, now):
        heard_since = req.sent_at is not None and self._conn.last_heard > req.sent_at
        tries = req.attempts - req.dropped
        if req.retry and tries < self.request_attempts and not heard_since:
            # Directus answers in milliseconds and this connection has been silent since: it
            # is the likelier culprit. Reconnect; the request waits in the outbox and is sent
            # again, which its idempotence makes safe. (A connection heard from since, e.g.
            # by a liveness probe, is alive: a new one would get the same silence.)
            error = RequestTimeout(
                "No answer within %.0f s (attempt %d of %d); reconnecting to send it again."
                % (req.timeout, req.attempts, self.request_attempts)
            )
            self._abort(now, error, "request timeout")
            return
        self._forget_request(req)
        if req.attempts > 1:
            why = "Directus did not answer in %d attempts of %.0f s each." % (
                req.attempts,
                req.timeout,
            )
        else:
            why = "Directus did not answer within %.0f s." % req.timeout
        self._emit(
            RequestFailed(
                req.key, RequestTimeout(why + " The request may still have been carried out.")
            )
        )

    # ----- public commands -----

    def send_message(self, message, now=None):
        """Send ``message`` (dict or str) as is; a dict without ``uid`` gets one. Returns the uid.

        Unlike the SDK this never throws while disconnected: the message waits in the outbox.
        """
        if isinstance(message, str):
            if self.state == OPEN:
                self._emit(SendText(message))
                return None
            raise ConnectionLost("Cannot send a raw string while disconnected.")
        message = dict(message)
        if "uid" not in message:
            message["uid"] = self._next_uid()
        if self.state == OPEN:
            self._send(message)
        else:
            self._queue(_Request(None, message, None, False))
        return message["uid"]

    def subscribe(self, collection, event=None, query=None, uid=None, item=None):
        """Register a subscription; sent now when open, else on every (re)connect. Returns a key."""
        message = {"type": "subscribe", "collection": collection}
        if event is not None:
            message["event"] = event
        if query is not None:
            message["query"] = query
        if item is not None:
            message["item"] = item
        key = self._next_key()
        sub = _Subscription(key, message, uid)
        self._subs[key] = sub
        if self.state == OPEN:
            self._send_subscription(sub)
        return key

    def unsubscribe(self, key):
        sub = self._subs.pop(key, None)
        if sub is None:
            return
        if sub.uid is not None:
            if self._conn is not None:
                self._conn.subs_by_uid.pop(sub.uid, None)
            if self.state == OPEN:
                self._send({"type": "unsubscribe", "uid": sub.uid})
        self._emit(SubscriptionEnded(key, None))

    def request(self, message, timeout=None, retry=None, now=None):
        """Send a request that expects one reply (``items``, ``auth``...). Returns a key.

        The outcome arrives as ``RequestDone`` / ``RequestFailed`` with that key. While
        disconnected it waits in the outbox (bounded: ``OutboxFull`` past ``outbox_limit``,
        which also counts the requests in flight that would be sent again).
        ``retry`` says whether a request whose reply was lost may be sent again (at most
        ``request_attempts`` times in all); by default reads are, and creates whose items all
        carry their own primary key (a second try then meets RECORD_NOT_UNIQUE, which counts
        as success).
        """
        message = dict(message)
        if retry is None:
            retry = _is_idempotent(message)
        req = _Request(self._next_key(), message, timeout or self.request_timeout, retry)
        if (
            self.state == OPEN
            and not self._outbox
            and self._may_send(now)
            and not (retry and self._waiting() >= self.outbox_limit)
        ):
            self._send_request(req, now)
        else:
            self._queue(req)
        return req.key

    def outbox(self):
        """The messages waiting for the connection, in order (to persist them, e.g.)."""
        return [req.message for req in self._outbox]

    def events(self):
        """Drain and return what happened since the last call, in order."""
        events, self._events = self._events, []
        return events

    # ----- internals -----

    def _emit(self, event):
        self._events.append(event)

    def _set_state(self, state):
        if state != self.state:
            previous, self.state = self.state, state
            self._emit(StateChanged(state, previous))

    def _next_uid(self):
        self._uid += 1
        return str(self._uid)

    def _next_key(self):
        self._key += 1
        return self._key

    def _send(self, message):
        if self.send_rate is not None:
            self._tokens -= 1  # every frame counts against Directus's limiter
        self._emit(SendText(json.dumps(message, separators=(",", ":"))))

    def _auth_credentials(self):
        if self.access_token:
            return {"access_token": self.access_token}
        if self.refresh_token:
            return {"refresh_token": self.refresh_token}
        if self.email and self.password:
            return {"email": self.email, "password": self.password}
        return None

    def _send_auth(self):
        credentials = self._auth_credentials()
        if credentials is None:
            return
        message = {"type": "auth"}
        message.update(credentials)
        self._send(message)

    def _open_socket(self, now):
        self.retry_at = None
        self._conn = _Connection(now, self.connect_timeout)
        self._set_state(CONNECTING)
        token = self.access_token if self.auth_mode == "strict" else None
        self._emit(OpenSocket(websocket_url(self.url, self.ws_url, self.auth_mode, token)))

    def _became_open(self, now):
        self._conn.connect_deadline = None
        self._conn.opened_at = now
        self.ever_opened = True
        self._set_state(OPEN)
        self._emit(Opened())
        self._resend_subs = []
        for sub in self._subs.values():
            self._send_subscription(sub)
        self._flush(now)

    # ----- pacing (send_rate, REQUESTS_EXCEEDED) -----

    def _may_send(self, now):
        if self.send_rate is None or now is None:
            return True
        if self.paused_until is not None:
            if now < self.paused_until:
                return False
            self.paused_until = None
        if self._tokens_at is not None:
            refill = (now - self._tokens_at) * self.send_rate
            self._tokens = min(self.send_rate, self._tokens + refill)
        self._tokens_at = now
        return self._tokens > 0.999  # (float sums of refills fall a hair short of 1)

    def _flush_at(self):
        """When the next waiting request may go (None: nothing waits, or not open)."""
        if self.state != OPEN or not (self._outbox or self._resend_subs):
            return None
        if self.send_rate is None:
            return self._tokens_at
        if self.paused_until is not None:
            return self.paused_until
        if self._tokens_at is None:
            return None
        return self._tokens_at + max(0.0, 1.0 - self._tokens) / self.send_rate

    def _flush(self, now):
        """Send what waits, in order, as fast as ``send_rate`` allows."""
        while self.state == OPEN and self._resend_subs and self._may_send(now):
            sub = self._resend_subs.pop(0)
            if self._subs.get(sub.key) is sub and not sub.confirmed:
                self._send_subscription(sub)
        while self.state == OPEN and self._outbox and self._may_send(now):
            req = self._outbox.pop(0)
            if req.key is None:  # a raw send_message
                self._send(req.message)
            else:
                self._send_request(req, now)

    def _rate_limited(self, error, now):
        """Directus dropped a message of ours (``REQUESTS_EXCEEDED``, no uid: which one is not
        said). Wait as long as it asks, then send again the requests in flight that are safe
        to repeat and the subscriptions not confirmed yet; the others time out as usual."""
        wait = _retry_after(error.message)
        self.paused_until = (now or 0.0) + (wait if wait is not None else 1.0)
        self._tokens = 0.0
        conn = self._conn
        again = []
        for req in sorted(conn.requests.values(), key=lambda r: r.key):
            if req.retry:
                self._forget_request(req)
                req.dropped += 1
                req.uid = None
                req.deadline = None
                again.append(req)
        self._outbox = again + self._outbox
        for sub in self._subs.values():
            if sub.uid is not None and not sub.confirmed and sub not in self._resend_subs:
                self._resend_subs.append(sub)

    def _send_subscription(self, sub):
        subs_by_uid = self._conn.subs_by_uid
        if sub.uid is not None:
            subs_by_uid.pop(sub.uid, None)
        sub.uid = sub.fixed_uid if sub.fixed_uid is not None else self._next_uid()
        sub.confirmed = False
        subs_by_uid[sub.uid] = sub
        message = dict(sub.message)
        message["uid"] = sub.uid
        self._send(message)

    def _send_request(self, req, now):
        req.uid = self._next_uid()
        req.attempts += 1
        req.deadline = (now + req.timeout) if (now is not None and req.timeout) else None
        req.sent_at = now
        self._conn.requests[req.key] = req
        self._conn.requests_by_uid[req.uid] = req
        message = dict(req.message)
        message["uid"] = req.uid
        self._send(message)

    def _waiting(self):
        """What counts against ``outbox_limit``: the outbox, and the requests in flight that
        a lost connection would put back into it."""
        waiting = len(self._outbox)
        if self._conn is not None:
            for req in self._conn.requests.values():
                if req.retry:
                    waiting += 1
        return waiting

    def _queue(self, req):
        if self._waiting() >= self.outbox_limit:
            error = OutboxFull(
                "%d requests are already waiting to be sent or answered; wait for them "
                "before sending more." % self.outbox_limit
            )
            if req.key is None:
                raise error
            self._emit(RequestFailed(req.key, error))
            return
        self._outbox.append(req)

    def _request_for(self, uid):
        return self._conn.requests_by_uid.get(uid) if self._conn is not None else None

    def _forget_request(self, req):
        self._conn.requests.pop(req.key, None)
        if req.uid is not None:
            self._conn.requests_by_uid.pop(req.uid, None)

    def _on_auth(self, message, now):
        if message.get("status") == "ok" and message.get("refresh_token"):
            self.refresh_token = message["refresh_token"]
        req = self._request_for(message.get("uid"))
        if req is not None:  # an auth the user sent with request()
            if message.get("status") == "error":
                self._on_request_error(req, DirectusError.from_reply(message), now)
            else:
                self._on_reply(message, now)
            return
        conn = self._conn
        if message.get("status") == "ok":
            if self.state == AUTHENTICATING:
                self._became_open(now)
            elif conn.reauthenticating:
                conn.reauthenticating = False
                # Events Directus emitted while our token was expired were replaced by
                # FORBIDDEN errors: subscribe again, so each subscriber gets a fresh init and
                # can read back what it missed.
                for sub in self._subs.values():
                    if sub.missed:
                        sub.missed = False
                        if sub.uid is not None:
                            self._send({"type": "unsubscribe", "uid": sub.uid})
                        self._send_subscription(sub)
            return
        if message.get("status") != "error":
            return
        error = DirectusError.from_reply(message)
        if error.code == "TOKEN_EXPIRED" and self.state in (OPEN, AUTHENTICATING):
            # Re-authenticate on the same socket: subscriptions stay as they are.
            conn.reauthenticating = self.state == OPEN
            if self.has_token_provider:
                self._emit(ScheduleRefresh())
                return
            if self.refresh_token or (self.email and self.password):
                self.access_token = None  # expired: fall back to the refresh token / login
                self._send_auth()
                return
        if self.state == AUTHENTICATING or error.code == "AUTH_FAILED":
            self._fail(AuthenticationError(error.code, error.message, message))
            return
        self._emit(ErrorOccurred(error))

    def _on_subscription(self, message):
        sub = self._conn.subs_by_uid.get(message.get("uid"))
        if sub is None:
            return  # an unsubscribed subscription's last words
        if message.get("event") == "init":
            sub.confirmed = True
        self._emit(SubscriptionMessage(sub.key, message))

    def _on_reply(self, message, now):
        req = self._request_for(message.get("uid"))
        if req is None:
            return
        self._forget_request(req)
        if req.followup is not None:
            # The answer to a read we made after a create met RECORD_NOT_UNIQUE.
            data = message.get("data")
            if isinstance(req.followup, dict) and isinstance(data, list):
                data = data[0] if data else None
            if not _written(req.followup, data):
                error = DirectusError(
                    "RECORD_NOT_UNIQUE",
                    "An item with this id exists and is not what was written: choose another id.",
                    message,
                )
                self._emit(RequestFailed(req.key, error))
                return
            message = dict(message)
            message["data"] = data
        self._emit(RequestDone(req.key, message))

    def _on_error(self, message, now):
        uid = message.get("uid")
        error = DirectusError.from_reply(message)
        conn = self._conn
        if error.code == "REQUESTS_EXCEEDED" and uid is None:
            self._rate_limited(error, now)
            return
        if uid is not None:
            req = conn.requests_by_uid.get(uid)
            if req is not None:
                self._on_request_error(req, error, now)
                return
            sub = conn.subs_by_uid.get(uid)
            if sub is not None and sub.confirmed and conn.reauthenticating:
                # An event that fell into the gap of an expired token: not the end of the
                # subscription, which is sent again once the new token is accepted.
                sub.missed = True
                self._emit(ErrorOccurred(error))
                return
            if sub is not None:
                self._end_subscription(sub, error)
                return
            # The uid is known to nobody (a request that already timed out, an unsubscribed
            # subscription): never blame someone else for it.
            self._emit(ErrorOccurred(error))
            return
        # Directus sends many errors (FORBIDDEN, INVALID_PAYLOAD...) without a uid. Blame the one
        # request or unconfirmed subscription of that type that can have caused it; if there
        # are several, nobody can tell, so report it and let the requests time out.
        kind = message.get("type")
        if kind == "subscribe":
            candidates = [s for s in conn.subs_by_uid.values() if not s.confirmed]
            if len(candidates) == 1:
                self._end_subscription(candidates[0], error)
                return
        else:
            candidates = [r for r in conn.requests.values() if r.message.get("type") == kind]
            if kind is not None and len(candidates) == 1:
                self._on_request_error(candidates[0], error, now)
                return
        self._emit(ErrorOccurred(error))

    def _on_request_error(self, req, error, now):
        self._forget_request(req)
        if error.code == "RECORD_NOT_UNIQUE" and req.retry and _creates_with_ids(req.message):
            # Maybe an earlier attempt (this session's, or one before a reload) stored it
            # and its reply was lost: read it back by id, as a request of its own. It counts
            # as stored only if the row is what was written (``_written``).
            data = req.message.get("data")
            read = {"type": "items", "collection": req.message.get("collection"), "action": "read"}
            if isinstance(data, list):
                read["ids"] = [row.get("id") for row in data]
            else:
                read["id"] = data.get("id")
            if req.message.get("query"):
                read["query"] = req.message["query"]
            req.followup = data
            req.message = read
            req.attempts = 0
            self._send_request(req, now)
            return
        self._emit(RequestFailed(req.key, error))

    def _end_subscription(self, sub, error):
        self._subs.pop(sub.key, None)
        if self._conn is not None:
            self._conn.subs_by_uid.pop(sub.uid, None)
        self._emit(SubscriptionEnded(sub.key, error))

    def _drop_connection(self, retry_requests):
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

    def _abort(self, now, error, reason):
        """Give up on a socket the transport still holds: close it, then as if it had closed."""
        self._emit(ErrorOccurred(error))
        self._emit(CloseSocket(reason))
        if self.state != CONNECTING:  # only a socket that opened gets a close event
            self._emit(Closed(None, reason))
        self._connection_lost(now, reason)

    def _connection_lost(self, now, why):
        """After any lost socket: retry the requests that may be, then schedule a reconnect."""
        conn = self._conn
        if conn is not None and conn.opened_at is not None:
            if now - conn.opened_at >= self.stable_after or conn.last_ping is not None:
                # It stayed up (a server pings once per its own heartbeat period, which may be
                # shorter than ``stable_after``): the backoff starts over.
                self.attempt = 0
        self._drop_connection(retry_requests=True)
        if self.reconnect is False or self.reconnect.exhausted(self.attempt):
            if self.reconnect is False:
                message = "The connection closed (" + why + ") and reconnect is off."
            else:
                message = "Gave up after %d attempts to reconnect." % self.attempt
            self._fail(ConnectionFailed(message), socket_open=False)
            return
        if not self.online:
            self._set_state(OFFLINE)
            return
        delay = self.reconnect.wait(self.attempt)
        self.attempt += 1
        self.retry_at = now + delay
        self._set_state(RECONNECTING)

    def _fail(self, error, socket_open=True):
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

    def _end_everything(self, error):
        for key in list(self._subs):
            self._emit(SubscriptionEnded(key, error))
        self._subs = {}
        for req in self._outbox:
            if req.key is not None:
                self._emit(RequestFailed(req.key, error))
        self._outbox = []


def _bind(method, req):
    """``method(req, now)`` as an action of ``now`` (MicroPython has no functools.partial)."""
    return lambda now: method(req, now)


def _creates_with_ids(message):
    return message.get("action") == "create" and _is_idempotent(message)


def _written(data, stored):
    """Whether ``stored`` (the rows read back) holds every field of ``data`` (what was
    written) with the same value: one row (dicts) or several (lists, matched by id)."""
    if isinstance(data, list):
        if not isinstance(stored, list):
            return False
        by_id = {}
        for row in stored:
            if isinstance(row, dict):
                by_id[str(row.get("id"))] = row
        return all(_written(row, by_id.get(str(row.get("id")))) for row in data)
    if not isinstance(data, dict) or not isinstance(stored, dict):
        return False
    for name, value in data.items():
        if stored.get(name) != value:
            return False
    return True


def _retry_after(message):
    """Seconds from Directus's "Too many messages, retry after 734ms." (None if absent)."""
    text = str(message)
    at = text.find("after ")
    if at < 0:
        return None
    digits = ""
    for ch in text[at + 6 :]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) / 1000 if digits else None


def _decode(text):
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


def _preview(text):
    try:
        return str(text[:200])
    except Exception:
        return "<%s>" % type(text).__name__


def _is_idempotent(message):
    if message.get("type") != "items":
        return False
    action = message.get("action")
    if action == "read":
        return True
    if action == "create":
        data = message.get("data")
        rows = data if isinstance(data, list) else [data]
        return bool(rows) and all(isinstance(row, dict) and row.get("id") for row in rows)
    return False
