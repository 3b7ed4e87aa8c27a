"""Unit tests of the core's reconciliation (``subscribe(reconcile=...)``, ``_Reconciliation``):
when a subscription checks for create events it never got, what it reads, and that what it
finds comes once, as ordinary create events. Time is an input; Directus is played by hand."""

import json

import pytest

from directus_realtime import protocol as p
from directus_realtime.protocol import RECONCILE_EVERY, RECONCILE_GRACE, Backoff

URL = "http://directus.test"
FIELD = "date_created"


def make(**options):
    options.setdefault("access_token", "TOKEN")
    options.setdefault("reconnect", Backoff(rng=lambda: 0.5))
    options.setdefault("heartbeat", False)
    return p.RealtimeProtocol(URL, **options)


def sent(events):
    return [json.loads(e.text) for e in events if isinstance(e, p.SendText)]


def delivered(events):
    return [e.message for e in events if isinstance(e, p.SubscriptionMessage)]


def feed(proto, message, now):
    proto.receive_text(json.dumps(message), now)
    return proto.events()


def row(n, text="t"):
    return {"id": "id%03d" % n, "text": text, FIELD: "2026-01-01T00:%02d:%02d.000Z" % divmod(n, 60)}


def date(n):
    return row(n)[FIELD]


class Directus:
    """A subscribed, reconciling client and the messages it sent, played by hand."""

    def __init__(self, now=0.0, newest=None, **reconcile):
        self.proto = make()
        self.proto.connect(now)
        self.proto.socket_opened(now)
        self.proto.events()
        feed(self.proto, {"type": "auth", "status": "ok"}, now)
        options = dict({"field": FIELD}, **reconcile)
        self.key = self.proto.subscribe(
            "messages", event="create", query={"fields": ["id", "text", FIELD]}, reconcile=options
        )
        self.uid = sent(self.proto.events())[-1]["uid"]
        self.init(now, newest)

    def init(self, now, newest):
        """The init, and the first check that learns the newest value there is."""
        feed(self.proto, {"type": "subscription", "event": "init", "uid": self.uid}, now)
        read = self.due_read(now)
        assert read["query"] == {"fields": ["id", FIELD], "sort": ["-" + FIELD], "limit": 1}
        answer = [{"id": "x", FIELD: newest}] if newest else []
        assert delivered(self.answer(read, answer, now)) == []

    def due_read(self, now):
        assert self.proto.next_deadline() is not None and self.proto.next_deadline() <= now
        self.proto.tick(now)
        reads = [m for m in sent(self.proto.events()) if m.get("action") == "read"]
        assert len(reads) == 1, reads
        return reads[0]

    def answer(self, read, rows, now):
        return feed(self.proto, {"type": "items", "data": rows, "uid": read["uid"]}, now)

    def event(self, rows, now):
        message = {"type": "subscription", "event": "create", "data": rows, "uid": self.uid}
        return feed(self.proto, message, now)


def test_reconcile_needs_a_field_and_create_events():
    proto = make()
    with pytest.raises(ValueError, match="date_created"):
        proto.subscribe("messages", event="create", reconcile={"every": 5})
    with pytest.raises(ValueError, match="create"):
        proto.subscribe("messages", event="update", reconcile=FIELD)
    proto.subscribe("messages", event="create", reconcile=FIELD)  # the short form


def test_without_reconcile_nothing_is_ever_read():
    proto = make()
    proto.connect(0.0)
    proto.socket_opened(0.0)
    feed(proto, {"type": "auth", "status": "ok"}, 0.0)
    proto.subscribe("messages", event="create")
    uid = sent(proto.events())[-1]["uid"]
    feed(proto, {"type": "subscription", "event": "init", "uid": uid}, 0.0)
    assert proto.next_deadline() is None


def test_the_first_check_learns_where_to_start_then_one_check_per_interval():
    d = Directus(now=0.0, newest=date(5))
    assert d.proto.next_deadline() == RECONCILE_EVERY
    read = d.due_read(RECONCILE_EVERY)
    assert read["collection"] == "messages"
    assert read["query"] == {
        "fields": ["id", "text", FIELD],
        "filter": {FIELD: {"_gte": date(5)}},
        "sort": [FIELD],
        "limit": p.RECONCILE_PAGE,
    }
    d.answer(read, [], RECONCILE_EVERY + 0.1)
    assert d.proto.next_deadline() == 2 * RECONCILE_EVERY


def test_what_a_check_finds_comes_once_as_a_create_event():
    d = Directus(newest=date(0))
    d.event([row(1)], 1.0)
    read = d.due_read(RECONCILE_EVERY)
    events = d.answer(read, [row(0), row(1), row(2), row(3)], RECONCILE_EVERY)
    (message,) = delivered(events)
    assert message["event"] == "create" and message["uid"] == d.uid and message["reconciled"]
    assert [r["id"] for r in message["data"]] == ["id000", "id002", "id003"]
    # the live event of a found row, late: not delivered again
    assert delivered(d.event([row(2)], RECONCILE_EVERY + 1)) == []
    # an event carrying a found row and a new one: only the new one
    (late,) = delivered(d.event([row(3), row(4)], RECONCILE_EVERY + 2))
    assert [r["id"] for r in late["data"]] == ["id004"]


def test_each_check_reads_from_what_was_delivered_two_checks_before():
    d = Directus(newest=date(0))
    bounds = []
    for k in range(1, 5):
        now = k * RECONCILE_EVERY
        d.event([row(10 * k)], now - 1)
        read = d.due_read(now)
        bounds.append(read["query"]["filter"][FIELD]["_gte"])
        d.answer(read, [], now)
    assert bounds == [date(0), date(0), date(10), date(20)]


def test_an_own_create_without_its_event_makes_a_check_due_after_the_grace():
    d = Directus(newest=date(0))
    d.proto.request(
        {
            "type": "items",
            "collection": "messages",
            "action": "create",
            "data": {"id": "id007", "text": "mine"},
        },
        now=1.0,
    )
    create = sent(d.proto.events())[-1]
    feed(d.proto, {"type": "items", "data": row(7), "uid": create["uid"]}, 1.2)
    assert d.proto.next_deadline() == 1.2 + RECONCILE_GRACE
    read = d.due_read(1.2 + RECONCILE_GRACE)
    assert read["query"]["filter"] == {FIELD: {"_gte": date(0)}}


def test_an_own_create_whose_event_came_makes_nothing_due():
    d = Directus(newest=date(0))
    d.proto.request(
        {
            "type": "items",
            "collection": "messages",
            "action": "create",
            "data": {"id": "id007", "text": "mine"},
        },
        now=1.0,
    )
    create = sent(d.proto.events())[-1]
    d.event([row(7)], 1.1)  # the event beats the answer
    feed(d.proto, {"type": "items", "data": row(7), "uid": create["uid"]}, 1.2)
    assert d.proto.next_deadline() == RECONCILE_EVERY


def test_a_create_on_another_collection_is_not_watched():
    d = Directus(newest=date(0))
    d.proto.request(
        {"type": "items", "collection": "other", "action": "create", "data": {"id": "o1"}}, now=1.0
    )
    create = sent(d.proto.events())[-1]
    feed(d.proto, {"type": "items", "data": {"id": "o1"}, "uid": create["uid"]}, 1.2)
    assert d.proto.next_deadline() == RECONCILE_EVERY


def test_a_reconnect_checks_at_once_for_what_was_created_meanwhile():
    d = Directus(newest=date(0))
    d.event([row(1)], 1.0)
    d.proto.socket_closed(2.0, None)
    d.proto.events()
    assert d.proto.next_deadline() == d.proto.retry_at  # no check while disconnected
    at = d.proto.retry_at
    d.proto.tick(at)
    d.proto.socket_opened(at)
    d.proto.events()
    resent = sent(feed(d.proto, {"type": "auth", "status": "ok"}, at))
    uid = [m for m in resent if m["type"] == "subscribe"][-1]["uid"]
    d.uid = uid
    feed(d.proto, {"type": "subscription", "event": "init", "uid": uid}, at)
    read = d.due_read(at)
    assert read["query"]["filter"] == {FIELD: {"_gte": date(0)}}
    (found,) = delivered(d.answer(read, [row(1), row(2)], at))
    assert [r["id"] for r in found["data"]] == ["id002"]


def test_a_check_lost_with_its_connection_ends_and_waits_for_the_next_init():
    d = Directus(newest=date(0))
    d.due_read(RECONCILE_EVERY)
    d.proto.socket_closed(RECONCILE_EVERY + 0.5, None)
    events = d.proto.events()
    assert not [e for e in events if isinstance(e, p.RequestFailed)]  # internal: not reported
    assert d.proto.next_deadline() == d.proto.retry_at


def test_a_failed_check_is_not_reported_and_the_timer_goes_on():
    d = Directus(newest=date(0))
    read = d.due_read(RECONCILE_EVERY)
    err = {
        "type": "items",
        "status": "error",
        "uid": read["uid"],
        "error": {"code": "INTERNAL_SERVER_ERROR", "message": "db"},
    }
    events = feed(d.proto, err, RECONCILE_EVERY + 0.2)
    assert not [e for e in events if isinstance(e, (p.RequestFailed, p.ErrorOccurred))]
    assert d.proto.next_deadline() == 2 * RECONCILE_EVERY


def test_a_full_page_reads_the_next_one_from_its_last_date():
    d = Directus(newest=date(0), page=3)
    read = d.due_read(RECONCILE_EVERY)
    assert read["query"]["limit"] == 3
    events = d.answer(read, [row(1), row(2), row(3)], RECONCILE_EVERY)
    nxt = [m for m in sent(events) if m.get("action") == "read"]
    assert nxt and nxt[0]["query"]["filter"] == {FIELD: {"_gte": date(3)}}
    assert d.proto.next_deadline() is None or d.proto.next_deadline() > RECONCILE_EVERY
    (second,) = delivered(d.answer(nxt[0], [row(3), row(4)], RECONCILE_EVERY))
    assert [r["id"] for r in second["data"]] == ["id004"]
    assert d.proto.next_deadline() == 2 * RECONCILE_EVERY


def test_the_subscriptions_own_filter_is_kept():
    proto = make()
    proto.connect(0.0)
    proto.socket_opened(0.0)
    feed(proto, {"type": "auth", "status": "ok"}, 0.0)
    own = {"user": {"_eq": "Ben"}}
    proto.subscribe("messages", event="create", query={"filter": own}, reconcile=FIELD)
    uid = sent(proto.events())[-1]["uid"]
    feed(proto, {"type": "subscription", "event": "init", "uid": uid}, 0.0)
    proto.tick(0.0)
    learn = sent(proto.events())[-1]
    feed(proto, {"type": "items", "data": [row(0)], "uid": learn["uid"]}, 0.0)
    proto.tick(RECONCILE_EVERY)
    read = sent(proto.events())[-1]
    assert read["query"]["filter"] == {"_and": [own, {FIELD: {"_gte": date(0)}}]}


def test_an_unsubscribed_subscription_gets_nothing_from_its_check():
    d = Directus(newest=date(0))
    read = d.due_read(RECONCILE_EVERY)
    d.proto.unsubscribe(d.key)
    d.proto.events()
    assert delivered(d.answer(read, [row(1)], RECONCILE_EVERY)) == []


def test_a_bus_that_loses_two_events_of_three_loses_nothing_in_the_end():
    """Simulated: rows committed up to one interval after their date; the bus delivers one in
    three; every row comes exactly once."""
    every = 10.0
    d = Directus(newest=None, every=every)
    table, got = [], []
    now, n = 0.0, 0
    while now < 300.0:
        now += 0.5
        if now < 240.0:
            n += 1
            table.append((row(n), now + (n % 7) * every / 7))  # (row, committed at)
        for r, at in table:
            if now - 0.5 < at <= now and int(r["id"][2:]) % 3 == 0:
                got += [x["id"] for m in delivered(d.event([r], now)) for x in m["data"]]
        when = d.proto.next_deadline()
        if when is not None and when <= now:
            read = d.due_read(now)
            bound = read["query"].get("filter", {}).get(FIELD, {}).get("_gte")
            rows = [r for r, at in table if at <= now and (bound is None or r[FIELD] >= bound)]
            if read["query"].get("sort") == ["-" + FIELD]:
                rows = sorted(rows, key=lambda r: r[FIELD])[-1:]
            events = d.answer(read, sorted(rows, key=lambda r: r[FIELD]), now)
            got += [x["id"] for m in delivered(events) for x in m["data"]]
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(r["id"] for r, _ in table)
