"""directus_realtime: the Directus SDK's realtime client, in Python.

One sans-I/O core (``protocol.py``), one asyncio driver (``client.py``) and two thin transports:
the browser's native ``WebSocket`` through PyScript's FFI, and ``websockets`` in CPython.
Names mirror ``@directus/sdk`` in snake_case::

    directus = create_directus(url).with_(static_token(token)).with_(realtime())
    await directus.connect()
    subscription = await directus.subscribe("messages", event="create", query={...})
    async for item in subscription:
        print(item)
"""

from .client import RealtimeClient, Subscription, Waiter
from .errors import (
    AuthenticationError,
    ConnectionFailed,
    ConnectionLost,
    DirectusError,
    InvalidFrame,
    OutboxFull,
    RealtimeError,
    RequestTimeout,
)
from .protocol import Backoff, RealtimeProtocol, websocket_url

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "AuthenticationError",
    "Backoff",
    "ConnectionFailed",
    "ConnectionLost",
    "DirectusError",
    "InvalidFrame",
    "OutboxFull",
    "RealtimeClient",
    "RealtimeError",
    "RealtimeProtocol",
    "RequestTimeout",
    "Subscription",
    "Waiter",
    "create_directus",
    "credentials",
    "realtime",
    "static_token",
    "websocket_url",
]


class DirectusClient:
    """What ``create_directus(url)`` returns; compose features with ``.with_()``."""

    def __init__(self, url: str, auth: "dict[str, Any] | None" = None) -> None:
        self.url = url
        self.auth = dict(auth or {})

    def with_(self, feature: "Callable[[DirectusClient], object]") -> object:
        return feature(self)


def create_directus(url: str) -> DirectusClient:
    """The SDK's ``createDirectus(url)``."""
    return DirectusClient(url)


def static_token(token: str) -> "Callable[[DirectusClient], DirectusClient]":
    """The SDK's ``staticToken(token)``."""
    return lambda client: DirectusClient(client.url, {"access_token": token})


def credentials(email: str, password: str) -> "Callable[[DirectusClient], DirectusClient]":
    """Log the socket in with email and password (the SDK's ``authentication()`` + ``login``)."""
    return lambda client: DirectusClient(client.url, {"email": email, "password": password})


def realtime(**options: object) -> "Callable[[DirectusClient], RealtimeClient]":
    """The SDK's ``realtime({...})``: ``auth_mode``, ``heartbeat``, ``connect_timeout``,
    ``reconnect`` (``{"delay", "retries", "max_delay"}`` or False), ``url``, and the rest of
    ``RealtimeClient``'s keyword arguments."""
    if "url" in options:
        options["ws_url"] = options.pop("url")

    def build(client: DirectusClient) -> RealtimeClient:
        merged = dict(client.auth)
        merged.update(options)
        return RealtimeClient(client.url, **merged)

    return build
