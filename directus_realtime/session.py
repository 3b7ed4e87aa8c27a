"""Authentication and liveness, a part of the sans-I/O core (``protocol.RealtimeProtocol``).

Which credentials the ``auth`` message carries, re-authentication on the same socket after
``TOKEN_EXPIRED``, and when a silent connection is probed or taken for dead (Directus's
heartbeat alone notices a dead connection only after 1.5 periods).
"""

from .errors import AuthenticationError, ConnectionLost, DirectusError
from .events import ErrorOccurred, ScheduleRefresh

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._core import CoreState
    from .protocol import _Connection
else:
    CoreState = object


# Liveness probes (see Session._probe_at), in seconds; ``probes=False`` turns them off.
PROBE_WHEN_WAITING = 2.0  # silence while a reply is awaited
PROBE_WHEN_UNSURE = 10.0  # silence before the server's ping period is known
PONG_TIMEOUT = 2.0

OPEN = "open"  # (protocol.OPEN)
FAILED = "failed"
AUTHENTICATING = "authenticating"
LIVE_STATES = ("connecting", AUTHENTICATING, OPEN)


class Session(CoreState):
    """The auth and liveness part of ``RealtimeProtocol`` (a mixin)."""

    def set_credentials(
        self,
        now: float,
        access_token: "str | None" = None,
        email: "str | None" = None,
        password: "str | None" = None,
        refresh_token: "str | None" = None,
    ) -> None:
        """New credentials: used by the next auth; a FAILED client starts connecting again."""
        self.access_token = access_token
        self.email = email
        self.password = password
        self.refresh_token = refresh_token
        if self.state == FAILED:
            self.connect(now)

    def authenticate(self, now: float, access_token: str) -> None:
        """Send a fresh access token on the open socket (after ``ScheduleRefresh``)."""
        self.access_token = access_token
        if self.state in (OPEN, AUTHENTICATING):
            self._send_auth()

    def token_refused(self, now: float, error: BaseException) -> None:
        """The token provider could not get a token (e.g. the password was refused)."""
        if self.state in LIVE_STATES:
            self._fail(AuthenticationError(getattr(error, "code", "AUTH_FAILED"), str(error)))

    def _auth_credentials(self) -> "dict[str, str] | None":
        if self.access_token:
            return {"access_token": self.access_token}
        if self.refresh_token:
            return {"refresh_token": self.refresh_token}
        if self.email and self.password:
            return {"email": self.email, "password": self.password}
        return None

    def _send_auth(self) -> None:
        credentials = self._auth_credentials()
        if credentials is None:
            return
        message = {"type": "auth"}
        message.update(credentials)
        self._send(message)

    def _on_auth(self, message: "dict[str, Any]", now: float) -> None:
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

    def _learn_heartbeat(self, conn: "_Connection", now: float) -> None:
        """Directus pings every WEBSOCKETS_HEARTBEAT_PERIOD; a server that pings more often
        than ``heartbeat_period`` gets its dead connections noticed sooner."""
        if conn.last_ping is not None:
            interval = now - conn.last_ping
            if 0.5 <= interval < self.heartbeat_period:
                self._observed_period = interval
        conn.last_ping = now

    def _probe_at(self) -> "float | None":
        """When to ping Directus ourselves, or None.

        The server's heartbeat alone finds a dead connection only after 1.5 periods (45 s by
        default, until the real period has been seen twice). So when a reply is awaited, or
        the period is not known yet, a silent connection is asked: a ping Directus must answer
        with a pong within ``PONG_TIMEOUT``.
        """
        conn: _Connection = self._conn
        if conn.probe_sent is not None or not self.probes:
            return None
        if conn.requests:
            return conn.last_heard + PROBE_WHEN_WAITING
        if self._observed_period is None:
            return conn.last_heard + PROBE_WHEN_UNSURE
        return None

    def _dead_at(self) -> float:
        conn: _Connection = self._conn
        dead_at = conn.last_heard + self.liveness_period()
        if conn.probe_sent is not None:
            dead_at = min(dead_at, conn.probe_sent + PONG_TIMEOUT)
        return dead_at

    def liveness_period(self) -> float:
        """Seconds of silence after which an open connection is taken for dead."""
        period = self.heartbeat_period
        if self._observed_period is not None and self._observed_period < period:
            period = self._observed_period
        return 1.5 * period

    def _silent_too_long(self, now: float) -> None:
        error = ConnectionLost(
            "Nothing heard from Directus for %.1f s; reconnecting." % (now - self._conn.last_heard)
        )
        self._abort(now, error, "no heartbeat")

    def _send_probe(self, now: float) -> None:
        self._conn.probe_sent = now
        self._send({"type": "ping", "uid": self._next_uid()})
