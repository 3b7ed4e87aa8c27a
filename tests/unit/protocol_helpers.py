"""Helpers of the sans-I/O core's unit tests: a protocol with test defaults, and Directus's
side of the conversation played by hand (what was sent, a reply, the handshake, a reconnect)."""

import json

from directus_realtime import protocol as p
from directus_realtime.protocol import Backoff, RealtimeProtocol

URL = "http://directus.test"
HALF = lambda: 0.5  # noqa: E731  (rng for Backoff: half of the ceiling, always)


# --- helpers --------------------------------------------------------------------------------


def make(**options):
    options.setdefault("access_token", "TOKEN")
    options.setdefault("reconnect", Backoff(rng=HALF))
    return RealtimeProtocol(options.pop("url", URL), **options)


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def sent(events):
    """The decoded messages of every SendText, in order."""
    return [json.loads(e.text) for e in of(events, p.SendText)]


def reply(proto, message, now):
    proto.receive_text(json.dumps(message), now)
    return proto.events()


def auth_ok(proto, now, **extra):
    return reply(proto, dict({"type": "auth", "status": "ok"}, **extra), now)


def error_reply(kind, code, uid=None, message="nope"):
    out = {"type": kind, "status": "error", "error": {"code": code, "message": message}}
    if uid is not None:
        out["uid"] = uid
    return out


def open_proto(proto, now=0.0):
    """connect -> socket_opened -> auth ok; returns every event of the handshake."""
    proto.connect(now)
    proto.socket_opened(now)
    events = proto.events()
    if proto.state == p.AUTHENTICATING:
        events += auth_ok(proto, now)
    assert proto.state == p.OPEN
    return events


def reconnect(proto, closed_at, now=None):
    """Socket drops at ``closed_at``; the retry happens and the handshake completes."""
    proto.socket_closed(closed_at, None)
    events = proto.events()
    assert proto.state == p.RECONNECTING
    when = proto.retry_at if now is None else now
    proto.tick(when)
    events += proto.events()
    proto.socket_opened(when)
    events += proto.events()
    events += auth_ok(proto, when)
    assert proto.state == p.OPEN
    return events


def states(events):
    return [e.state for e in of(events, p.StateChanged)]


# --- websocket_url --------------------------------------------------------------------------
