"""Unit tests of the sans-I/O core, directus_realtime/protocol.py.

No sockets, no timers: every input carries an explicit ``now`` and the outputs are read from
``events()``. Reconnect delays are made deterministic with ``Backoff(rng=lambda: 0.5)``.
"""

import json

import pytest

from directus_realtime import protocol as p
from directus_realtime.errors import (
    AuthenticationError,
    ConnectionFailed,
    ConnectionLost,
    DirectusError,
    InvalidFrame,
    OutboxFull,
    RequestTimeout,
)
from directus_realtime.protocol import Backoff, RealtimeProtocol, websocket_url
from tests.unit.protocol_helpers import (
    HALF,
    URL,
    auth_ok,
    error_reply,
    make,
    of,
    open_proto,
    reconnect,
    reply,
    sent,
    states,
)


def test_url_http_becomes_ws_with_websocket_path():
    assert websocket_url("http://h:8055") == "ws://h:8055/websocket"


def test_url_https_becomes_wss():
    assert websocket_url("https://h") == "wss://h/websocket"


def test_url_trailing_slash_does_not_double():
    assert websocket_url("http://h/") == "ws://h/websocket"


def test_url_sub_path_is_kept():
    assert websocket_url("https://h/sub") == "wss://h/sub/websocket"
    assert websocket_url("https://h/a/b/") == "wss://h/a/b/websocket"


def test_url_query_and_fragment_of_http_url_are_dropped():
    assert websocket_url("http://h/sub?x=1#frag") == "ws://h/sub/websocket"


def test_url_ws_and_wss_are_used_as_is():
    assert websocket_url("ws://h:1/custom/socket") == "ws://h:1/custom/socket"
    assert websocket_url("wss://h/x") == "wss://h/x"


def test_url_scheme_is_case_insensitive():
    assert websocket_url("HTTPS://h") == "wss://h/websocket"


def test_url_explicit_override_wins():
    assert websocket_url("http://h", path_url="wss://other/ws") == "wss://other/ws"


def test_url_strict_mode_appends_url_encoded_access_token():
    url = websocket_url("http://h", auth_mode="strict", access_token="a b/c+d=é")
    assert url == "ws://h/websocket?access_token=a%20b%2Fc%2Bd%3D%C3%A9"


def test_url_strict_mode_uses_ampersand_when_override_has_a_query():
    url = websocket_url("http://h", "ws://o/ws?x=1", auth_mode="strict", access_token="t")
    assert url == "ws://o/ws?x=1&access_token=t"


def test_url_token_is_not_put_in_url_outside_strict_mode():
    assert "access_token" not in websocket_url("http://h", access_token="t")
    assert "access_token" not in websocket_url("http://h", auth_mode="public", access_token="t")


@pytest.mark.parametrize("bad", ["ftp://h", "h:8055", "directus.test/x", "file:///x"])
def test_url_bad_scheme_raises_value_error(bad):
    with pytest.raises(ValueError):
        websocket_url(bad)


def test_protocol_rejects_a_bad_url_at_construction():
    with pytest.raises(ValueError):
        RealtimeProtocol("ftp://h", access_token="t")


def test_protocol_rejects_an_unknown_auth_mode():
    with pytest.raises(ValueError):
        RealtimeProtocol(URL, auth_mode="oauth")


# --- handshake ------------------------------------------------------------------------------


def test_connect_asks_for_a_socket_and_becomes_connecting():
    proto = make()
    proto.connect(0)
    events = proto.events()
    opens = of(events, p.OpenSocket)
    assert len(opens) == 1 and opens[0].url == "ws://directus.test/websocket"
    assert proto.state == p.CONNECTING
    assert states(events) == [p.CONNECTING]


def test_connect_is_a_no_op_while_connecting_or_open():
    proto = make()
    proto.connect(0)
    proto.events()
    proto.connect(1)
    assert proto.events() == []
    proto.socket_opened(1)
    auth_ok(proto, 1)
    proto.connect(2)
    assert proto.events() == []


def test_socket_opened_sends_auth_with_access_token_and_waits():
    proto = make(access_token="abc")
    proto.connect(0)
    proto.socket_opened(0)
    events = proto.events()
    assert sent(events) == [{"type": "auth", "access_token": "abc"}]
    assert proto.state == p.AUTHENTICATING
    assert of(events, p.Opened) == []


def test_socket_opened_sends_email_and_password():
    proto = make(access_token=None, email="a@b.c", password="pw")
    proto.connect(0)
    proto.socket_opened(0)
    assert sent(proto.events()) == [{"type": "auth", "email": "a@b.c", "password": "pw"}]


def test_socket_opened_sends_refresh_token():
    proto = make(access_token=None, refresh_token="R")
    proto.connect(0)
    proto.socket_opened(0)
    assert sent(proto.events()) == [{"type": "auth", "refresh_token": "R"}]


def test_auth_ok_opens_and_sends_subscriptions_registered_earlier_with_uids():
    proto = make()
    k1 = proto.subscribe("messages", event="create", query={"fields": ["*"]})
    k2 = proto.subscribe("users")
    assert proto.events() == []  # nothing sent while closed
    proto.connect(0)
    proto.socket_opened(0)
    proto.events()
    events = auth_ok(proto, 0)
    assert proto.state == p.OPEN
    assert len(of(events, p.Opened)) == 1
    subs = sent(events)
    assert [m["type"] for m in subs] == ["subscribe", "subscribe"]
    assert subs[0]["collection"] == "messages" and subs[0]["event"] == "create"
    assert subs[0]["query"] == {"fields": ["*"]}
    assert subs[1] == {"type": "subscribe", "collection": "users", "uid": subs[1]["uid"]}
    assert subs[0]["uid"] != subs[1]["uid"]
    assert k1 != k2
    # Opened comes before the subscriptions are sent
    assert events.index(of(events, p.Opened)[0]) < events.index(of(events, p.SendText)[0])


def test_subscribe_while_open_is_sent_at_once():
    proto = make()
    open_proto(proto)
    proto.subscribe("messages", item="7")
    msgs = sent(proto.events())
    assert len(msgs) == 1
    assert msgs[0]["type"] == "subscribe" and msgs[0]["item"] == "7" and "uid" in msgs[0]


def test_public_mode_opens_without_auth_message():
    proto = make(auth_mode="public", access_token=None)
    proto.subscribe("messages")
    proto.connect(0)
    proto.socket_opened(0)
    events = proto.events()
    assert proto.state == p.OPEN
    assert len(of(events, p.Opened)) == 1
    assert [m["type"] for m in sent(events)] == ["subscribe"]


def test_strict_mode_puts_token_in_url_and_opens_without_auth_message():
    proto = make(auth_mode="strict", access_token="tok")
    proto.connect(0)
    events = proto.events()
    assert of(events, p.OpenSocket)[0].url == "ws://directus.test/websocket?access_token=tok"
    proto.socket_opened(0)
    events = proto.events()
    assert proto.state == p.OPEN
    assert all(m["type"] != "auth" for m in sent(events))
    assert len(of(events, p.Opened)) == 1


def test_handshake_without_credentials_fails_with_no_credentials():
    proto = make(access_token=None)
    proto.connect(0)
    proto.socket_opened(0)
    events = proto.events()
    assert proto.state == p.FAILED
    assert isinstance(proto.failure, AuthenticationError)
    assert proto.failure.code == "NO_CREDENTIALS"
    assert sent(events) == []
    assert len(of(events, p.CloseSocket)) == 1
    assert proto.next_deadline() is None


# --- refused credentials ------------------------------------------------------------------


@pytest.mark.parametrize("code", ["AUTH_FAILED", "INVALID_CREDENTIALS"])
def test_refused_auth_fails_closes_and_does_not_reconnect(code):
    proto = make()
    key = proto.subscribe("messages")
    proto.connect(0)
    proto.socket_opened(0)
    proto.events()
    events = reply(proto, error_reply("auth", code), 1)
    assert proto.state == p.FAILED
    assert isinstance(proto.failure, AuthenticationError) and proto.failure.code == code
    assert len(of(events, p.CloseSocket)) == 1
    errors = of(events, p.ErrorOccurred)
    assert any(isinstance(e.error, AuthenticationError) for e in errors)
    ended = of(events, p.SubscriptionEnded)
    assert [(e.key, e.error) for e in ended] == [(key, proto.failure)]
    # no retry: no deadline, and time passing does nothing
    assert proto.next_deadline() is None
    assert proto.retry_at is None
    proto.tick(1000)
    assert proto.events() == []
    assert proto.state == p.FAILED
    # the server closing the refused socket afterwards changes nothing
    proto.socket_closed(1001, 1008)
    assert proto.events() == []
    assert proto.state == p.FAILED


def test_refused_auth_fails_requests_waiting_in_the_outbox():
    proto = make()
    key = proto.request({"type": "items", "collection": "c", "action": "read"})
    proto.connect(0)
    proto.socket_opened(0)
    proto.events()
    events = reply(proto, error_reply("auth", "INVALID_CREDENTIALS"), 1)
    failed = of(events, p.RequestFailed)
    assert [f.key for f in failed] == [key]
    assert isinstance(failed[0].error, AuthenticationError)
    assert proto.outbox() == []


def test_set_credentials_after_refusal_connects_again_with_the_new_token():
    proto = make()
    proto.connect(0)
    proto.socket_opened(0)
    reply(proto, error_reply("auth", "AUTH_FAILED"), 1)
    proto.set_credentials(5, access_token="NEW")
    events = proto.events()
    assert proto.state == p.CONNECTING
    assert proto.failure is None
    assert len(of(events, p.OpenSocket)) == 1
    proto.socket_opened(6)
    assert sent(proto.events()) == [{"type": "auth", "access_token": "NEW"}]
    auth_ok(proto, 6)
    assert proto.state == p.OPEN


def test_set_credentials_while_open_does_not_reconnect():
    proto = make()
    open_proto(proto)
    proto.set_credentials(1, access_token="NEW")
    assert of(proto.events(), p.OpenSocket) == []
    assert proto.state == p.OPEN


# --- heartbeat --------------------------------------------------------------------------------


def test_ping_is_answered_with_pong_and_not_delivered():
    proto = make()
    open_proto(proto)
    events = reply(proto, {"type": "ping"}, 1)
    assert sent(events) == [{"type": "pong"}]
    assert of(events, p.MessageReceived) == []


def test_ping_uid_is_echoed_in_pong():
    proto = make()
    open_proto(proto)
    events = reply(proto, {"type": "ping", "uid": "x7"}, 1)
    assert sent(events) == [{"type": "pong", "uid": "x7"}]


def test_heartbeat_off_delivers_ping_and_sends_no_pong():
    proto = make(heartbeat=False)
    open_proto(proto)
    events = reply(proto, {"type": "ping"}, 1)
    assert sent(events) == []
    assert [e.message for e in of(events, p.MessageReceived)] == [{"type": "ping"}]


def test_other_messages_are_delivered_as_message_received():
    proto = make()
    open_proto(proto)
    events = reply(proto, {"type": "pong", "uid": "z"}, 1)
    assert [e.message for e in of(events, p.MessageReceived)] == [{"type": "pong", "uid": "z"}]


# --- uids -----------------------------------------------------------------------------------


def test_uids_are_unique_across_reconnects():
    proto = make()
    proto.subscribe("a")
    proto.subscribe("b")
    events = open_proto(proto)
    now = 0.0
    for _ in range(4):
        proto.request({"type": "items", "collection": "c", "action": "read"}, now=now)
        proto.send_message({"type": "ping"})
        events += proto.events()
        now += 10
        events += reconnect(proto, now)
    uids = [m["uid"] for m in sent(events) if "uid" in m]
    assert len(uids) >= 4 * 5  # 2 subs + 1 request resend per reconnect, plus the sends
    assert len(uids) == len(set(uids))


def test_subscriptions_are_resent_with_fresh_uids_after_reconnect():
    proto = make()
    proto.subscribe("a")
    proto.subscribe("b")
    first = [m for m in sent(open_proto(proto)) if m["type"] == "subscribe"]
    second = [m for m in sent(reconnect(proto, 5)) if m["type"] == "subscribe"]
    assert [m["collection"] for m in second] == ["a", "b"]
    assert not {m["uid"] for m in first} & {m["uid"] for m in second}


def test_unsubscribe_sends_unsubscribe_and_ends_subscription():
    proto = make()
    open_proto(proto)
    key = proto.subscribe("a")
    uid = sent(proto.events())[0]["uid"]
    proto.unsubscribe(key)
    events = proto.events()
    assert sent(events) == [{"type": "unsubscribe", "uid": uid}]
    ended = of(events, p.SubscriptionEnded)
    assert [(e.key, e.error) for e in ended] == [(key, None)]


def test_unsubscribed_subscription_is_not_resent_after_reconnect():
    proto = make()
    keep = proto.subscribe("keep")
    drop = proto.subscribe("drop")
    open_proto(proto)
    proto.unsubscribe(drop)
    proto.events()
    subs = [m for m in sent(reconnect(proto, 5)) if m["type"] == "subscribe"]
    assert [m["collection"] for m in subs] == ["keep"]
    assert keep != drop


def test_unsubscribe_while_disconnected_sends_nothing_and_ends():
    proto = make()
    key = proto.subscribe("a")
    proto.unsubscribe(key)
    events = proto.events()
    assert sent(events) == []
    assert [(e.key, e.error) for e in of(events, p.SubscriptionEnded)] == [(key, None)]
    open_proto(proto)
    proto.unsubscribe(key)  # a second time: nothing
    assert proto.events() == []


def test_user_given_subscription_uid_is_used_and_reused_after_reconnect():
    proto = make()
    proto.subscribe("a", uid="mine")
    first = [m for m in sent(open_proto(proto)) if m["type"] == "subscribe"]
    second = [m for m in sent(reconnect(proto, 5)) if m["type"] == "subscribe"]
    assert first[0]["uid"] == "mine" and second[0]["uid"] == "mine"


# --- subscription routing -------------------------------------------------------------------


def _two_subscriptions():
    proto = make()
    ka = proto.subscribe("a")
    kb = proto.subscribe("b")
    msgs = [m for m in sent(open_proto(proto)) if m["type"] == "subscribe"]
    return proto, {m["collection"]: m["uid"] for m in msgs}, ka, kb


def test_subscription_messages_are_routed_by_uid():
    proto, uids, ka, kb = _two_subscriptions()
    events = reply(
        proto, {"type": "subscription", "event": "create", "data": [1], "uid": uids["b"]}, 1
    )
    events += reply(
        proto, {"type": "subscription", "event": "create", "data": [2], "uid": uids["a"]}, 1
    )
    routed = [(e.key, e.message["data"]) for e in of(events, p.SubscriptionMessage)]
    assert routed == [(kb, [1]), (ka, [2])]


def test_init_message_is_delivered_to_the_subscription():
    proto, uids, ka, _ = _two_subscriptions()
    init = {"type": "subscription", "event": "init", "data": [{"id": 1}], "uid": uids["a"]}
    events = reply(proto, init, 1)
    delivered = of(events, p.SubscriptionMessage)
    assert len(delivered) == 1
    assert delivered[0].key == ka and delivered[0].message == init


def test_messages_for_unknown_uids_are_ignored():
    proto, uids, _, _ = _two_subscriptions()
    events = reply(proto, {"type": "subscription", "event": "create", "uid": "999"}, 1)
    assert of(events, p.SubscriptionMessage) == []
    assert of(events, p.SubscriptionEnded) == []


def test_messages_for_an_unsubscribed_uid_are_ignored():
    proto, uids, ka, _ = _two_subscriptions()
    proto.unsubscribe(ka)
    proto.events()
    events = reply(proto, {"type": "subscription", "event": "create", "uid": uids["a"]}, 1)
    assert of(events, p.SubscriptionMessage) == []


def test_messages_for_an_old_connections_uid_are_ignored_after_reconnect():
    proto, uids, _, _ = _two_subscriptions()
    reconnect(proto, 5)
    events = reply(proto, {"type": "subscription", "event": "create", "uid": uids["a"]}, 6)
    assert of(events, p.SubscriptionMessage) == []


# --- requests -------------------------------------------------------------------------------

READ = {"type": "items", "collection": "c", "action": "read"}


def _open_with_request(message=READ, now=0.0, **kw):
    proto = make(**kw)
    open_proto(proto, now)
    key = proto.request(message, now=now)
    msg = sent(proto.events())[0]
    return proto, key, msg["uid"]


def test_request_reply_with_matching_uid_is_request_done_with_data():
    proto, key, uid = _open_with_request()
    events = reply(proto, {"type": "items", "data": [{"id": 1}], "uid": uid}, 1)
    done = of(events, p.RequestDone)
    assert len(done) == 1 and done[0].key == key and done[0].data == [{"id": 1}]
    # the request's deadline is gone; what is left is the probe of a connection whose ping
    # period is not known yet (last heard at 1)
    assert proto.next_deadline() == 1 + p.PROBE_WHEN_UNSURE


def test_request_is_sent_with_uid_and_its_fields():
    proto = make()
    open_proto(proto)
    proto.request(dict(READ, query={"limit": 1}), now=0)
    [msg] = sent(proto.events())
    assert msg == dict(READ, query={"limit": 1}, uid=msg["uid"])
    assert isinstance(msg["uid"], str) and msg["uid"]


def test_reply_with_other_uid_does_not_complete_the_request():
    proto, key, uid = _open_with_request()
    events = reply(proto, {"type": "items", "data": [], "uid": uid + "0"}, 1)
    assert of(events, p.RequestDone) == []


def test_request_error_with_uid_is_request_failed_with_directus_error():
    proto, key, uid = _open_with_request()
    events = reply(proto, error_reply("items", "FORBIDDEN", uid, "no access"), 1)
    failed = of(events, p.RequestFailed)
    assert len(failed) == 1 and failed[0].key == key
    assert isinstance(failed[0].error, DirectusError)
    assert failed[0].error.code == "FORBIDDEN" and failed[0].error.message == "no access"
    assert of(events, p.ErrorOccurred) == []


def test_error_without_uid_fails_the_one_pending_request_of_that_type():
    proto, key, uid = _open_with_request()
    events = reply(proto, error_reply("items", "INVALID_PAYLOAD"), 1)
    failed = of(events, p.RequestFailed)
    assert [(f.key, f.error.code) for f in failed] == [(key, "INVALID_PAYLOAD")]
    assert of(events, p.ErrorOccurred) == []


def test_error_without_uid_with_two_pending_requests_is_reported_and_fails_neither():
    proto, k1, uid1 = _open_with_request()
    k2 = proto.request(READ, now=0)
    uid2 = sent(proto.events())[0]["uid"]
    events = reply(proto, error_reply("items", "FORBIDDEN"), 1)
    assert of(events, p.RequestFailed) == []
    errors = of(events, p.ErrorOccurred)
    assert len(errors) == 1 and errors[0].error.code == "FORBIDDEN"
    # both are still pending: their replies still complete them
    events = reply(proto, {"type": "items", "data": 1, "uid": uid1}, 2)
    events += reply(proto, {"type": "items", "data": 2, "uid": uid2}, 2)
    assert [(d.key, d.data) for d in of(events, p.RequestDone)] == [(k1, 1), (k2, 2)]


def test_error_without_uid_of_another_type_does_not_fail_the_pending_request():
    proto, key, uid = _open_with_request()
    events = reply(proto, error_reply("unsubscribe", "INVALID_PAYLOAD"), 1)
    assert of(events, p.RequestFailed) == []
    assert len(of(events, p.ErrorOccurred)) == 1


def test_error_without_uid_and_nothing_pending_is_an_error_event_not_a_subscription_failure():
    proto = make()
    proto.subscribe("a")
    msgs = sent(open_proto(proto))
    sub_uid = [m for m in msgs if m["type"] == "subscribe"][0]["uid"]
    reply(proto, {"type": "subscription", "event": "init", "uid": sub_uid}, 0)
    events = reply(proto, error_reply("items", "FORBIDDEN"), 1)
    assert of(events, p.SubscriptionEnded) == []
    assert of(events, p.RequestFailed) == []
    errors = of(events, p.ErrorOccurred)
    assert len(errors) == 1 and errors[0].error.code == "FORBIDDEN"
    assert proto.state == p.OPEN


def test_subscribe_error_without_uid_ends_the_one_unconfirmed_subscription():
    proto = make()
    confirmed = proto.subscribe("a")
    uid_a = sent(open_proto(proto))[-1]["uid"]
    reply(proto, {"type": "subscription", "event": "init", "uid": uid_a}, 1)  # "a" confirmed
    unconfirmed = proto.subscribe("b")
    proto.events()
    events = reply(proto, error_reply("subscribe", "FORBIDDEN"), 2)
    ended = of(events, p.SubscriptionEnded)
    assert [(e.key, e.error.code) for e in ended] == [(unconfirmed, "FORBIDDEN")]
    assert of(events, p.ErrorOccurred) == []
    # the ended subscription is not re-sent after a reconnect, the confirmed one is
    subs = [m for m in sent(reconnect(proto, 4)) if m["type"] == "subscribe"]
    assert [m["collection"] for m in subs] == ["a"]
    assert confirmed != unconfirmed


def test_subscribe_error_without_uid_with_two_unconfirmed_subscriptions_ends_neither():
    proto, uids, ka, kb = _two_subscriptions()
    events = reply(proto, error_reply("subscribe", "FORBIDDEN"), 1)
    assert of(events, p.SubscriptionEnded) == []
    assert len(of(events, p.ErrorOccurred)) == 1


def test_subscribe_error_with_uid_ends_that_subscription():
    proto, uids, ka, kb = _two_subscriptions()
    events = reply(proto, error_reply("subscribe", "FORBIDDEN", uids["b"]), 1)
    ended = of(events, p.SubscriptionEnded)
    assert [(e.key, e.error.code) for e in ended] == [(kb, "FORBIDDEN")]


def test_error_with_an_unknown_uid_does_not_fail_an_unrelated_request():
    """An error that names a uid nobody waits for (e.g. the late answer to a request that
    already timed out) must not be pinned on a different pending request: the uid says it is
    not that request's error. (Module docstring: a late reply can never be taken for the answer
    to a newer request.)"""
    proto = make(request_timeout=5)
    open_proto(proto)
    old = proto.request(
        {"type": "items", "collection": "c", "action": "update", "id": 1, "data": {"x": 1}}, now=0
    )
    old_uid = sent(proto.events())[0]["uid"]
    proto.tick(5)
    assert [f.key for f in of(proto.events(), p.RequestFailed)] == [old]
    new = proto.request(
        {"type": "items", "collection": "c", "action": "update", "id": 2, "data": {"x": 2}}, now=6
    )
    new_uid = sent(proto.events())[0]["uid"]
    # the late error of the timed-out request arrives
    events = reply(proto, error_reply("items", "FORBIDDEN", old_uid), 7)
    assert of(events, p.RequestFailed) == []
    # the new request is still pending and completes with its own reply
    events = reply(proto, {"type": "items", "data": {"id": 2}, "uid": new_uid}, 8)
    assert [d.key for d in of(events, p.RequestDone)] == [new]


def test_subscribe_error_with_an_unknown_uid_does_not_end_an_unrelated_subscription():
    proto = make()
    open_proto(proto)
    gone = proto.subscribe("old")
    gone_uid = sent(proto.events())[0]["uid"]
    proto.unsubscribe(gone)
    proto.events()
    live = proto.subscribe("new")
    proto.events()
    events = reply(proto, error_reply("subscribe", "FORBIDDEN", gone_uid), 1)
    assert [e.key for e in of(events, p.SubscriptionEnded)] == []
    assert live != gone


def test_request_of_type_auth_is_completed_by_the_auth_reply_with_its_uid():
    """request() documents ``auth`` as a request type, and Directus echoes the uid of an auth
    message in its ``{"type": "auth", "status": "ok", "uid": ...}`` reply."""
    proto = make(request_timeout=5)
    open_proto(proto)
    key = proto.request({"type": "auth", "access_token": "OTHER"}, now=0)
    uid = sent(proto.events())[0]["uid"]
    events = auth_ok(proto, 1, uid=uid)
    assert [d.key for d in of(events, p.RequestDone)] == [key]


# --- timeouts ---------------------------------------------------------------------------------


def test_request_times_out_at_its_deadline():
    proto = make(request_timeout=5, heartbeat=False)
    open_proto(proto, 100)
    key = proto.request(READ, retry=False, now=100)  # (a retryable one reconnects: see below)
    uid = sent(proto.events())[0]["uid"]
    assert proto.next_deadline() == 105
    proto.tick(104.9)
    assert of(proto.events(), p.RequestFailed) == []
    proto.tick(105)
    failed = of(proto.events(), p.RequestFailed)
    assert len(failed) == 1 and failed[0].key == key
    assert isinstance(failed[0].error, RequestTimeout)
    assert proto.next_deadline() is None
    # a late reply is ignored
    events = reply(proto, {"type": "items", "data": [], "uid": uid}, 106)
    assert of(events, p.RequestDone) == []


def test_request_explicit_timeout_overrides_default():
    proto = make(request_timeout=5, heartbeat=False)
    open_proto(proto)
    proto.request(READ, timeout=2, now=0)
    assert proto.next_deadline() == 2


def test_next_deadline_is_the_earliest_of_liveness_and_request():
    proto = make(request_timeout=60, heartbeat_period=30, probes=False)
    open_proto(proto, 0)
    proto.request(READ, now=0)
    assert proto.next_deadline() == 45


def test_connect_timeout_closes_socket_and_reconnects():
    proto = make(connect_timeout=10)
    proto.connect(0)
    proto.events()
    assert proto.next_deadline() == 10
    proto.tick(9.9)
    assert proto.events() == []
    proto.tick(10)
    events = proto.events()
    assert len(of(events, p.CloseSocket)) == 1
    assert any(isinstance(e.error, RequestTimeout) for e in of(events, p.ErrorOccurred))
    assert proto.state == p.RECONNECTING
    assert proto.retry_at == pytest.approx(10.25)


def test_connect_timeout_also_covers_authentication():
    proto = make(connect_timeout=10)
    proto.connect(0)
    proto.socket_opened(3)
    proto.events()
    assert proto.state == p.AUTHENTICATING
    proto.tick(10)
    events = proto.events()
    assert len(of(events, p.CloseSocket)) == 1
    assert proto.state == p.RECONNECTING


def test_close_of_the_timed_out_socket_is_ignored():
    proto = make(connect_timeout=10)
    proto.connect(0)
    proto.tick(10)
    proto.events()
    retry_at = proto.retry_at
    proto.socket_closed(10.1, 1006)
    assert proto.events() == []
    assert proto.retry_at == retry_at


# --- reconnect --------------------------------------------------------------------------------


def test_socket_closed_while_open_emits_closed_and_schedules_retry():
    proto = make()
    open_proto(proto)
    proto.socket_closed(100, 1005, "bye")
    events = proto.events()
    closed = of(events, p.Closed)
    assert len(closed) == 1 and closed[0].code == 1005 and closed[0].reason == "bye"
    assert proto.state == p.RECONNECTING
    assert proto.retry_at == pytest.approx(100 + Backoff(rng=HALF).wait(0))
    assert proto.next_deadline() == proto.retry_at
    assert of(events, p.OpenSocket) == []


def test_tick_at_retry_at_opens_a_new_socket():
    proto = make()
    open_proto(proto)
    proto.socket_closed(100)
    proto.events()
    proto.tick(proto.retry_at - 0.01)
    assert of(proto.events(), p.OpenSocket) == []
    proto.tick(proto.retry_at)
    assert len(of(proto.events(), p.OpenSocket)) == 1
    assert proto.state == p.CONNECTING


def test_backoff_grows_exponentially_and_is_capped():
    b = Backoff(delay=0.5, max_delay=30, rng=lambda: 1.0)
    assert [b.wait(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert b.wait(1000) == 30
    half = Backoff(delay=0.5, max_delay=30, rng=HALF)
    assert [half.wait(n) for n in range(3)] == [0.25, 0.5, 1.0]


def test_backoff_has_a_floor_and_jitter_comes_from_rng():
    assert Backoff(delay=1, rng=lambda: 0.0).wait(3) == 0.05
    assert Backoff(delay=1, rng=lambda: 0.25).wait(2) == 1.0


def test_backoff_exhausted_only_with_a_retry_limit():
    assert not Backoff().exhausted(10**6)
    b = Backoff(retries=3)
    assert not b.exhausted(2) and b.exhausted(3)


def test_successive_failed_attempts_back_off_further():
    proto = make()
    open_proto(proto)
    now = 0.0
    proto.socket_closed(now)
    delays = []
    for _ in range(4):
        delays.append(proto.retry_at - now)
        now = proto.retry_at
        proto.tick(now)
        proto.socket_closed(now)  # the attempt fails before opening
    assert delays == pytest.approx([0.25, 0.5, 1.0, 2.0])


def test_successful_open_resets_the_backoff():
    proto = make()
    open_proto(proto)
    proto.socket_closed(0)
    first = proto.retry_at
    proto.tick(first)
    proto.socket_closed(first)  # one failed attempt: the next delay doubles
    t = proto.retry_at
    assert t - first == pytest.approx(0.5)
    proto.tick(t)
    proto.socket_opened(t)
    auth_ok(proto, t)
    # (It must stay open for stable_after, the heartbeat period by default: see below.)
    proto.socket_closed(t + 30)
    assert proto.retry_at - (t + 30) == pytest.approx(0.25)


def test_retries_limit_fails_with_connection_failed_after_n_attempts():
    proto = make(reconnect=Backoff(retries=3, rng=HALF))
    open_proto(proto)
    proto.socket_closed(0)
    opens = 0
    now = 0
    for _ in range(10):  # bounded: a missing limit must fail the test, not hang it
        if proto.state != p.RECONNECTING:
            break
        now = proto.retry_at
        proto.tick(now)
        opens += len(of(proto.events(), p.OpenSocket))
        proto.socket_closed(now)
    events = proto.events()
    assert opens == 3
    assert proto.state == p.FAILED
    assert isinstance(proto.failure, ConnectionFailed)
    assert proto.next_deadline() is None
    assert any(isinstance(e.error, ConnectionFailed) for e in of(events, p.ErrorOccurred))


def test_reconnect_false_fails_at_once():
    proto = make(reconnect=False)
    key = proto.subscribe("a")
    open_proto(proto)
    proto.socket_closed(1)
    events = proto.events()
    assert proto.state == p.FAILED
    assert isinstance(proto.failure, ConnectionFailed)
    assert proto.retry_at is None and proto.next_deadline() is None
    assert [(e.key, type(e.error)) for e in of(events, p.SubscriptionEnded)] == [
        (key, ConnectionFailed)
    ]
    assert of(events, p.CloseSocket) == []  # the socket is already gone


def test_connect_after_failure_starts_over():
    proto = make(reconnect=False)
    open_proto(proto)
    proto.socket_closed(1)
    proto.events()
    proto.connect(2)
    assert len(of(proto.events(), p.OpenSocket)) == 1
    assert proto.state == p.CONNECTING and proto.failure is None


def test_set_online_false_while_reconnecting_goes_offline_without_deadline():
    proto = make()
    open_proto(proto)
    proto.socket_closed(1)
    proto.events()
    proto.set_online(False, 2)
    events = proto.events()
    assert proto.state == p.OFFLINE
    assert states(events) == [p.OFFLINE]
    assert proto.retry_at is None and proto.next_deadline() is None
    proto.tick(1000)
    assert of(proto.events(), p.OpenSocket) == []


def test_set_online_true_opens_a_socket_at_once():
    proto = make()
    open_proto(proto)
    proto.socket_closed(1)
    proto.set_online(False, 2)
    proto.events()
    proto.set_online(True, 3)
    events = proto.events()
    assert len(of(events, p.OpenSocket)) == 1
    assert proto.state == p.CONNECTING


def test_set_online_true_while_reconnecting_retries_before_retry_at():
    proto = make(reconnect=Backoff(delay=100, rng=HALF))
    open_proto(proto)
    proto.socket_closed(1)
    proto.events()
    proto.set_online(True, 2)
    assert len(of(proto.events(), p.OpenSocket)) == 1


def test_losing_the_socket_while_offline_goes_straight_to_offline():
    proto = make()
    open_proto(proto)
    proto.set_online(False, 1)
    assert proto.state == p.OPEN
    proto.socket_closed(2)
    assert proto.state == p.OFFLINE
    assert proto.next_deadline() is None


def test_connect_while_offline_waits_for_the_network():
    proto = make()
    proto.set_online(False, 0)
    proto.connect(0)
    events = proto.events()
    assert proto.state == p.OFFLINE and of(events, p.OpenSocket) == []
    proto.set_online(True, 1)
    assert len(of(proto.events(), p.OpenSocket)) == 1


def test_socket_error_is_reported_but_does_not_change_state():
    proto = make()
    open_proto(proto)
    proto.socket_error(1, RuntimeError("boom"))
    events = proto.events()
    assert [str(e.error) for e in of(events, p.ErrorOccurred)] == ["boom"]
    assert proto.state == p.OPEN
    proto.socket_error(1)
    assert isinstance(of(proto.events(), p.ErrorOccurred)[0].error, ConnectionLost)


# --- liveness ---------------------------------------------------------------------------------


def test_silence_for_one_and_a_half_heartbeats_closes_and_reconnects():
    proto = make(heartbeat_period=30, probes=False)
    open_proto(proto, 0)
    assert proto.next_deadline() == 45
    proto.tick(44.9)
    assert proto.events() == []
    proto.tick(45)
    events = proto.events()
    assert len(of(events, p.CloseSocket)) == 1
    assert len(of(events, p.Closed)) == 1
    assert proto.state == p.RECONNECTING
    assert proto.retry_at == pytest.approx(45.25)


def test_hearing_a_ping_pushes_the_liveness_deadline():
    proto = make(heartbeat_period=30, probes=False)
    open_proto(proto, 0)
    reply(proto, {"type": "ping"}, 40)
    assert proto.next_deadline() == 85
    proto.tick(45)
    assert proto.events() == []
    assert proto.state == p.OPEN


def test_no_liveness_check_when_heartbeat_is_off():
    proto = make(heartbeat=False)
    open_proto(proto, 0)
    assert proto.next_deadline() is None
    proto.tick(10_000)
    assert proto.events() == [] and proto.state == p.OPEN


# --- outbox -----------------------------------------------------------------------------------


def test_requests_while_disconnected_are_queued_and_sent_in_order_after_open():
    proto = make()
    k1 = proto.request({"type": "items", "collection": "c", "action": "read", "id": 1})
    k2 = proto.request({"type": "items", "collection": "c", "action": "delete", "id": 2})
    assert proto.events() == []
    assert proto.outbox() == [
        {"type": "items", "collection": "c", "action": "read", "id": 1},
        {"type": "items", "collection": "c", "action": "delete", "id": 2},
    ]
    msgs = [m for m in sent(open_proto(proto)) if m["type"] == "items"]
    assert [(m["action"], m["id"]) for m in msgs] == [("read", 1), ("delete", 2)]
    assert proto.outbox() == []
    events = reply(proto, {"type": "items", "data": "d", "uid": msgs[1]["uid"]}, 1)
    assert [d.key for d in of(events, p.RequestDone)] == [k2]
    assert k1 != k2


def test_request_past_outbox_limit_fails_with_outbox_full():
    proto = make(outbox_limit=2)
    proto.request(READ)
    proto.request(READ)
    k3 = proto.request(READ)
    failed = of(proto.events(), p.RequestFailed)
    assert [f.key for f in failed] == [k3]
    assert isinstance(failed[0].error, OutboxFull)
    assert len(proto.outbox()) == 2


def test_send_message_dict_while_disconnected_is_queued_and_sent_on_open():
    proto = make()
    uid = proto.send_message({"type": "ping"})
    assert proto.outbox() == [{"type": "ping", "uid": uid}]
    msgs = sent(open_proto(proto))
    assert {"type": "ping", "uid": uid} in msgs


def test_send_message_keeps_a_given_uid_and_sends_at_once_when_open():
    proto = make()
    open_proto(proto)
    assert proto.send_message({"type": "ping", "uid": "u1"}) == "u1"
    assert sent(proto.events()) == [{"type": "ping", "uid": "u1"}]


def test_send_message_str_while_disconnected_raises_connection_lost():
    proto = make()
    with pytest.raises(ConnectionLost):
        proto.send_message('{"type":"ping"}')


def test_send_message_str_while_open_is_sent_verbatim():
    proto = make()
    open_proto(proto)
    assert proto.send_message("raw text") is None
    assert [e.text for e in of(proto.events(), p.SendText)] == ["raw text"]


def test_send_message_dict_past_outbox_limit_raises_outbox_full():
    proto = make(outbox_limit=1)
    proto.send_message({"type": "ping"})
    with pytest.raises(OutboxFull):
        proto.send_message({"type": "ping"})


# --- exactly-once creates -------------------------------------------------------------------


CREATE_WITH_ID = {
    "type": "items",
    "collection": "m",
    "action": "create",
    "data": {"id": "k1", "t": "hi"},
}


def test_create_with_id_is_resent_with_fresh_uid_after_a_lost_reply():
    proto = make()
    open_proto(proto)
    key = proto.request(CREATE_WITH_ID, now=0)
    first = sent(proto.events())[0]
    events = reconnect(proto, 1)
    assert of(events, p.RequestFailed) == []
    retried = [m for m in sent(events) if m["type"] == "items"]
    assert len(retried) == 1
    assert retried[0]["data"] == {"id": "k1", "t": "hi"}
    assert retried[0]["uid"] != first["uid"]
    # its reply completes the original key
    events = reply(proto, {"type": "items", "data": {"id": "k1"}, "uid": retried[0]["uid"]}, 3)
    assert [d.key for d in of(events, p.RequestDone)] == [key]


def test_retried_create_meeting_record_not_unique_reads_the_row_back():
    proto = make()
    open_proto(proto)
    key = proto.request(CREATE_WITH_ID, now=0)
    proto.events()
    retry_uid = [m for m in sent(reconnect(proto, 1)) if m["type"] == "items"][0]["uid"]
    events = reply(proto, error_reply("items", "RECORD_NOT_UNIQUE", retry_uid), 2)
    assert of(events, p.RequestFailed) == []
    reads = sent(events)
    assert len(reads) == 1
    read = reads[0]
    assert read["type"] == "items" and read["action"] == "read"
    assert read["collection"] == "m" and read["id"] == "k1"
    assert read["uid"] != retry_uid
    row = {"id": "k1", "t": "hi", "date_created": "now"}
    events = reply(proto, {"type": "items", "data": row, "uid": read["uid"]}, 3)
    done = of(events, p.RequestDone)
    assert len(done) == 1 and done[0].key == key and done[0].data == row


def test_retried_bulk_create_meeting_record_not_unique_reads_all_ids_back():
    proto = make()
    open_proto(proto)
    rows = [{"id": 1, "t": "a"}, {"id": 2, "t": "b"}]
    key = proto.request(
        {"type": "items", "collection": "m", "action": "create", "data": rows}, now=0
    )
    proto.events()
    retry_uid = [m for m in sent(reconnect(proto, 1)) if m["type"] == "items"][0]["uid"]
    read = sent(reply(proto, error_reply("items", "RECORD_NOT_UNIQUE", retry_uid), 2))[0]
    assert read["action"] == "read" and read["ids"] == [1, 2]
    events = reply(proto, {"type": "items", "data": rows, "uid": read["uid"]}, 3)
    assert [(d.key, d.data) for d in of(events, p.RequestDone)] == [(key, rows)]


def test_record_not_unique_whose_row_differs_from_the_write_is_a_real_failure():
    proto = make()
    open_proto(proto)
    key = proto.request(CREATE_WITH_ID, now=0)
    uid = sent(proto.events())[0]["uid"]
    read = sent(reply(proto, error_reply("items", "RECORD_NOT_UNIQUE", uid), 1))[0]
    assert read["action"] == "read" and read["id"] == "k1"
    other = {"id": "k1", "t": "somebody else's"}
    events = reply(proto, {"type": "items", "data": other, "uid": read["uid"]}, 2)
    failed = of(events, p.RequestFailed)
    assert [(f.key, f.error.code) for f in failed] == [(key, "RECORD_NOT_UNIQUE")]
    assert of(events, p.RequestDone) == []


def test_record_not_unique_at_the_first_attempt_counts_as_stored_when_the_row_is_the_write():
    """A write restored from a store after a reload may have been stored before it."""
    proto = make()
    open_proto(proto)
    key = proto.request(CREATE_WITH_ID, now=0)
    uid = sent(proto.events())[0]["uid"]
    read = sent(reply(proto, error_reply("items", "RECORD_NOT_UNIQUE", uid), 1))[0]
    row = {"id": "k1", "t": "hi", "date_created": "x"}
    events = reply(proto, {"type": "items", "data": [row], "uid": read["uid"]}, 2)
    assert [(d.key, d.data) for d in of(events, p.RequestDone)] == [(key, row)]


def test_the_rate_limit_paces_requests_queued_while_offline():
    proto = make(heartbeat=False, send_rate=16)
    keys = [proto.request(dict(CREATE_WITH_ID, data={"id": "k%d" % i}), now=0) for i in range(25)]
    first = [m for m in sent(open_proto(proto, now=1.0)) if m["type"] == "items"]
    assert len(first) == 1  # the burst of 2 (16 / 8), less the auth
    assert proto.next_deadline() is not None
    # the auth took one of the burst's 10 tokens
    events = []
    t = 1.0
    for _ in range(100):
        if not proto.outbox():
            break
        t = proto.next_deadline()
        proto.tick(t)
        events += proto.events()
    later = [m for m in sent(events) if m["type"] == "items"]
    assert len(first) + len(later) == len(keys)
    assert t == pytest.approx(1.0 + 24 / 16)  # the other 24 at 16/s


def test_requests_exceeded_pauses_for_the_time_it_names_and_resends_what_is_safe():
    proto = make(heartbeat=False)
    open_proto(proto)
    answered = proto.request(dict(CREATE_WITH_ID, data={"id": "k0"}), now=0)
    dropped = proto.request(CREATE_WITH_ID, now=0)
    unsafe = proto.request({"type": "items", "collection": "m", "action": "create"}, now=0)
    first = sent(proto.events())
    assert len(first) == 3
    limited = {
        "type": "server",
        "status": "error",
        "error": {"code": "REQUESTS_EXCEEDED", "message": "Too many messages, retry after 734ms."},
    }
    events = reply(proto, limited, 0.1)
    assert sent(events) == [] and of(events, p.RequestFailed) == []
    assert proto.paused_until == pytest.approx(0.834)
    waiting = proto.request(dict(CREATE_WITH_ID, data={"id": "k2"}), now=0.2)
    assert sent(proto.events()) == []  # paced requests wait for the pause to end
    assert proto.next_deadline() == pytest.approx(0.834)
    proto.tick(0.834)
    assert [m["data"] for m in sent(proto.events())] == [{"id": "k2"}]
    done = reply(proto, {"type": "items", "data": {"id": "k0"}, "uid": first[0]["uid"]}, 1.0)
    assert [d.key for d in of(done, p.RequestDone)] == [answered]  # accepted, answered late
    # Unanswered DROPPED_AFTER past the pause: the safe one was dropped and is sent again;
    # the one that is not safe to repeat waits for its timeout.
    assert proto.next_deadline() == pytest.approx(0.834 + p.DROPPED_AFTER)
    proto.tick(0.834 + p.DROPPED_AFTER)
    again = sent(proto.events())
    assert [m["data"] for m in again] == [{"id": "k1", "t": "hi"}]
    assert again[0]["uid"] != first[1]["uid"]
    events = reply(
        proto, {"type": "items", "data": {"id": "k1", "t": "hi"}, "uid": again[0]["uid"]}, 2
    )
    assert [d.key for d in of(events, p.RequestDone)] == [dropped]
    assert unsafe not in (answered, dropped, waiting)


def test_create_without_id_whose_reply_was_lost_fails_and_is_not_resent():
    proto = make()
    open_proto(proto)
    key = proto.request(
        {"type": "items", "collection": "m", "action": "create", "data": {"t": "x"}}, now=0
    )
    proto.events()
    proto.socket_closed(1)
    events = proto.events()
    failed = of(events, p.RequestFailed)
    assert [f.key for f in failed] == [key]
    assert isinstance(failed[0].error, ConnectionLost)
    assert proto.outbox() == []
    events = reconnect_after_close(proto)
    assert [m for m in sent(events) if m["type"] == "items"] == []


def reconnect_after_close(proto):
    t = proto.retry_at
    proto.tick(t)
    proto.socket_opened(t)
    events = proto.events()
    events += auth_ok(proto, t)
    return events


def test_read_is_resent_after_a_lost_reply_but_update_is_not():
    proto = make()
    open_proto(proto)
    read = proto.request(READ, now=0)
    upd = proto.request(
        {"type": "items", "collection": "c", "action": "update", "id": 1, "data": {}}, now=0
    )
    proto.events()
    proto.socket_closed(1)
    events = proto.events()
    assert [f.key for f in of(events, p.RequestFailed)] == [upd]
    assert proto.outbox() == [READ]
    assert read != upd


def test_retry_flag_overrides_the_default():
    proto = make()
    open_proto(proto)
    key = proto.request(
        {"type": "items", "collection": "c", "action": "update", "id": 1}, retry=True, now=0
    )
    proto.events()
    proto.socket_closed(1)
    assert of(proto.events(), p.RequestFailed) == []
    assert len(proto.outbox()) == 1 and key


# --- token expiry -----------------------------------------------------------------------------


def test_token_expired_after_email_login_reauthenticates_with_the_refresh_token():
    proto = make(access_token=None, email="a@b.c", password="pw")
    key = proto.subscribe("a")
    proto.connect(0)
    proto.socket_opened(0)
    proto.events()
    auth_ok(proto, 0, refresh_token="R1")
    assert proto.state == p.OPEN
    events = reply(proto, error_reply("auth", "TOKEN_EXPIRED"), 900)
    assert sent(events) == [{"type": "auth", "refresh_token": "R1"}]
    assert of(events, p.Closed) == [] and of(events, p.SubscriptionEnded) == []
    assert proto.state == p.OPEN
    assert key


def test_a_request_served_as_public_after_token_expired_fails_as_expired_not_forbidden():
    """Directus says TOKEN_EXPIRED, then answers a request already on its way FORBIDDEN (as the
    public user): that request was not refused for itself, and its error says so."""
    proto = make(access_token=None, email="a@b.c", password="pw")
    proto.connect(0)
    proto.socket_opened(0)
    proto.events()
    auth_ok(proto, 0, refresh_token="R1")
    key = proto.request({"type": "items", "collection": "c", "action": "create", "data": {}})
    request_uid = sent(proto.events())[-1]["uid"]
    reply(proto, error_reply("auth", "TOKEN_EXPIRED"), 900)
    events = reply(proto, error_reply("items", "FORBIDDEN", uid=request_uid), 900)
    failed = of(events, p.RequestFailed)
    assert [f.key for f in failed] == [key]
    assert failed[0].error.code == "TOKEN_EXPIRED"


def test_token_expired_after_refresh_token_login_reauthenticates_with_the_new_refresh_token():
    proto = make(access_token=None, refresh_token="R0")
    proto.subscribe("a")
    proto.connect(0)
    proto.socket_opened(0)
    assert sent(proto.events()) == [{"type": "auth", "refresh_token": "R0"}]
    auth_ok(proto, 0, refresh_token="R1")
    events = reply(proto, error_reply("auth", "TOKEN_EXPIRED"), 900)
    assert sent(events) == [{"type": "auth", "refresh_token": "R1"}]
    assert of(events, p.ErrorOccurred) == []
    assert proto.state == p.OPEN


def test_token_expired_with_access_and_refresh_token_falls_back_to_refresh_token():
    proto = make(access_token="A", refresh_token="R")
    key = proto.subscribe("a")
    open_proto(proto)
    events = reply(proto, error_reply("auth", "TOKEN_EXPIRED"), 900)
    assert sent(events) == [{"type": "auth", "refresh_token": "R"}]
    assert of(events, p.Closed) == [] and of(events, p.SubscriptionEnded) == []
    assert of(events, p.CloseSocket) == []
    # the ok reply does not resubscribe
    events = auth_ok(proto, 901, refresh_token="R2")
    assert [m for m in sent(events) if m["type"] == "subscribe"] == []
    assert of(events, p.Opened) == []
    assert proto.state == p.OPEN and proto.refresh_token == "R2"
    assert key


def test_token_expired_with_token_provider_schedules_a_refresh():
    proto = make(has_token_provider=True)
    proto.subscribe("a")
    open_proto(proto)
    events = reply(proto, error_reply("auth", "TOKEN_EXPIRED"), 900)
    assert len(of(events, p.ScheduleRefresh)) == 1
    assert sent(events) == []
    assert of(events, p.Closed) == [] and of(events, p.SubscriptionEnded) == []
    proto.authenticate(901, "FRESH")
    assert sent(proto.events()) == [{"type": "auth", "access_token": "FRESH"}]
    events = auth_ok(proto, 902)
    assert sent(events) == [] and proto.state == p.OPEN


def test_token_expired_with_only_a_static_token_is_reported_not_failed():
    proto = make()
    open_proto(proto)
    events = reply(proto, error_reply("auth", "TOKEN_EXPIRED"), 900)
    assert [e.error.code for e in of(events, p.ErrorOccurred)] == ["TOKEN_EXPIRED"]
    assert proto.state == p.OPEN
    assert sent(events) == []


def test_token_expired_during_handshake_with_static_token_fails():
    proto = make()
    proto.connect(0)
    proto.socket_opened(0)
    proto.events()
    reply(proto, error_reply("auth", "TOKEN_EXPIRED"), 1)
    assert proto.state == p.FAILED
    assert proto.failure.code == "TOKEN_EXPIRED"


def test_authenticate_while_closed_only_stores_the_token():
    proto = make()
    proto.authenticate(0, "LATER")
    assert proto.events() == []
    proto.connect(0)
    proto.socket_opened(0)
    assert sent(proto.events()) == [{"type": "auth", "access_token": "LATER"}]


def test_auth_ok_refresh_token_is_kept_for_the_next_connection():
    proto = make(access_token=None, email="a@b.c", password="pw")
    proto.connect(0)
    proto.socket_opened(0)
    proto.events()
    auth_ok(proto, 0, refresh_token="R1")
    proto.socket_closed(1)
    proto.tick(proto.retry_at)
    proto.socket_opened(proto.retry_at)
    assert sent(proto.events()) == [{"type": "auth", "refresh_token": "R1"}]


# --- invalid frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["not json {", "[1, 2]", '"a string"', "42", "null"])
def test_invalid_frame_is_reported_and_the_connection_stays_open(text):
    proto = make()
    open_proto(proto)
    proto.receive_text(text, 1)
    events = proto.events()
    errors = of(events, p.ErrorOccurred)
    assert len(errors) == 1 and isinstance(errors[0].error, InvalidFrame)
    assert of(events, p.MessageReceived) == []
    assert proto.state == p.OPEN


# --- disconnect -------------------------------------------------------------------------------


def test_disconnect_closes_ends_subscriptions_fails_requests_and_never_reconnects():
    proto = make()
    sub = proto.subscribe("a")
    open_proto(proto)
    pending = proto.request(READ, now=0)
    proto.events()
    proto.disconnect(1)
    events = proto.events()
    assert len(of(events, p.CloseSocket)) == 1
    assert proto.state == p.CLOSED
    ended = of(events, p.SubscriptionEnded)
    assert [e.key for e in ended] == [sub] and isinstance(ended[0].error, ConnectionFailed)
    failed = of(events, p.RequestFailed)
    assert [f.key for f in failed] == [pending]
    assert proto.next_deadline() is None
    proto.socket_closed(2, 1000)
    proto.tick(1000)
    events = proto.events()
    assert of(events, p.OpenSocket) == [] and of(events, p.Closed) == []
    assert proto.state == p.CLOSED


def test_disconnect_fails_queued_requests_with_connection_failed():
    proto = make()
    key = proto.request(READ)
    proto.disconnect(0)
    events = proto.events()
    failed = of(events, p.RequestFailed)
    assert [f.key for f in failed] == [key] and isinstance(failed[0].error, ConnectionFailed)
    assert of(events, p.CloseSocket) == []  # there was no socket
    assert proto.outbox() == []


def test_disconnect_while_reconnecting_stops_the_retry():
    proto = make()
    open_proto(proto)
    proto.socket_closed(1)
    proto.events()
    proto.disconnect(2)
    assert proto.state == p.CLOSED and proto.next_deadline() is None
    proto.tick(10_000)
    assert of(proto.events(), p.OpenSocket) == []


# --- events() -------------------------------------------------------------------------------


def test_events_drains():
    proto = make()
    proto.connect(0)
    assert proto.events() != []
    assert proto.events() == []


# --- found by the integration tests against a real Directus ----------------------------------


def test_disconnect_while_open_emits_closed_once():
    proto = make()
    open_proto(proto)
    proto.disconnect(1.0)
    events = proto.events()
    assert len(of(events, p.Closed)) == 1
    assert of(events, p.CloseSocket)
    proto.socket_closed(1.1, 1005)  # the transport's late report changes nothing
    assert of(proto.events(), p.Closed) == []


@pytest.mark.parametrize("status", [401, 403])
def test_upgrade_refused_with_401_or_403_fails_without_retrying(status):
    proto = make(auth_mode="strict")
    proto.connect(0.0)
    proto.events()
    proto.socket_refused(0.1, status, "Unauthorized")
    events = proto.events()
    assert proto.state == p.FAILED
    assert isinstance(proto.failure, AuthenticationError)
    assert proto.failure.code == "HTTP_%d" % status
    assert proto.next_deadline() is None
    proto.tick(100.0)
    assert of(proto.events(), p.OpenSocket) == []
    assert of(events, p.ErrorOccurred)


def test_upgrade_refused_with_502_is_retried_like_a_lost_connection():
    proto = make()
    proto.connect(0.0)
    proto.events()
    proto.socket_refused(0.1, 502)
    assert proto.state == p.RECONNECTING
    proto.tick(proto.retry_at)
    assert of(proto.events(), p.OpenSocket)


def test_token_provider_gives_the_first_token_too():
    proto = make(access_token=None, has_token_provider=True)
    proto.connect(0.0)
    proto.socket_opened(0.1)
    events = proto.events()
    assert of(events, p.ScheduleRefresh)
    assert proto.state == p.AUTHENTICATING
    assert sent(events) == []
    proto.authenticate(0.2, "FRESH")
    assert sent(proto.events()) == [{"type": "auth", "access_token": "FRESH"}]
    auth_ok(proto, 0.3)
    assert proto.state == p.OPEN


def test_liveness_follows_a_server_that_pings_more_often_than_the_configured_period():
    proto = make(heartbeat_period=30.0)
    open_proto(proto, 0.0)
    reply(proto, {"type": "ping"}, 1.0)
    reply(proto, {"type": "ping"}, 3.0)  # the server pings every 2 s
    assert proto.liveness_period() == pytest.approx(3.0)
    assert proto.next_deadline() == pytest.approx(6.0)
    proto.tick(6.0)
    events = proto.events()
    assert of(events, p.CloseSocket)
    assert proto.state == p.RECONNECTING


def test_liveness_ignores_a_single_early_ping():
    proto = make(heartbeat_period=30.0)
    open_proto(proto, 0.0)
    reply(proto, {"type": "ping"}, 1.0)  # one ping says nothing about the period
    assert proto.liveness_period() == pytest.approx(45.0)


def test_a_token_provider_that_is_refused_fails_the_client_without_retrying():
    proto = make(access_token=None, has_token_provider=True)
    proto.connect(0.0)
    proto.socket_opened(0.1)
    proto.events()
    proto.token_refused(0.2, DirectusError("INVALID_CREDENTIALS", "Invalid user credentials."))
    events = proto.events()
    assert proto.state == p.FAILED
    assert proto.failure.code == "INVALID_CREDENTIALS"
    assert of(events, p.CloseSocket)
    assert proto.next_deadline() is None


# --- found by the fault-injection tests (tests/faults) ----------------------------------------


def test_a_silent_connection_with_a_reply_awaited_is_probed_and_dropped_within_seconds():
    proto = make(heartbeat_period=30)
    open_proto(proto, 0)
    proto.request(CREATE_WITH_ID, now=0)
    proto.events()
    assert proto.next_deadline() == p.PROBE_WHEN_WAITING
    proto.tick(p.PROBE_WHEN_WAITING)
    [ping] = sent(proto.events())
    assert ping["type"] == "ping" and ping["uid"]
    dead_at = p.PROBE_WHEN_WAITING + p.PONG_TIMEOUT
    assert proto.next_deadline() == dead_at
    proto.tick(dead_at)
    events = proto.events()
    assert of(events, p.CloseSocket) and proto.state == p.RECONNECTING
    assert of(events, p.RequestFailed) == []  # the create waits to be sent again
    assert proto.outbox() == [CREATE_WITH_ID]


def test_a_pong_answers_the_probe_and_keeps_the_connection():
    proto = make(heartbeat_period=30)
    open_proto(proto, 0)
    proto.request(CREATE_WITH_ID, now=0)
    proto.events()
    proto.tick(p.PROBE_WHEN_WAITING)
    [ping] = sent(proto.events())
    reply(proto, {"type": "pong", "uid": ping["uid"]}, 2.5)
    proto.tick(2.5 + p.PONG_TIMEOUT)
    assert proto.state == p.OPEN


def test_no_probes_once_the_server_ping_period_is_known_and_nothing_is_awaited():
    proto = make(heartbeat_period=30)
    open_proto(proto, 0)
    reply(proto, {"type": "ping"}, 1)
    reply(proto, {"type": "ping"}, 3)
    assert proto.next_deadline() == pytest.approx(3 + 1.5 * 2)  # liveness only


def test_a_retryable_request_that_times_out_reconnects_and_is_sent_again():
    proto = make(request_timeout=5, heartbeat=False)
    open_proto(proto, 0)
    proto.request(CREATE_WITH_ID, now=0)
    first = sent(proto.events())[0]
    proto.tick(5)
    events = proto.events()
    assert of(events, p.RequestFailed) == [] and proto.state == p.RECONNECTING
    proto.tick(proto.retry_at)
    proto.socket_opened(proto.retry_at)
    events = proto.events() + auth_ok(proto, proto.retry_at)
    again = [m for m in sent(events) if m.get("type") == "items"]
    assert len(again) == 1 and again[0]["data"] == first["data"]
    assert again[0]["uid"] != first["uid"]


def test_subscription_events_lost_to_an_expired_token_are_recovered_by_subscribing_again():
    proto = make(access_token=None, email="e@x", password="pw")
    open_proto(proto, 0)
    reply(proto, {"type": "auth", "status": "ok", "refresh_token": "R1"}, 0)
    key = proto.subscribe("messages", event="create")
    old_uid = sent(proto.events())[0]["uid"]
    reply(proto, {"type": "subscription", "event": "init", "uid": old_uid}, 0.1)
    reply(proto, error_reply("auth", "TOKEN_EXPIRED"), 5)
    # an event emitted in the gap comes back as FORBIDDEN for the subscription's uid
    events = reply(proto, error_reply("subscribe", "FORBIDDEN", uid=old_uid), 5.1)
    assert of(events, p.SubscriptionEnded) == []
    assert of(events, p.ErrorOccurred)
    events = reply(proto, {"type": "auth", "status": "ok", "refresh_token": "R2"}, 5.2)
    messages = sent(events)
    assert messages[0] == {"type": "unsubscribe", "uid": old_uid}
    assert messages[1]["type"] == "subscribe" and messages[1]["uid"] != old_uid
    events = reply(proto, {"type": "subscription", "event": "init", "uid": messages[1]["uid"]}, 6)
    assert [e.key for e in of(events, p.SubscriptionMessage)] == [key]


def test_a_subscribe_error_outside_a_token_renewal_still_ends_the_subscription():
    proto = make()
    open_proto(proto, 0)
    key = proto.subscribe("messages")
    uid = sent(proto.events())[0]["uid"]
    reply(proto, {"type": "subscription", "event": "init", "uid": uid}, 0.1)
    events = reply(proto, error_reply("subscribe", "FORBIDDEN", uid=uid), 1)
    assert [e.key for e in of(events, p.SubscriptionEnded)] == [key]


# --- reconnect storms -------------------------------------------------------------------------


def test_a_server_that_drops_the_socket_after_sign_in_gets_growing_delays():
    proto = make()
    open_proto(proto, 0)
    now = 0.0
    delays = []
    for _ in range(8):
        proto.socket_closed(now)  # the sign-in was accepted, then the socket dropped
        delays.append(proto.retry_at - now)
        now = proto.retry_at
        proto.tick(now)
        proto.socket_opened(now)
        auth_ok(proto, now)
        assert proto.state == p.OPEN
    # HALF of min(30, 0.5 * 2**n): the same as attempts that never open
    assert delays == pytest.approx([0.25, 0.5, 1, 2, 4, 8, 15, 15])


def test_the_backoff_starts_over_once_a_connection_stayed_up_for_stable_after():
    proto = make(stable_after=5)
    open_proto(proto, 0)
    proto.socket_closed(0)
    t = proto.retry_at

    def open_proto_again(at):
        proto.tick(at)
        proto.socket_opened(at)
        auth_ok(proto, at)

    open_proto_again(t)
    proto.socket_closed(t + 4.9)  # not long enough
    assert proto.retry_at - (t + 4.9) == pytest.approx(0.5)
    t = proto.retry_at
    open_proto_again(t)
    proto.socket_closed(t + 5)
    assert proto.retry_at - (t + 5) == pytest.approx(0.25)


def test_the_backoff_starts_over_once_the_server_pinged_a_connection():
    """A server pings once per its own heartbeat period: a connection it pinged stayed up for
    one period, however short that is, and its loss starts the backoff over."""
    proto = make(stable_after=30)
    open_proto(proto, 0)
    proto.socket_closed(0)
    t = proto.retry_at
    proto.tick(t)
    proto.socket_opened(t)
    auth_ok(proto, t)
    proto.socket_closed(t + 3)  # no ping: one more failed attempt, the delay doubles
    assert proto.retry_at - (t + 3) == pytest.approx(0.5)
    t = proto.retry_at
    proto.tick(t)
    proto.socket_opened(t)
    auth_ok(proto, t)
    proto.receive_text('{"type": "ping"}', t + 2)
    proto.socket_closed(t + 3)
    assert proto.retry_at - (t + 3) == pytest.approx(0.25)


def test_stable_after_defaults_to_the_heartbeat_period():
    assert make(heartbeat_period=12).stable_after == 12
    assert make().stable_after == 30


def _serve_slowly(proto, until):
    """Play a Directus that signs in and answers pings but never a request, up to ``until``.
    Returns (sockets opened, requests failed, reconnect delays)."""
    opens, failed, delays = 0, [], []
    now = 0.0
    for _ in range(1000):  # bounded: a storm must fail the test, not hang it
        deadline = proto.next_deadline()
        if deadline is None or deadline > until:
            break
        now = deadline
        proto.tick(now)
        events = proto.events()
        while events:
            more = []
            for event in events:
                if isinstance(event, p.OpenSocket):
                    opens += 1
                    proto.socket_opened(now)
                elif isinstance(event, p.SendText):
                    message = json.loads(event.text)
                    if message["type"] == "auth":
                        proto.receive_text(json.dumps({"type": "auth", "status": "ok"}), now)
                    elif message["type"] == "ping":
                        pong = {"type": "pong", "uid": message["uid"]}
                        proto.receive_text(json.dumps(pong), now)
                elif isinstance(event, p.RequestFailed):
                    failed.append(event)
                elif isinstance(event, p.StateChanged) and event.state == p.RECONNECTING:
                    delays.append(proto.retry_at - now)
                more += proto.events()
            events = more
    return opens, failed, delays


def test_a_slow_server_is_not_reconnected_to_at_every_request_timeout_forever():
    proto = make(request_timeout=10, heartbeat=False)  # (no probes: see the next test)
    open_proto(proto, 0)
    key = proto.request(READ, now=0)  # retryable: a timeout reconnects and sends it again
    proto.events()
    opens, failed, delays = _serve_slowly(proto, until=600)
    assert opens == p.REQUEST_ATTEMPTS - 1
    assert delays == pytest.approx([0.25, 0.5])  # the 10 s connections did not reset it
    assert [f.key for f in failed] == [key]
    assert isinstance(failed[0].error, RequestTimeout)
    assert "3 attempts" in str(failed[0].error)
    assert proto.state == p.OPEN


def test_a_request_timeout_on_a_connection_that_answers_probes_does_not_reconnect():
    proto = make(request_timeout=10, heartbeat_period=30)
    open_proto(proto, 0)
    key = proto.request(READ, now=0)
    proto.events()
    opens, failed, _ = _serve_slowly(proto, until=600)
    assert opens == 0
    assert [f.key for f in failed] == [key]
    assert isinstance(failed[0].error, RequestTimeout)
    assert "within 10 s" in str(failed[0].error)
    assert proto.state == p.OPEN


def test_a_request_lost_with_its_connection_is_sent_at_most_request_attempts_times():
    proto = make(request_attempts=2)
    open_proto(proto, 0)
    key = proto.request(CREATE_WITH_ID, now=0)
    assert len(sent(proto.events())) == 1
    events = reconnect(proto, 1)
    assert [m["type"] for m in sent(events)] == ["auth", "items"]
    proto.socket_closed(2)
    events = proto.events()
    failed = of(events, p.RequestFailed)
    assert [f.key for f in failed] == [key]
    assert isinstance(failed[0].error, ConnectionLost) and "2 times" in str(failed[0].error)
    assert proto.outbox() == []


def test_the_read_back_after_a_duplicate_gets_attempts_of_its_own():
    proto = make(request_attempts=2)
    open_proto(proto)
    key = proto.request(CREATE_WITH_ID, now=0)
    proto.events()
    retry_uid = [m for m in sent(reconnect(proto, 1)) if m["type"] == "items"][0]["uid"]
    reply(proto, error_reply("items", "RECORD_NOT_UNIQUE", retry_uid), 2)
    events = reconnect(proto, 3)  # the read-back's reply is lost: it is sent again
    read = [m for m in sent(events) if m["type"] == "items"]
    assert len(read) == 1 and read[0]["action"] == "read"
    row = {"id": "k1", "t": "hi"}
    events = reply(proto, {"type": "items", "data": row, "uid": read[0]["uid"]}, 4)
    assert [d.key for d in of(events, p.RequestDone)] == [key]


def test_request_attempts_must_be_at_least_one():
    with pytest.raises(ValueError):
        make(request_attempts=0)


# --- frames that do not decode ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "items", "uid": [1], "data": []}',
        '{"type": "subscription", "event": "create", "uid": {"a": 1}}',
        '{"type": "items", "status": "error", "error": {"code": "X"}, "uid": [1]}',
        '{"type": "auth", "status": "ok", "uid": []}',
        "[" * 100_000,  # RecursionError in CPython's decoder, not ValueError
        "\ud800",
        "",
    ],
)
def test_a_frame_that_does_not_decode_is_an_invalid_frame_and_the_connection_goes_on(text):
    proto = make()
    key = proto.subscribe("messages")
    sub_uid = [m for m in sent(open_proto(proto)) if m["type"] == "subscribe"][0]["uid"]
    request = proto.request(READ, now=0)
    read_uid = sent(proto.events())[0]["uid"]
    proto.receive_text(text, 1)
    events = proto.events()
    errors = of(events, p.ErrorOccurred)
    assert len(errors) == 1 and isinstance(errors[0].error, InvalidFrame)
    assert proto.state == p.OPEN
    assert of(events, p.SubscriptionEnded) == [] and of(events, p.RequestFailed) == []
    events = reply(proto, {"type": "subscription", "event": "init", "uid": sub_uid}, 2)
    assert [e.key for e in of(events, p.SubscriptionMessage)] == [key]
    events = reply(proto, {"type": "items", "data": [], "uid": read_uid}, 2)
    assert [d.key for d in of(events, p.RequestDone)] == [request]


def test_running_out_of_memory_while_decoding_is_an_invalid_frame(monkeypatch):
    class SmallHeap:
        dumps = staticmethod(json.dumps)

        @staticmethod
        def loads(text):
            raise MemoryError("memory allocation failed, allocating 1048576 bytes")

    proto = make()
    open_proto(proto)
    monkeypatch.setattr(p, "json", SmallHeap)
    proto.receive_text('{"type": "items", "data": "' + "x" * 1000 + '"}', 1)
    errors = of(proto.events(), p.ErrorOccurred)
    assert len(errors) == 1 and isinstance(errors[0].error, InvalidFrame)
    assert "MemoryError" in str(errors[0].error)
    assert proto.state == p.OPEN


def test_a_frame_from_a_socket_already_given_up_is_ignored():
    proto = make(connect_timeout=10)
    proto.connect(0)
    proto.socket_opened(1)
    proto.tick(10)  # given up: reconnecting
    proto.events()
    proto.receive_text('{"type": "auth", "status": "ok"}', 10.1)
    assert proto.events() == [] and proto.state == p.RECONNECTING


# --- found by the Hypothesis machine (test_protocol_machine.py) -------------------------------


def test_a_lost_connection_never_overfills_the_outbox():
    proto = make(outbox_limit=2)
    open_proto(proto)
    reads = [proto.request(READ, now=0) for _ in range(2)]
    third = proto.request(READ, now=0)  # two in flight would come back to the outbox
    update = proto.request({"type": "items", "collection": "c", "action": "update", "id": 1}, now=0)
    events = proto.events()
    failed = of(events, p.RequestFailed)
    assert [(f.key, type(f.error)) for f in failed] == [(third, OutboxFull)]
    assert [m["action"] for m in sent(events)] == ["read", "read", "update"]  # (never resent)
    proto.socket_closed(1)
    events = proto.events()
    assert [f.key for f in of(events, p.RequestFailed)] == [update]
    assert proto.outbox() == [READ, READ] and len(reads) == 2
