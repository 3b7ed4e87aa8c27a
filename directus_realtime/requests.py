"""Requests and their outbox, a part of the sans-I/O core (``protocol.RealtimeProtocol``).

uids from one counter, replies routed by uid, errors without a uid blamed on the one request
that can have caused them, retries of what is safe to repeat (at most ``request_attempts``
times), the read-back after ``RECORD_NOT_UNIQUE``, the bounded outbox that waits for the
connection, and pacing under Directus's rate limiter (``send_rate``, ``REQUESTS_EXCEEDED``).
"""

from .errors import ConnectionLost, DirectusError, OutboxFull, RequestTimeout
from .events import ErrorOccurred, RequestDone, RequestFailed, SendText

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._core import CoreState
else:
    CoreState = object


# Times a retryable request is sent before it fails (each lost or timed-out attempt costs a
# reconnect, so this is also what one unanswerable request can cost the server).
REQUEST_ATTEMPTS = 3

# Messages per second the client sends at most. Directus's rate limiter (RATE_LIMITER_ENABLED)
# allows 50 per second per connection by default, counted in fixed windows, and drops what is
# over, pongs included. A token bucket lets through its burst plus its rate in any one second:
# 40/s with a burst of 5 (SEND_RATE / 8) stays under 50 with room for the heartbeat.
SEND_RATE = 40.0
# After REQUESTS_EXCEEDED, a request still unanswered this long after the pause it asked for
# was dropped (Directus answers what it accepts in milliseconds): it is sent again.
DROPPED_AFTER = 1.0

OPEN = "open"  # (protocol.OPEN)


class Requests(CoreState):
    """The request half of ``RealtimeProtocol`` (a mixin: the state lives on the protocol;
    the attributes named ``_outbox``, ``_tokens*``, ``paused_until`` and ``_conn.requests*``
    are this part's own)."""

    def _request_timed_out(self, req: "_Request", now: float) -> None:
        heard_since = req.sent_at is not None and self._conn.last_heard > req.sent_at
        tries = req.attempts - req.dropped
        if req.retry and tries < self.request_attempts and not heard_since:
            # Directus answers in milliseconds and this connection has been silent since: it
            # is the likelier culprit. Reconnect; the request waits in the outbox and is sent
            # again, which its idempotence makes safe. (A connection heard from since, e.g.
            # by a liveness probe, is alive: a new one would get the same silence.)
            error = RequestTimeout(
                "No answer within %.0f s (attempt %d of %d); reconnecting to send it again."
                % (req.timeout or 0.0, req.attempts, self.request_attempts)
            )
            self._abort(now, error, "request timeout")
            return
        self._forget_request(req)
        if req.attempts > 1:
            why = "Directus did not answer in %d attempts of %.0f s each." % (
                req.attempts,
                req.timeout or 0.0,
            )
        else:
            why = "Directus did not answer within %.0f s." % (req.timeout or 0.0)
        self._emit(
            RequestFailed(
                req.key, RequestTimeout(why + " The request may still have been carried out.")
            )
        )

    def send_message(self, message: "dict[str, Any] | str", now: "float | None" = None) -> object:
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

    def request(
        self,
        message: "dict[str, Any]",
        timeout: "float | None" = None,
        retry: "bool | None" = None,
        now: "float | None" = None,
    ) -> int:
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
        key = self._next_key()
        req = _Request(key, message, timeout or self.request_timeout, retry)
        if (
            self.state == OPEN
            and not self._outbox
            and self._may_send(now)
            and not (retry and self._waiting() >= self.outbox_limit)
        ):
            self._send_request(req, now)
        else:
            self._queue(req)
        return key

    def outbox(self) -> "list[dict[str, Any]]":
        """The messages waiting for the connection, in order (to persist them, e.g.)."""
        return [req.message for req in self._outbox]

    def _may_send(self, now: "float | None") -> bool:
        if now is None:
            return True
        if self.paused_until is not None:
            if now < self.paused_until:
                return False
            self.paused_until = None
        if self.send_rate is None:
            return True
        if self._tokens_at is not None:
            refill = (now - self._tokens_at) * self.send_rate
            self._tokens = min(self._burst, self._tokens + refill)
        self._tokens_at = now
        return self._tokens > 0.999  # (float sums of refills fall a hair short of 1)

    def _flush_at(self) -> "float | None":
        """When the next waiting request may go (None: nothing waits, or not open)."""
        if self.state != OPEN or not self._outbox:
            return None
        if self.paused_until is not None:
            return self.paused_until
        if self.send_rate is None:
            return None
        if self._tokens_at is None:
            return None
        return self._tokens_at + max(0.0, 1.0 - self._tokens) / self.send_rate

    def _flush(self, now: float) -> None:
        """Send what waits, in order, as fast as ``send_rate`` allows."""
        while self.state == OPEN and self._outbox and self._may_send(now):
            req = self._outbox.pop(0)
            if req.key is None:  # a raw send_message
                self._send(req.message)
            else:
                self._send_request(req, now)

    def _rate_limited(self, error: DirectusError, now: "float | None") -> None:
        """Directus dropped a message of ours (``REQUESTS_EXCEEDED``, no uid: which one is not
        said). Send nothing paced for as long as it asks; the requests in flight that are safe
        to repeat and are still unanswered ``DROPPED_AFTER`` later, and the subscriptions not
        confirmed by then, were dropped: they are sent again (``_resend_dropped``)."""
        wait = _retry_after(error.message)
        self.paused_until = (now or 0.0) + (wait if wait is not None else 1.0)
        self._tokens = 0.0
        resend_at = self.paused_until + DROPPED_AFTER
        for req in self._conn.requests.values():
            if req.retry:
                req.suspect_at = resend_at
        if any(sub.uid is not None and not sub.confirmed for sub in self._subs.values()):
            self._subs_suspect_at = resend_at

    def _suspect_at(self) -> "float | None":
        times = [r.suspect_at for r in self._conn.requests.values() if r.suspect_at is not None]
        if self._subs_suspect_at is not None:
            times.append(self._subs_suspect_at)
        return min(times) if times else None

    def _resend_dropped(self, now: float) -> None:
        conn = self._conn
        due = [r for r in conn.requests.values() if r.suspect_at is not None]
        again = []
        for req in sorted(due, key=lambda r: r.key):
            if req.suspect_at > now:
                continue
            self._forget_request(req)
            req.suspect_at = None
            req.dropped += 1
            req.uid = None
            req.deadline = None
            again.append(req)
        self._outbox = again + self._outbox
        if self._subs_suspect_at is not None and self._subs_suspect_at <= now:
            self._subs_suspect_at = None
            for sub in self._subs.values():
                if sub.uid is not None and not sub.confirmed:
                    self._send_subscription(sub)
        self._flush(now)

    def _send_request(self, req: "_Request", now: "float | None") -> None:
        req.uid = self._next_uid()
        req.attempts += 1
        req.deadline = (now + req.timeout) if (now is not None and req.timeout) else None
        req.sent_at = now
        self._conn.requests[req.key] = req
        self._conn.requests_by_uid[req.uid] = req
        message = dict(req.message)
        message["uid"] = req.uid
        self._send(message)

    def _waiting(self) -> int:
        """What counts against ``outbox_limit``: the outbox, and the requests in flight that
        a lost connection would put back into it."""
        waiting = len(self._outbox)
        if self._conn is not None:
            for req in self._conn.requests.values():
                if req.retry:
                    waiting += 1
        return waiting

    def _queue(self, req: "_Request") -> None:
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

    def _request_for(self, uid: object) -> "_Request | None":
        return self._conn.requests_by_uid.get(uid) if self._conn is not None else None

    def _forget_request(self, req: "_Request") -> None:
        self._conn.requests.pop(req.key, None)
        if req.uid is not None:
            self._conn.requests_by_uid.pop(req.uid, None)

    def _on_reply(self, message: "dict[str, Any]", now: float) -> None:
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

    def _on_error(self, message: "dict[str, Any]", now: float) -> None:
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

    def _on_request_error(self, req: "_Request", error: DirectusError, now: float) -> None:
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
                read["id"] = data.get("id") if isinstance(data, dict) else None
            if req.message.get("query"):
                read["query"] = req.message["query"]
            req.followup = data
            req.message = read
            req.attempts = 0
            req.dropped = 0
            self._outbox.insert(0, req)  # first in line, and paced like the rest
            self._flush(now)
            return
        conn = self._conn
        if error.code == "FORBIDDEN" and conn is not None and conn.reauthenticating:
            # Directus said TOKEN_EXPIRED, then served this request as the public user would:
            # it was not refused for itself, and goes again once signed in.
            error = DirectusError(
                "TOKEN_EXPIRED",
                "The access token expired before this request reached Directus; "
                "send it again once signed in.",
                error.reply,
            )
        self._emit(RequestFailed(req.key, error))


class _Request:
    def __init__(
        self, key: "int | None", message: "dict[str, Any]", timeout: "float | None", retry: bool
    ) -> None:
        self.key = key
        self.message = message  # without uid
        self.timeout = timeout
        self.retry = retry  # safe to send again after a lost reply
        self.uid: str | None = None
        self.deadline: float | None = None
        self.sent_at: float | None = None
        self.attempts = 0  # times sent
        self.followup: Any = None  # "read-after-duplicate": see _on_reply
        self.dropped = 0  # attempts Directus's rate limiter may have dropped (not counted)
        self.suspect_at: float | None = None  # REQUESTS_EXCEEDED: sent again if unanswered by then


def _creates_with_ids(message: "dict[str, Any]") -> bool:
    return message.get("action") == "create" and _is_idempotent(message)


def _written(data: object, stored: object) -> bool:
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


def _retry_after(message: object) -> "float | None":
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


def _is_idempotent(message: "dict[str, Any]") -> bool:
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
