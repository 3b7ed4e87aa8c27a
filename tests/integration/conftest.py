"""Fixtures of the realtime client's integration tests (tests/integration/test_realtime_*.py).

The folder is not a package, so helpers reach the tests as fixtures:

- ``rt`` (function): a ``Harness``. ``rt.client(url, **kwargs)`` makes a ``RealtimeClient`` on
  the real ``websockets`` transport, wrapped so that every frame on the wire is recorded
  (``client.wire``) and every handler call and state change is counted (``client.probe``);
  all are disconnected at teardown. ``rt.connected(...)`` also connects it. ``rt.eventually``,
  ``rt.next(sub)``, ``rt.until(sub, predicate)`` are bounded waits whose failure message carries
  the client's wire log; ``rt.watch_for_retries(client)`` gives a client that gave up the time
  to retry, were it going to. ``rt.marker()``, ``rt.row(text)``, ``rt.ids(message)``, ``rt.WAIT``.
- ``public_directus``, ``strict_directus``, ``heartbeat_directus``, ``short_ttl_directus``,
  ``crash_directus``, ``limited_directus`` (module): extra Directus instances
  (``ExtraDirectus``) on copies of the main database, ports 8155-8199, configured as in
  ``EXTRA``. The ones the collected tests need are all started in the background when the
  session's first integration test starts, and each is stopped when its module is done (the
  rest at the end of the session).
- ``main_rows`` (module): deletes the rows the tests put in the main stack (user = TEST_USER).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from directus_realtime import RealtimeClient
from directus_realtime.protocol import Backoff
from directus_realtime.transports.cpython import WebsocketsSocket
from stack import directus
from stack.api import DirectusAPI
from tests.pools import InstancePool, extra_directus_fixture, needed, reserve_port, running_pool

TEST_USER = "pytest-realtime"  # the `user` of every row these tests create
WAIT = 15.0  # the bound of every wait for something Directus should do promptly
PORTS = range(8155, 8200)
# A client retries within this long of a failure at the most (its backoff's first ceiling).
FIRST_RETRY_WITHIN = Backoff().delay


def marker(label: str = "rt") -> str:
    """A text no other test (or run) uses."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


# --- the wire ----------------------------------------------------------------------------


class Wire:
    """A transport for RealtimeClient that is the real one (websockets) plus a log of what
    crossed it: ("connect", url), ("send", msg), ("recv", msg), ("error", repr), ("closed", code).
    Messages are decoded JSON when they are JSON."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str, Any]] = []
        self.sockets: list[WebsocketsSocket] = []

    def transport(self, url: str, listener: Any) -> _RecordingSocket:
        self._add("connect", url)
        recording = _RecordingListener(self, listener)
        sock = WebsocketsSocket(url, recording)
        self.sockets.append(sock)
        return _RecordingSocket(self, sock)

    def _add(self, kind: str, payload: Any) -> None:
        self.log.append((time.monotonic(), kind, payload))

    # views
    def of(self, kind: str) -> list[Any]:
        return [payload for _, k, payload in self.log if k == kind]

    @property
    def sent(self) -> list[Any]:
        return self.of("send")

    @property
    def received(self) -> list[Any]:
        return self.of("recv")

    @property
    def connects(self) -> list[str]:
        return self.of("connect")

    def mark(self) -> int:
        """A position in the log; ``since(mark)`` gives what came after it."""
        return len(self.log)

    def since(self, mark: int, kind: str | None = None) -> list[Any]:
        return [p for _, k, p in self.log[mark:] if kind is None or k == kind]

    def dump(self, last: int = 40) -> str:
        if not self.log:
            return "  (nothing on the wire)"
        t0 = self.log[0][0]
        lines = []
        for t, kind, payload in self.log[-last:]:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            if len(text) > 300:
                text = text[:300] + "..."
            arrow = {"send": ">>", "recv": "<<"}.get(kind, "--")
            lines.append(f"  {t - t0:7.3f}s {arrow} {kind:8} {text}")
        return "\n".join(lines)

    async def settle(self, timeout: float = 3.0) -> None:
        """Wait for every socket task of this client to end (after disconnect)."""
        tasks = [getattr(s, "_task", None) for s in self.sockets]
        tasks = [t for t in tasks if t is not None and not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class _RecordingSocket:
    def __init__(self, wire: Wire, sock: WebsocketsSocket) -> None:
        self._wire = wire
        self._sock = sock

    def send(self, text: str) -> None:
        self._wire._add("send", _decode(text))
        self._sock.send(text)

    def close(self) -> None:
        self._wire._add("close()", "")
        self._sock.close()


class _RecordingListener:
    def __init__(self, wire: Wire, listener: Any) -> None:
        self._wire = wire
        self._listener = listener

    def socket_opened(self) -> None:
        self._wire._add("opened", "")
        self._listener.socket_opened()

    def socket_message(self, text: str) -> None:
        self._wire._add("recv", _decode(text))
        self._listener.socket_message(text)

    def socket_closed(self, code: Any = None, reason: str = "") -> None:
        self._wire._add("closed", {"code": code, "reason": reason})
        self._listener.socket_closed(code, reason)

    def socket_refused(self, status: int, reason: str = "") -> None:
        self._wire._add("refused", {"status": status, "reason": reason})
        self._listener.socket_refused(status, reason)

    def socket_error(self, error: Any = None) -> None:
        self._wire._add("error", repr(error))
        self._listener.socket_error(error)


class Probe:
    """What the client told its user: state changes and on_websocket handler calls."""

    def __init__(self, client: RealtimeClient) -> None:
        self.states: list[str] = []
        self.opens = 0
        self.closes: list[Any] = []
        self.errors: list[Any] = []
        self.messages: list[dict[str, Any]] = []
        client.on_state(lambda state, _client: self.states.append(state))
        client.on_websocket("open", self._on_open)
        client.on_websocket("close", self.closes.append)
        client.on_websocket("error", self.errors.append)
        client.on_websocket("message", self.messages.append)

    def _on_open(self, _event: Any) -> None:
        self.opens += 1

    def summary(self) -> str:
        return (
            f"states={self.states} opens={self.opens} closes={len(self.closes)} "
            f"errors={[repr(e) for e in self.errors][-5:]}"
        )


def describe(client: RealtimeClient | None) -> str:
    if client is None:
        return ""
    wire = getattr(client, "wire", None)
    probe = getattr(client, "probe", None)
    parts = [f"state={client.state!r} failure={client.failure!r}"]
    if probe is not None:
        parts.append(probe.summary())
    if wire is not None:
        parts.append("wire:\n" + wire.dump())
    return "\n".join(parts)


# --- bounded waiting ----------------------------------------------------------------------


async def eventually(
    check: Callable[[], Any],
    what: str,
    timeout: float = WAIT,
    client: RealtimeClient | None = None,
) -> Any:
    """Poll ``check()`` until it returns something true (returned); fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}\n" + describe(client)
            )
        await asyncio.sleep(0.02)


async def next_message(
    sub: Any, client: RealtimeClient | None = None, timeout: float = WAIT
) -> dict:
    try:
        return await asyncio.wait_for(sub.__anext__(), timeout)
    except TimeoutError:
        raise AssertionError(
            f"no subscription message within {timeout:.0f} s\n" + describe(client)
        ) from None


async def collect_until(
    sub: Any,
    predicate: Callable[[dict], bool],
    client: RealtimeClient | None = None,
    timeout: float = WAIT,
) -> list[dict]:
    """Read messages until one matches ``predicate``; return all of them (that one last)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"the awaited subscription message did not come within {timeout:.0f} s; "
                f"got {seen}\n" + describe(client)
            )
        try:
            message = await asyncio.wait_for(sub.__anext__(), left)
        except TimeoutError:
            continue
        seen.append(message)
        if predicate(message):
            return seen


def ids_in(message: dict) -> list[str]:
    """The ids a subscription message is about (rows, a row, or delete's raw ids)."""
    data = message.get("data")
    rows = data if isinstance(data, list) else [data]
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append(row.get("id"))
        elif row is not None:
            out.append(row)
    return out


# --- fixtures ---------------------------------------------------------------------------


class Harness:
    """What the ``rt`` fixture gives a test."""

    WAIT = WAIT
    TEST_USER = TEST_USER
    marker = staticmethod(marker)
    ids = staticmethod(ids_in)
    describe = staticmethod(describe)
    eventually = staticmethod(eventually)
    next = staticmethod(next_message)
    until = staticmethod(collect_until)

    def __init__(self) -> None:
        self.clients: list[RealtimeClient] = []

    @staticmethod
    def row(text: str, **extra: Any) -> dict[str, Any]:
        return {"text": text, "user": TEST_USER, **extra}

    def client(self, url: str, **kwargs: Any) -> RealtimeClient:
        wire = Wire()
        client = RealtimeClient(url, transport=wire.transport, **kwargs)
        client.wire = wire  # type: ignore[attr-defined]
        client.probe = Probe(client)  # type: ignore[attr-defined]
        self.clients.append(client)
        return client

    async def connected(self, url: str, **kwargs: Any) -> RealtimeClient:
        client = self.client(url, **kwargs)
        try:
            await asyncio.wait_for(client.connect(), WAIT)
        except Exception as error:
            raise AssertionError(f"connect() failed: {error!r}\n" + describe(client)) from error
        return client

    @staticmethod
    async def watch_for_retries(client: RealtimeClient) -> float:
        """Give a client that gave up the time it would take to try again, were it going to:
        its sockets end, then twice the longest wait before a first retry. An absence can only
        be shown by watching, and the backoff says how long is enough. Returns the seconds."""
        t0 = time.monotonic()
        await client.wire.settle()  # type: ignore[attr-defined]
        await asyncio.sleep(2 * FIRST_RETRY_WITHIN)
        return time.monotonic() - t0

    async def close_all(self) -> None:
        for client in self.clients:
            client.disconnect()
        for client in self.clients:
            await client.wire.settle()  # type: ignore[attr-defined]


@pytest.fixture
async def rt() -> Any:
    harness = Harness()
    yield harness
    await harness.close_all()


class ExtraDirectus:
    """A Directus of our own on a copy of the main database (``.url``, ``.ws_url``,
    ``.handle``, ``.env``); ``kill()`` crashes it, ``start_again()`` starts it again on the
    same port, database and environment."""

    def __init__(self, handle: directus.DirectusHandle) -> None:
        self.handle = handle
        self._gone = False  # killed or stopped: its pid must never be signalled again

    @property
    def url(self) -> str:
        return self.handle.url

    @property
    def ws_url(self) -> str:
        return self.handle.ws_url

    @property
    def env(self) -> dict[str, str]:
        return self.handle.extra_env

    def kill(self) -> None:
        directus.kill(self.handle)
        self._gone = True

    def start_again(self) -> None:
        h = self.handle
        assert self._gone and not h.alive()
        self.handle = directus.start_directus(h.port, h.db_file, h.extra_env, h.log_file)
        self._gone = False

    def stop(self) -> None:
        if not self._gone:
            directus.stop(self.handle)
            self._gone = True


def _grant_public_read(server: ExtraDirectus, stack: dict[str, Any]) -> None:
    """Anonymous subscriptions need read on messages for the Public policy (this copy only)."""
    admin = DirectusAPI.login(server.url, stack["admin_email"], stack["admin_password"])
    public = admin.get(
        "/access", fields=["policy"], filter={"role": {"_null": True}, "user": {"_null": True}}
    )
    assert len(public) == 1, public
    body = {"policy": public[0]["policy"], "collection": "messages", "action": "read"}
    admin.post("/permissions", {**body, "fields": ["*"]})


HEARTBEAT_PERIOD = 2  # seconds
TOKEN_TTL = 3  # seconds

# fixture name -> Directus environment
EXTRA: dict[str, dict[str, str]] = {
    "public_directus": {"WEBSOCKETS_REST_AUTH": "public"},
    "strict_directus": {"WEBSOCKETS_REST_AUTH": "strict"},
    "heartbeat_directus": {"WEBSOCKETS_HEARTBEAT_PERIOD": str(HEARTBEAT_PERIOD)},
    "short_ttl_directus": {"ACCESS_TOKEN_TTL": f"{TOKEN_TTL}s"},
    "crash_directus": {},
    # Directus's own rate limiter, as documented (50 points per 1 s per connection): the live
    # query's outbox must keep under it and honour its "retry after".
    "limited_directus": {"RATE_LIMITER_ENABLED": "true"},
}
# fixture name -> what is done to it once started
PREPARE: dict[str, Callable[[ExtraDirectus, dict[str, Any]], None]] = {
    "public_directus": _grant_public_read,
}


def _plan_extra(stack: dict[str, Any], tmp: pytest.TempPathFactory) -> Callable[..., Any]:
    def plan(name: str) -> Callable[[], ExtraDirectus]:
        env, prepare = EXTRA[name], PREPARE.get(name)
        tmp_dir = tmp.mktemp(name)
        port = reserve_port(PORTS)

        def start() -> ExtraDirectus:
            db = directus.copy_of_main_db(tmp_dir)
            t0 = time.monotonic()
            handle = directus.start_directus(port, db, env, log_file=tmp_dir / "directus.log")
            server = ExtraDirectus(handle)
            print(f"\nextra Directus :{port} {env} up in {time.monotonic() - t0:.1f} s", flush=True)
            if prepare is not None:
                try:
                    prepare(server, stack)
                except BaseException:
                    server.stop()  # a server whose preparation failed is still ours to stop
                    raise
            return server

        return start

    return plan


@pytest.fixture(scope="session")
def extra_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InstancePool[ExtraDirectus]]:
    plan = _plan_extra(request.getfixturevalue("stack"), tmp_path_factory)
    yield from running_pool(request, InstancePool(plan, len(EXTRA)), EXTRA)


@pytest.fixture(scope="session", autouse=True)
def _start_extra_instances_early(request: pytest.FixtureRequest) -> None:
    """When the session has tests needing extra instances, start them now, in the background."""
    if needed(request, EXTRA):
        request.getfixturevalue("extra_pool")


public_directus = extra_directus_fixture("public_directus", "extra_pool", EXTRA)
strict_directus = extra_directus_fixture("strict_directus", "extra_pool", EXTRA)
heartbeat_directus = extra_directus_fixture("heartbeat_directus", "extra_pool", EXTRA)
short_ttl_directus = extra_directus_fixture("short_ttl_directus", "extra_pool", EXTRA)
crash_directus = extra_directus_fixture("crash_directus", "extra_pool", EXTRA)
limited_directus = extra_directus_fixture("limited_directus", "extra_pool", EXTRA)


@pytest.fixture(scope="module")
def main_rows(stack: dict[str, Any], admin_api: DirectusAPI) -> Iterator[None]:
    """Rows made by these tests on the main stack (user = TEST_USER) are deleted afterwards."""
    yield
    admin_api.call("DELETE", "/items/messages", {"query": {"filter": {"user": {"_eq": TEST_USER}}}})
