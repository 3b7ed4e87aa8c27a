"""Unit tests of the asyncio driver, directus_realtime/client.py, over a fake transport.

Each test is a plain function that runs its scenario with ``asyncio.run``; the fake transport
records what was sent and lets the test play the server through the listener it was given.
"""

import asyncio
import json

import pytest

from directus_realtime import (
    AuthenticationError,
    ConnectionFailed,
    DirectusError,
    OutboxFull,
    RealtimeClient,
    RequestTimeout,
    Waiter,
    create_directus,
    realtime,
    static_token,
)
from directus_realtime import protocol as p
from directus_realtime.client import _backoff

URL = "http://directus.test"


class FakeSocket:
    def __init__(self, url, listener):
        self.url = url
        self.listener = listener
        self.sent = []
        self.closed = False

    def send(self, text):
        self.sent.append(json.loads(text) if text.startswith("{") else text)

    def close(self):
        self.closed = True

    # the server's side
    def opened(self):
        self.listener.socket_opened()

    def message(self, message):
        self.listener.socket_message(json.dumps(message) if isinstance(message, dict) else message)

    def closed_by_server(self, code=None, reason=""):
        self.listener.socket_closed(code, reason)

    def last(self, kind):
        return [m for m in self.sent if isinstance(m, dict) and m.get("type") == kind][-1]


class FakeTransport:
    def __init__(self):
        self.sockets = []

    def __call__(self, url, listener):
        socket = FakeSocket(url, listener)
        self.sockets.append(socket)
        return socket

    @property
    def current(self):
        return self.sockets[-1]


def make(**options):
    transport = FakeTransport()
    options.setdefault("access_token", "TOKEN")
    options.setdefault("reconnect", p.Backoff(rng=lambda: 0.5))
    client = RealtimeClient(URL, transport=transport, **options)
    return client, transport


async def settle():
    for _ in range(3):
        await asyncio.sleep(0)


async def connected(**options):
    client, transport = make(**options)
    task = asyncio.ensure_future(client.connect())
    await settle()
    transport.current.opened()
    transport.current.message({"type": "auth", "status": "ok"})
    await asyncio.wait_for(task, 1)
    return client, transport


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 2))


# --- connect ----------------------------------------------------------------------------------


def test_connect_resolves_only_after_auth_ok():
    async def scenario():
        client, transport = make(access_token="abc")
        task = asyncio.ensure_future(client.connect())
        await settle()
        socket = transport.current
        assert socket.url == "ws://directus.test/websocket"
        assert client.state == "connecting" and not task.done()
        socket.opened()
        await settle()
        assert socket.sent == [{"type": "auth", "access_token": "abc"}]
        assert client.state == "authenticating" and not task.done()
        socket.message({"type": "auth", "status": "ok"})
        await asyncio.wait_for(task, 1)
        assert client.is_connected and client.state == "open"
        await client.connect()  # already open: returns at once, no new socket
        assert len(transport.sockets) == 1

    run(scenario())


def test_connect_opens_the_socket_when_called_not_when_awaited():
    """Like the SDK's Promise: a page goes on with its own work during the handshake."""

    async def scenario():
        client, transport = make(access_token="abc")
        connecting = client.connect()
        assert len(transport.sockets) == 1 and client.state == "connecting"
        transport.current.opened()
        assert transport.current.sent == [{"type": "auth", "access_token": "abc"}]
        transport.current.message({"type": "auth", "status": "ok"})
        await asyncio.wait_for(connecting, 1)
        assert client.is_connected

    run(scenario())


def test_connect_raises_authentication_error_on_refused_auth():
    async def scenario():
        client, transport = make()
        task = asyncio.ensure_future(client.connect())
        await settle()
        transport.current.opened()
        transport.current.message(
            {"type": "auth", "status": "error", "error": {"code": "AUTH_FAILED", "message": "no"}}
        )
        with pytest.raises(AuthenticationError) as info:
            await asyncio.wait_for(task, 1)
        assert info.value.code == "AUTH_FAILED"
        assert client.state == "failed" and client.failure is info.value
        assert transport.current.closed

    run(scenario())


def test_disconnect_makes_a_waiting_connect_raise():
    async def scenario():
        client, transport = make()
        task = asyncio.ensure_future(client.connect())
        await settle()
        client.disconnect()
        with pytest.raises(ConnectionFailed):
            await asyncio.wait_for(task, 1)
        assert client.state == "closed"
        assert transport.current.closed

    run(scenario())


# --- handlers ---------------------------------------------------------------------------------


def test_on_websocket_handlers_are_called_and_the_remover_works():
    async def scenario():
        client, transport = make()
        seen = {"open": [], "message": [], "close": [], "error": []}
        removers = {name: client.on_websocket(name, seen[name].append) for name in seen}
        task = asyncio.ensure_future(client.connect())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        await task
        assert len(seen["open"]) == 1 and isinstance(seen["open"][0], p.Opened)
        assert seen["message"] == [{"type": "auth", "status": "ok"}]

        transport.current.message("not json")
        assert len(seen["error"]) == 1 and seen["error"][0].code == "INVALID_FRAME"

        removers["message"]()
        removers["message"]()  # a second call is harmless
        transport.current.message({"type": "items", "data": []})
        assert len(seen["message"]) == 1

        transport.current.closed_by_server(1005, "gone")
        assert len(seen["close"]) == 1 and seen["close"][0].code == 1005
        assert client.state == "reconnecting"

    run(scenario())


def test_on_websocket_rejects_an_unknown_event():
    client, _ = make()
    with pytest.raises(ValueError):
        client.on_websocket("data", print)


def test_a_raising_handler_does_not_break_the_client(capsys):
    async def scenario():
        client, transport = make()

        def broken(_):
            raise RuntimeError("handler bug")

        client.on_websocket("open", broken)
        await_connect = asyncio.ensure_future(client.connect())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        await asyncio.wait_for(await_connect, 1)
        assert client.is_connected

    run(scenario())
    assert "handler bug" in capsys.readouterr().out


def test_on_state_reports_every_state_change():
    async def scenario():
        client, transport = make()
        seen = []
        remove = client.on_state(lambda state, c: seen.append(state))
        task = asyncio.ensure_future(client.connect())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        await task
        remove()
        client.disconnect()
        return seen

    assert run(scenario()) == ["connecting", "authenticating", "open"]


# --- subscriptions ----------------------------------------------------------------------------


def test_subscription_yields_init_then_events_and_stops_after_unsubscribe():
    async def scenario():
        client, transport = await connected()
        sub = await client.subscribe("messages", event="create", query={"fields": ["*"]})
        socket = transport.current
        request = socket.last("subscribe")
        assert request["collection"] == "messages" and request["event"] == "create"
        uid = request["uid"]
        socket.message({"type": "subscription", "event": "init", "uid": uid})
        socket.message({"type": "subscription", "event": "create", "data": [{"id": 1}], "uid": uid})
        got = []
        async for message in sub:
            got.append(message)
            if len(got) == 2:
                sub.unsubscribe()
        assert [m["event"] for m in got] == ["init", "create"]
        assert socket.last("unsubscribe") == {"type": "unsubscribe", "uid": uid}
        assert sub.uid == uid

    run(scenario())


def test_subscription_iterator_waits_for_messages():
    async def scenario():
        client, transport = await connected()
        sub = await client.subscribe("messages")
        uid = transport.current.last("subscribe")["uid"]
        pending = asyncio.ensure_future(sub.__anext__())
        await settle()
        assert not pending.done()
        transport.current.message({"type": "subscription", "event": "init", "uid": uid})
        message = await asyncio.wait_for(pending, 1)
        assert message["event"] == "init"

    run(scenario())


def test_subscription_iterator_raises_when_auth_is_refused():
    async def scenario():
        client, transport = make()
        sub = await client.subscribe("messages")
        task = asyncio.ensure_future(client.connect())
        await settle()
        waiting = asyncio.ensure_future(sub.__anext__())
        await settle()
        transport.current.opened()
        transport.current.message(
            {"type": "auth", "status": "error", "error": {"code": "INVALID_CREDENTIALS"}}
        )
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(waiting, 1)
        with pytest.raises(AuthenticationError):
            await task
        with pytest.raises(StopAsyncIteration):  # raised once, then the iterator is done
            await sub.__anext__()

    run(scenario())


def test_subscription_iterator_raises_connection_failed_on_disconnect():
    async def scenario():
        client, transport = await connected()
        sub = await client.subscribe("messages")
        client.disconnect()
        with pytest.raises(ConnectionFailed):
            await asyncio.wait_for(sub.__anext__(), 1)
        assert transport.current.closed

    run(scenario())


def test_listen_hands_messages_over_inside_the_socket_event_and_queued_ones_first():
    async def scenario():
        client, transport = await connected()
        sub = await client.subscribe("messages", event="create")
        uid = transport.current.last("subscribe")["uid"]
        transport.current.message({"type": "subscription", "event": "init", "uid": uid})
        got = []
        sub.listen(got.append)
        assert [m["event"] for m in got] == ["init"]  # what was queued, at once
        event = {"type": "subscription", "event": "create", "data": [{"id": 1}], "uid": uid}
        transport.current.message(event)
        assert got[-1] == event  # no await in between: delivered inside the message event
        sub.unsubscribe()
        with pytest.raises(StopAsyncIteration):  # and nothing was queued for async for
            await asyncio.wait_for(sub.__anext__(), 1)

    run(scenario())


def test_a_raising_listen_callback_does_not_end_the_subscription(capsys):
    async def scenario():
        client, transport = await connected()
        sub = await client.subscribe("messages")
        uid = transport.current.last("subscribe")["uid"]
        calls = []

        def callback(message):
            calls.append(message["event"])
            raise RuntimeError("broken callback")

        sub.listen(callback)
        for event in ("init", "create"):
            transport.current.message({"type": "subscription", "event": event, "uid": uid})
        assert calls == ["init", "create"]
        assert client.is_connected
        assert "broken callback" in capsys.readouterr().out

    run(scenario())


def test_wait_closed_returns_on_unsubscribe_and_raises_on_disconnect():
    async def scenario():
        client, transport = await connected()
        sub = await client.subscribe("messages")
        sub.listen(lambda message: None)
        waiting = asyncio.ensure_future(sub.wait_closed())
        await settle()
        assert not waiting.done()
        sub.unsubscribe()
        assert await asyncio.wait_for(waiting, 1) is None

        other = await client.subscribe("messages")
        waiting = asyncio.ensure_future(other.wait_closed())
        await settle()
        client.disconnect()
        with pytest.raises(ConnectionFailed):
            await asyncio.wait_for(waiting, 1)

    run(scenario())


# --- requests ---------------------------------------------------------------------------------


def test_create_resolves_with_reply_data():
    async def scenario():
        client, transport = await connected()
        task = asyncio.ensure_future(client.create("messages", {"text": "hi"}))
        sent = transport.current.last("items")  # sent by the call itself, before any await
        assert sent["action"] == "create" and sent["collection"] == "messages"
        assert sent["data"] == {"text": "hi"} and "query" not in sent
        transport.current.message(
            {"type": "items", "data": {"id": 9, "text": "hi"}, "uid": sent["uid"]}
        )
        assert await asyncio.wait_for(task, 1) == {"id": 9, "text": "hi"}

    run(scenario())


def test_create_raises_directus_error_on_error_reply():
    async def scenario():
        client, transport = await connected()
        task = asyncio.ensure_future(client.create("messages", {"text": "hi"}))
        await settle()
        uid = transport.current.last("items")["uid"]
        transport.current.message(
            {
                "type": "items",
                "status": "error",
                "uid": uid,
                "error": {"code": "FORBIDDEN", "message": "You don't have permission"},
            }
        )
        with pytest.raises(DirectusError) as info:
            await asyncio.wait_for(task, 1)
        assert info.value.code == "FORBIDDEN"
        assert "permission" in info.value.message

    run(scenario())


def test_create_calls_back_inside_the_reply_with_no_turn_of_the_loop():
    """``add_done_callback`` runs while the reply is handled: a page can settle a JS Promise
    from it without waiting for the event loop (a browser task in PyScript)."""

    async def scenario():
        client, transport = await connected()
        creating = client.create("messages", {"text": "hi"})
        seen = []
        creating.add_done_callback(lambda done: seen.append(done.result()))
        assert not creating.done() and seen == []
        uid = transport.current.last("items")["uid"]
        transport.current.message({"type": "items", "data": {"id": 9}, "uid": uid})
        assert seen == [{"id": 9}]  # before any await
        assert creating.done() and creating.exception() is None
        late = []
        creating.add_done_callback(late.append)  # already done: called at once
        assert late == [creating]
        assert await creating == {"id": 9}  # and awaitable, after it is done as before
        assert await creating == {"id": 9}

    run(scenario())


def test_a_refused_create_calls_back_with_the_error():
    async def scenario():
        client, transport = await connected()
        creating = client.create("messages", {"text": "hi"})
        errors = []
        creating.add_done_callback(lambda done: errors.append(done.exception()))
        uid = transport.current.last("items")["uid"]
        refusal = {"code": "FORBIDDEN", "message": "no"}
        transport.current.message(
            {"type": "items", "status": "error", "uid": uid, "error": refusal}
        )
        assert len(errors) == 1 and isinstance(errors[0], DirectusError)
        assert errors[0].code == "FORBIDDEN"
        with pytest.raises(DirectusError):
            creating.result()
        with pytest.raises(DirectusError):
            await creating

    run(scenario())


def test_a_waiter_not_done_yet_has_no_result_and_a_broken_callback_breaks_nothing():
    async def scenario():
        client, transport = await connected()
        reading = client.read("messages", id=1)
        with pytest.raises(RuntimeError):
            reading.result()
        with pytest.raises(RuntimeError):
            reading.exception()
        calls = []
        reading.add_done_callback(lambda done: 1 / 0)
        reading.add_done_callback(lambda done: calls.append(done.result()))
        waiting = asyncio.ensure_future(reading)
        await settle()
        uid = transport.current.last("items")["uid"]
        transport.current.message({"type": "items", "data": {"id": 1}, "uid": uid})
        assert calls == [{"id": 1}]  # the callback after the one that raised still ran
        assert await asyncio.wait_for(waiting, 1) == {"id": 1}
        assert isinstance(reading, Waiter)

    run(scenario())


def test_read_sends_id_and_query():
    async def scenario():
        client, transport = await connected()
        task = asyncio.ensure_future(client.read("messages", id=3, query={"fields": ["id"]}))
        await settle()
        sent = transport.current.last("items")
        assert (sent["action"], sent["id"], sent["query"]) == ("read", 3, {"fields": ["id"]})
        transport.current.message({"type": "items", "data": {"id": 3}, "uid": sent["uid"]})
        assert await asyncio.wait_for(task, 1) == {"id": 3}

    run(scenario())


def test_request_times_out_with_a_real_timer():
    async def scenario():
        client, transport = await connected()
        with pytest.raises(RequestTimeout):
            await client.request(
                {"type": "items", "collection": "c", "action": "read"}, timeout=0.05, retry=False
            )

    run(scenario())


def test_request_while_disconnected_waits_in_the_outbox_until_open():
    async def scenario():
        client, transport = make()
        task = asyncio.ensure_future(client.read("c", id=1))
        await settle()
        assert client.outbox() == [{"type": "items", "collection": "c", "action": "read", "id": 1}]
        connecting = asyncio.ensure_future(client.connect())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        await connecting
        uid = transport.current.last("items")["uid"]
        transport.current.message({"type": "items", "data": {"id": 1}, "uid": uid})
        assert await asyncio.wait_for(task, 1) == {"id": 1}

    run(scenario())


def test_request_past_the_outbox_limit_raises_outbox_full():
    async def scenario():
        client, _ = make(outbox_limit=1)
        first = asyncio.ensure_future(client.read("c", id=1))
        await settle()
        with pytest.raises(OutboxFull):
            await client.read("c", id=2)
        assert not first.done() and len(client.outbox()) == 1
        first.cancel()

    run(scenario())


def test_send_message_while_disconnected_is_queued():
    client, _ = make()
    uid = client.send_message({"type": "ping"})
    assert client.outbox() == [{"type": "ping", "uid": uid}]


# --- stale sockets ----------------------------------------------------------------------------


def test_events_from_a_stale_socket_are_ignored():
    async def scenario():
        client, transport = await connected()
        messages = []
        closes = []
        client.on_websocket("message", messages.append)
        client.on_websocket("close", closes.append)
        old = transport.current
        old.closed_by_server(1006)
        assert client.state == "reconnecting" and len(closes) == 1
        client.set_online(True)  # retry at once, no timer needed
        new = transport.current
        assert new is not old and old.closed and not new.closed
        # the old socket speaks again: nothing happens
        old.message({"type": "items", "data": "stale"})
        old.opened()
        old.closed_by_server(1000)
        assert messages == [] and len(closes) == 1
        assert client.state == "connecting"
        new.opened()
        new.message({"type": "auth", "status": "ok"})
        assert client.is_connected
        old.closed_by_server(1000)
        assert client.is_connected and len(closes) == 1

    run(scenario())


def test_subscription_follows_the_new_uid_after_reconnect():
    async def scenario():
        client, transport = await connected()
        sub = await client.subscribe("messages")
        first_uid = transport.current.last("subscribe")["uid"]
        transport.current.closed_by_server(1006)
        client.set_online(True)
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        second_uid = transport.current.last("subscribe")["uid"]
        assert second_uid != first_uid
        transport.current.message({"type": "subscription", "event": "init", "uid": second_uid})
        message = await asyncio.wait_for(sub.__anext__(), 1)
        assert message["uid"] == second_uid and sub.uid == second_uid

    run(scenario())


# --- token refresh ----------------------------------------------------------------------------


def test_token_provider_is_called_on_token_expired_and_its_token_sent():
    async def scenario():
        calls = []

        async def provider():
            calls.append(1)
            return "FRESH"

        client, transport = await connected(token_provider=provider)
        transport.current.message(
            {"type": "auth", "status": "error", "error": {"code": "TOKEN_EXPIRED"}}
        )
        await settle()
        assert calls == [1]
        assert transport.current.last("auth") == {"type": "auth", "access_token": "FRESH"}
        assert client.is_connected

    run(scenario())


def test_failing_token_provider_is_reported_as_error():
    async def scenario():
        def provider():
            raise RuntimeError("vault down")

        client, transport = await connected(token_provider=provider)
        errors = []
        client.on_websocket("error", errors.append)
        transport.current.message(
            {"type": "auth", "status": "error", "error": {"code": "TOKEN_EXPIRED"}}
        )
        await settle()
        assert any("vault down" in str(e) for e in errors)

    run(scenario())


# --- construction -----------------------------------------------------------------------------


def test_create_directus_with_static_token_and_realtime_url_option():
    transport = FakeTransport()
    client = (
        create_directus("https://h/sub/")
        .with_(static_token("S"))
        .with_(realtime(url="wss://elsewhere/ws", transport=transport))
    )

    async def scenario():
        task = asyncio.ensure_future(client.connect())
        await settle()
        assert transport.current.url == "wss://elsewhere/ws"
        transport.current.opened()
        assert transport.current.sent == [{"type": "auth", "access_token": "S"}]
        task.cancel()

    run(scenario())


def test_trailing_slash_of_the_directus_url_is_ignored():
    client, transport = make()
    client2 = RealtimeClient(URL + "/sub/", access_token="t", transport=transport)
    assert client2.url == URL + "/sub"
    assert client.url == URL


def test_reconnect_option_takes_true_a_backoff_or_a_dict_and_refuses_a_number():
    assert _backoff(False) is False
    assert isinstance(_backoff(True), p.Backoff)
    b = p.Backoff(delay=2)
    assert _backoff(b) is b
    d = _backoff({"delay": 1, "retries": 4, "max_delay": 8})
    assert (d.delay, d.retries, d.max_delay) == (1.0, 4, 8.0)
    with pytest.raises(TypeError):
        _backoff(5)


# --- bounded attempts, frames that do not decode, the CPython transport's limit ---------------


def test_request_attempts_and_stable_after_reach_the_core():
    client, _ = make(request_attempts=5, stable_after=7)
    assert (client._proto.request_attempts, client._proto.stable_after) == (5, 7)
    assert make()[0]._proto.request_attempts == p.REQUEST_ATTEMPTS
    directus = create_directus(URL).with_(static_token("t")).with_(realtime(request_attempts=2))
    assert directus._proto.request_attempts == 2


def test_a_retryable_read_that_is_never_answered_fails_with_request_timeout():
    async def scenario():
        client, transport = await connected(
            request_attempts=2, request_timeout=0.05, heartbeat=False
        )
        reading = client.read("c", id=1)
        for _ in range(100):  # the server signs each new socket in, and never answers the read
            if reading.done():
                break
            await asyncio.sleep(0.01)
            socket = transport.current
            if socket.sent == [] and not socket.closed:
                socket.opened()
                socket.message({"type": "auth", "status": "ok"})
        with pytest.raises(RequestTimeout) as raised:
            await reading
        assert "2 attempts" in str(raised.value)
        assert len(transport.sockets) == 2 and client.is_connected

    run(scenario())


def test_a_frame_that_does_not_decode_is_an_error_event_and_the_client_goes_on():
    async def scenario():
        client, transport = await connected()
        errors = []
        client.on_websocket("error", errors.append)
        reading = client.read("c", id=1)
        uid = transport.current.last("items")["uid"]
        transport.current.message('{"type": "items", "data": [], "uid": [1]}')
        transport.current.message("[" * 100_000)
        assert [type(e).__name__ for e in errors] == ["InvalidFrame", "InvalidFrame"]
        assert client.is_connected and not reading.done()
        transport.current.message({"type": "items", "data": {"id": 1}, "uid": uid})
        assert await reading == {"id": 1}

    run(scenario())


def test_the_cpython_transport_limits_the_message_size(monkeypatch):
    from directus_realtime.transports import cpython

    seen = {}

    def fake_connect(url, **options):
        seen.update(options)
        raise OSError("no server here")

    monkeypatch.setattr(cpython, "connect", fake_connect)

    class Listener:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return lambda *args: self.calls.append(name)

    async def scenario():
        listener = Listener()
        socket = cpython.WebsocketsSocket("ws://h/websocket", listener)
        await socket._task
        assert listener.calls == ["socket_error", "socket_closed"]

    run(scenario())
    assert seen["max_size"] == cpython.MAX_SIZE
    assert 40 * 10**6 < cpython.MAX_SIZE < 10**9
