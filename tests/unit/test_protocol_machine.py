"""Property-based tests of the sans-I/O core: Hypothesis drives ``RealtimeProtocol`` with random
interleavings of what a user, a transport, a clock and a small model Directus can do, and checks
after every step what must always hold:

* every request settles exactly once (never twice; all of them once the client is closed);
* a uid the client chose is never used twice, on one connection or across them;
* the outbox stays within its bound;
* after ``tick(now)`` no deadline at or before ``now`` is left;
* after every (re)connect each live subscription is sent exactly once;
* nothing is delivered for a subscription or request that has ended, and nothing raises.

The model server remembers which item ids it stored, so a create the client reports as done
must be stored, and a retried create meets RECORD_NOT_UNIQUE as on the real Directus.
"""

import collections
import json
import os
import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from directus_realtime import protocol as p
from directus_realtime.errors import DirectusError

URL = "http://directus.test"

# Frames a server (or a broken proxy) might send besides proper replies.
ODD_FRAMES = st.one_of(
    st.sampled_from(
        [
            "not json {",
            "[1, 2]",
            "null",
            '"text"',
            "",
            "[" * 5000,
            '{"type": "items", "uid": [1]}',
            '{"type": "subscription", "uid": {"a": 1}, "event": "create"}',
            '{"type": "items", "status": "error"}',
            '{"type": "items", "status": "error", "error": "flat"}',
            '{"type": "subscribe", "status": "error", "error": {"code": "FORBIDDEN"}}',
            '{"type": "items", "status": "error", "error": {"code": "INVALID_PAYLOAD"}}',
            '{"type": "auth", "status": "error", "error": {"code": "TOKEN_EXPIRED"}}',
            '{"type": "pong", "uid": "nobody"}',
            '{"type": "items", "uid": "999999", "data": []}',
            '{"uid": 7}',
            '{"type": 5, "uid": null}',
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=6,
    ).map(json.dumps),
)


class ProtocolMachine(RuleBasedStateMachine):
    # ----- set-up -----

    @initialize(
        auth=st.sampled_from(["token", "login", "provider", "public"]),
        heartbeat=st.booleans(),
        probes=st.booleans(),
        request_attempts=st.integers(1, 3),
        outbox_limit=st.integers(1, 4),
        retries=st.sampled_from([None, None, None, None, 3, "off"]),
        seed=st.integers(0, 2**16),
    )
    def start(self, auth, heartbeat, probes, request_attempts, outbox_limit, retries, seed):
        options = {
            "heartbeat": heartbeat,
            "heartbeat_period": 5.0,
            "probes": probes,
            "connect_timeout": 3.0,
            "request_timeout": 2.0,
            "request_attempts": request_attempts,
            "outbox_limit": outbox_limit,
        }
        if retries == "off":
            options["reconnect"] = False
        else:
            options["reconnect"] = p.Backoff(retries=retries, rng=random.Random(seed).random)
        if auth == "token":
            options["access_token"] = "T"
        elif auth == "login":
            options.update(email="e@x", password="pw")
        elif auth == "provider":
            options["has_token_provider"] = True
        else:
            options["auth_mode"] = "public"
        self.outbox_limit = outbox_limit
        self.proto = p.RealtimeProtocol(URL, **options)
        self.now = 0.0
        self.socket = None  # None, "connecting" or "open": the transport's socket, as modelled
        self.inbox = []  # what the client sent on the current socket, not answered yet
        self.refresh_wanted = False
        self.stored = {}  # the server's rows: id -> row
        self.settled = collections.Counter()  # request key -> RequestDone/RequestFailed seen
        self.requests = {}  # request key -> the message
        self.live_subs = {}  # subscription key -> collection (one collection per subscription)
        self.ended_subs = collections.Counter()
        self.server_uids = {}  # the server's subscription uids -> collection, this socket
        self.uids = set()  # every uid the client chose
        self.next_id = 0
        self.proto.connect(self.now)
        self.drain()

    # ----- the driver: carry out and check what the machine asked for -----

    def drain(self):
        events = self.proto.events()
        opened_at = None
        for index, event in enumerate(events):
            if isinstance(event, p.OpenSocket):
                self.socket = "connecting"
                self.inbox = []
                self.server_uids = {}
            elif isinstance(event, p.CloseSocket):
                self.socket = None
                self.inbox = []
            elif isinstance(event, p.SendText):
                assert self.socket == "open", "sent on a socket that is not open"
                self.on_sent(json.loads(event.text))
            elif isinstance(event, p.ScheduleRefresh):
                self.refresh_wanted = True
            elif isinstance(event, p.RequestDone):
                self.on_settled(event.key)
                message = self.requests[event.key]
                if message.get("action") == "create" and "id" in message["data"]:
                    assert message["data"]["id"] in self.stored, "reported done, never stored"
            elif isinstance(event, p.RequestFailed):
                self.on_settled(event.key)
            elif isinstance(event, p.SubscriptionMessage):
                assert event.key in self.live_subs, "a message for an ended subscription"
            elif isinstance(event, p.SubscriptionEnded):
                self.ended_subs[event.key] += 1
                assert self.ended_subs[event.key] == 1, "a subscription ended twice"
                self.live_subs.pop(event.key, None)
            elif isinstance(event, p.Opened):
                opened_at = index, dict(self.live_subs)
        if opened_at is not None:
            index, live = opened_at
            resent = [
                json.loads(e.text)["collection"]
                for e in events[index:]
                if isinstance(e, p.SendText) and json.loads(e.text)["type"] == "subscribe"
            ]
            assert sorted(resent) == sorted(live.values()), (resent, live)

    def on_sent(self, message):
        kind = message.get("type")
        if "uid" in message and kind not in ("unsubscribe", "pong"):
            assert message["uid"] not in self.uids, "uid used twice: %r" % message
            self.uids.add(message["uid"])
        if kind == "subscribe":
            self.server_uids[message["uid"]] = message["collection"]
        elif kind == "unsubscribe":
            self.server_uids.pop(message["uid"], None)
        if kind != "pong":
            self.inbox.append(message)

    def on_settled(self, key):
        assert key in self.requests, "settled a request nobody made"
        self.settled[key] += 1
        assert self.settled[key] == 1, "request %r settled twice" % key

    def feed(self, message):
        text = message if isinstance(message, str) else json.dumps(message)
        self.proto.receive_text(text, self.now)
        self.drain()

    def pending(self, kind):
        return [m for m in self.inbox if m.get("type") == kind]

    # ----- the user -----

    @rule(disconnect=st.sampled_from([False, False, False, True]))
    def connect_or_disconnect(self, disconnect):
        # (Hypothesis picks rules evenly: a disconnect in every other step would keep the
        # machine closed most of the time.)
        if disconnect:
            self.proto.disconnect(self.now)
        else:
            self.proto.connect(self.now)
        self.drain()

    @rule(action=st.sampled_from(["read", "create", "create-no-id", "update"]))
    def request(self, action):
        message = {"type": "items", "collection": "m", "action": action.split("-")[0]}
        if action == "create":
            self.next_id += 1
            message["data"] = {"id": "i%d" % self.next_id, "text": "x"}
        elif action == "create-no-id":
            message["data"] = {"text": "x"}
        elif action == "update":
            message.update(id="i1", data={"text": "y"})
        key = self.proto.request(message, now=self.now)
        self.requests[key] = message
        self.drain()

    @rule()
    def send_message(self):
        try:
            self.proto.send_message({"type": "ping"}, self.now)
        except p.OutboxFull:
            pass
        self.drain()

    @rule()
    def subscribe(self):
        self.next_id += 1
        collection = "c%d" % self.next_id
        key = self.proto.subscribe(collection, event="create")
        self.live_subs[key] = collection
        self.drain()

    @precondition(lambda self: self.live_subs)
    @rule(data=st.data())
    def unsubscribe(self, data):
        key = data.draw(st.sampled_from(sorted(self.live_subs)))
        self.proto.unsubscribe(key)
        self.drain()
        assert key not in self.live_subs

    @rule(token=st.sampled_from(["T", "T2", None]))
    def set_credentials(self, token):
        self.proto.set_credentials(self.now, access_token=token)
        self.drain()

    @rule(online=st.booleans())
    def set_online(self, online):
        self.proto.set_online(online, self.now)
        self.drain()

    @precondition(lambda self: self.refresh_wanted)
    @rule(refused=st.booleans())
    def token_provider_answers(self, refused):
        self.refresh_wanted = False
        if refused:
            self.proto.token_refused(self.now, DirectusError("INVALID_CREDENTIALS", "no"))
        else:
            self.proto.authenticate(self.now, "FRESH")
        self.drain()

    # ----- the clock -----

    @rule(dt=st.sampled_from([0.01, 0.5, 1.0, 2.5, 10.0, 60.0]))
    def time_passes(self, dt):
        self.tick(self.now + dt)

    @precondition(lambda self: self.proto.next_deadline() is not None)
    @rule()
    def the_next_deadline_comes(self):
        self.tick(max(self.now, self.proto.next_deadline()))

    def tick(self, now):
        self.now = now
        self.proto.tick(now)
        self.drain()
        deadline = self.proto.next_deadline()
        assert deadline is None or deadline > now, "a deadline in the past was not served"

    # ----- the transport -----

    @precondition(lambda self: self.socket == "connecting")
    @rule()
    def socket_opens(self):
        self.socket = "open"
        self.proto.socket_opened(self.now)
        self.drain()

    @precondition(lambda self: self.socket == "connecting")
    @rule()
    def socket_opens_and_directus_signs_in(self):
        self.socket_opens()
        if self.refresh_wanted:
            self.refresh_wanted = False
            self.proto.authenticate(self.now, "FRESH")
            self.drain()
        for message in self.pending("auth"):
            self.inbox.remove(message)
            self.feed({"type": "auth", "status": "ok"})

    @precondition(lambda self: self.socket == "connecting")
    @rule(status=st.sampled_from([502, 502, 502, 401]))
    def upgrade_refused(self, status):
        self.socket = None
        self.proto.socket_refused(self.now, status)
        self.drain()

    @precondition(lambda self: self.socket is not None)
    @rule(code=st.sampled_from([None, 1005, 1006]))
    def socket_closes(self, code):
        self.socket = None
        self.inbox = []
        self.proto.socket_closed(self.now, code)
        self.drain()

    @precondition(lambda self: self.socket is not None)
    @rule()
    def socket_error(self):
        self.proto.socket_error(self.now, OSError("boom"))
        self.drain()

    # ----- the model Directus -----

    @precondition(lambda self: self.socket == "open")
    @rule(answer=st.sampled_from(["ok", "ok", "ok", "refused", "expired", "expired"]))
    def server_answers_auth(self, answer):
        auths = self.pending("auth")
        if auths:
            self.inbox.remove(auths[0])
        if answer == "ok":
            self.feed({"type": "auth", "status": "ok"})
        elif answer == "refused":
            self.feed({"type": "auth", "status": "error", "error": {"code": "INVALID_CREDENTIALS"}})
        else:
            self.feed({"type": "auth", "status": "error", "error": {"code": "TOKEN_EXPIRED"}})

    @precondition(lambda self: self.socket == "open" and self.pending("items"))
    @rule(
        data=st.data(),
        outcome=st.sampled_from(["reply", "reply", "silently", "error", "error-no-uid"]),
    )
    def server_handles_a_request(self, data, outcome):
        message = data.draw(st.sampled_from(self.pending("items")))
        self.inbox.remove(message)
        uid = message["uid"]
        action = message["action"]
        error = None
        result = None
        if action == "create" and "id" in message["data"]:
            row_id = message["data"]["id"]
            if row_id in self.stored:
                error = "RECORD_NOT_UNIQUE"
            else:
                self.stored[row_id] = dict(message["data"])
                result = self.stored[row_id]
        elif action == "read" and "id" in message:
            result = self.stored.get(message["id"])
        elif action == "read" and "ids" in message:
            result = [self.stored[i] for i in message["ids"] if i in self.stored]
        else:
            result = message.get("data") or []
        if outcome == "silently":
            return  # carried out, and the reply is lost
        if error is None and outcome.startswith("error"):
            error = "FORBIDDEN"
        if error is None:
            self.feed({"type": "items", "data": result, "uid": uid})
            return
        reply = {"type": "items", "status": "error", "error": {"code": error, "message": "no"}}
        if outcome != "error-no-uid" or error == "RECORD_NOT_UNIQUE":
            reply["uid"] = uid
        self.feed(reply)

    @precondition(lambda self: self.socket == "open" and self.server_uids)
    @rule(data=st.data(), event=st.sampled_from(["init", "create", "error"]))
    def server_sends_to_a_subscription(self, data, event):
        uid = data.draw(st.sampled_from(sorted(self.server_uids)))
        if event == "error":
            self.server_uids.pop(uid)
            error = {"code": "FORBIDDEN", "message": "no"}
            self.feed({"type": "subscribe", "status": "error", "error": error, "uid": uid})
        else:
            self.feed({"type": "subscription", "event": event, "data": [{"id": 1}], "uid": uid})

    @precondition(lambda self: self.socket == "open")
    @rule()
    def server_pings(self):
        self.feed({"type": "ping"})

    @precondition(lambda self: self.socket == "open" and self.pending("ping"))
    @rule()
    def server_answers_a_ping(self):
        ping = self.pending("ping")[0]
        self.inbox.remove(ping)
        self.feed({"type": "pong", "uid": ping["uid"]})

    @precondition(lambda self: self.socket == "open")
    @rule(frame=ODD_FRAMES)
    def server_sends_an_odd_frame(self, frame):
        self.feed(frame)

    # ----- always -----

    @invariant()
    def outbox_within_its_bound(self):
        assert len(self.proto.outbox()) <= self.outbox_limit

    @invariant()
    def state_is_consistent(self):
        proto = self.proto
        assert proto.state in (
            p.CLOSED,
            p.CONNECTING,
            p.AUTHENTICATING,
            p.OPEN,
            p.RECONNECTING,
            p.OFFLINE,
            p.FAILED,
        )
        assert (proto.state == p.RECONNECTING) == (proto.retry_at is not None)
        if proto.state in (p.CLOSED, p.FAILED, p.OFFLINE):
            assert proto.next_deadline() is None

    def teardown(self):
        if not hasattr(self, "proto"):
            return
        self.proto.disconnect(self.now)
        self.drain()
        unsettled = [key for key in self.requests if self.settled[key] != 1]
        assert not unsettled, "requests never settled: %r" % unsettled
        assert not self.live_subs, "subscriptions never ended: %r" % self.live_subs


# 100 runs of 40 steps take about 4 s of CPU: `make test` stays fast. A longer hunt:
# PROTOCOL_MACHINE_EXAMPLES=5000 PROTOCOL_MACHINE_STEPS=100 (about 10 minutes).
ProtocolMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("PROTOCOL_MACHINE_EXAMPLES", "100")),
    stateful_step_count=int(os.environ.get("PROTOCOL_MACHINE_STEPS", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestProtocolMachine = ProtocolMachine.TestCase
