"""Unit tests of ``client.live()`` (directus_realtime/live.py): the driver wires a LiveWindow
to a RealtimeClient over a fake transport; the server is played by hand."""

from __future__ import annotations

import asyncio

from directus_realtime import ConnectionFailed, DirectusError
from tests.unit.test_client import connected, run, settle

QUERY = {"fields": ["id", "text", "date_updated"], "sort": ["id"], "limit": 10}


def rows(*names, updated=None):
    return [{"id": n, "text": "t-" + n, "date_updated": updated} for n in names]


async def live_on(transport, client, **options):
    live = client.live("messages", query=QUERY, **options)
    changes = []
    live.listen(changes.append)
    subscribe = transport.current.last("subscribe")
    assert "event" not in subscribe and subscribe["query"] == QUERY  # init carries the rows
    return live, changes, subscribe["uid"]


def init(transport, uid, data):
    transport.current.message({"type": "subscription", "event": "init", "data": data, "uid": uid})


def answer_reads(transport, handler):
    """Answer every read sent since the last call with handler(query)."""
    sock = transport.current
    done = getattr(sock, "answered", set())
    for message in list(sock.sent):
        if isinstance(message, dict) and message.get("action") == "read":
            if message["uid"] not in done:
                done.add(message["uid"])
                sock.answered = done
                sock.message(
                    {"type": "items", "data": handler(message["query"]), "uid": message["uid"]}
                )


def test_live_shows_the_init_rows_and_applies_events_once():
    async def scenario():
        client, transport = await connected()
        live, changes, uid = await live_on(transport, client)
        init(transport, uid, rows("a", "b"))
        assert [r["id"] for r in live.rows] == ["a", "b"] and live.current
        message = {"type": "subscription", "event": "create", "data": rows("c"), "uid": uid}
        transport.current.message(message)
        transport.current.message(message)
        added = [r["id"] for c in changes for r in c.added]
        assert added == ["a", "b", "c"]
        transport.current.message(
            {"type": "subscription", "event": "delete", "data": ["a"], "uid": uid}
        )
        assert [r["id"] for r in live.rows] == ["b", "c"]
        assert changes[-1].removed == ["a"]
        live.close()

    run(scenario())


def test_live_is_not_current_after_a_cut_and_catches_up_with_the_next_init():
    async def scenario():
        client, transport = await connected()
        live, changes, uid = await live_on(transport, client)
        init(transport, uid, rows("a", "b"))
        transport.current.closed_by_server(1006)
        assert not live.current and changes[-1].current is False
        await asyncio.sleep(0.3)  # the backoff (0.5 * 0.5 s ceiling in make())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        uid2 = transport.current.last("subscribe")["uid"]
        init(transport, uid2, rows("b", "c"))
        assert [r["id"] for r in live.rows] == ["b", "c"] and live.current
        assert changes[-1].reason == "catch-up" and changes[-1].removed == ["a"]
        live.close()

    run(scenario())


def test_live_check_reads_a_fingerprint_then_the_rows_that_changed():
    async def scenario():
        client, transport = await connected()
        live, changes, uid = await live_on(transport, client)
        init(transport, uid, rows("a", "b", updated="u1"))
        server = {"a": "u1", "b": "u2"}  # b was edited; its event was lost

        def handler(query):
            if "aggregate" in query:
                return [{"count": 2, "max": {"date_updated": "u2"}}]
            if query.get("fields") == ["id", "date_updated"]:
                return [{"id": k, "date_updated": v} for k, v in server.items()]
            wanted = query["filter"]["id"]["_in"]
            return [{"id": k, "text": "edited", "date_updated": server[k]} for k in wanted]

        for _ in range(4):  # the check's timer; fingerprint, light read, rows read
            await asyncio.sleep(0.02)
            answer_reads(transport, handler)
        assert live.rows[1] == {"id": "b", "text": "edited", "date_updated": "u2"}
        assert changes[-1].reason == "check" and [r["id"] for r in changes[-1].changed] == ["b"]
        live.close()

    run(scenario())


def test_live_create_is_pending_then_confirmed():
    async def scenario():
        client, transport = await connected()
        live, changes, uid = await live_on(transport, client)
        init(transport, uid, rows("a"))
        waiter = live.create({"text": "mine"})
        create = transport.current.last("items")
        new_id = create["data"]["id"]
        assert create["action"] == "create" and len(new_id) == 36
        assert live.is_pending(new_id) and changes[-1].reason == "write"
        stored = {"id": new_id, "text": "mine", "date_updated": None}
        transport.current.message({"type": "items", "data": stored, "uid": create["uid"]})
        assert await waiter == stored
        assert not live.pending and changes[-1].reason == "confirm"
        live.close()

    run(scenario())


def test_live_update_refused_is_rolled_back_and_raises():
    async def scenario():
        client, transport = await connected()
        live, changes, uid = await live_on(transport, client)
        init(transport, uid, rows("a"))
        waiter = live.update("a", {"text": "no"})
        assert live.rows[0]["text"] == "no"
        update = transport.current.last("items")
        error = {"code": "FORBIDDEN", "message": "nope"}
        transport.current.message(
            {"type": "items", "status": "error", "error": error, "uid": update["uid"]}
        )
        try:
            await waiter
        except DirectusError as raised:
            assert raised.code == "FORBIDDEN"
        else:
            raise AssertionError("the refused update did not raise")
        assert live.rows[0]["text"] == "t-a" and changes[-1].reason == "rollback"
        live.close()

    run(scenario())


def test_live_snapshot_store_restores_rows_before_the_first_init():
    class Store:
        def __init__(self):
            self.saved = None

        def load(self):
            return self.saved

        def save(self, snapshot):
            self.saved = snapshot

    async def scenario():
        store = Store()
        client, transport = await connected()
        live, _, uid = await live_on(transport, client, store=store)
        init(transport, uid, rows("a", "b"))
        live.close()
        again = client.live("messages", query=QUERY, store=store)
        got = []
        again.listen(got.append)
        assert [r["id"] for r in again.rows] == ["a", "b"] and not again.current
        assert got[0].reason == "restore"
        again.close()

    run(scenario())


def test_live_write_the_outbox_keeps_stays_pending_until_it_is_sent_again():
    async def scenario():
        client, transport = await connected()
        live, changes, uid = await live_on(transport, client)
        init(transport, uid, rows("a"))
        transport.current.closed_by_server(1006)
        waiter = live.create({"text": "kept"})  # queued for the connection
        (new_id,) = live.pending
        client.disconnect()  # the outbox keeps it for the next connection
        try:
            await waiter
        except ConnectionFailed:
            pass
        else:
            raise AssertionError("the caller did not hear of the stop")
        assert live.is_pending(new_id) and new_id in [r["id"] for r in live.rows]
        task = asyncio.ensure_future(client.connect())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        await task
        create = transport.current.last("items")
        assert create["action"] == "create" and create["data"]["id"] == new_id
        stored = {"id": new_id, "text": "kept", "date_updated": None}
        transport.current.message({"type": "items", "data": stored, "uid": create["uid"]})
        assert not live.pending and changes[-1].reason == "confirm"
        live.close()

    run(scenario())


def test_live_create_on_a_numbered_key_is_sent_again_without_an_id_and_learned():
    async def scenario():
        from directus_realtime import live as live_module

        live_module._NUMBERED.discard("messages")
        client, transport = await connected()
        live, changes, uid = await live_on(transport, client)
        init(transport, uid, rows("a"))
        waiter = live.create({"text": "mine"})
        first = transport.current.last("items")
        local_id = first["data"]["id"]
        error = {"code": "FORBIDDEN", "message": "You don't have permission"}
        transport.current.message(
            {"type": "items", "status": "error", "error": error, "uid": first["uid"]}
        )
        again = transport.current.last("items")
        assert again["action"] == "create" and "id" not in again["data"]
        assert live.is_pending(local_id)
        stored = {"id": 7, "text": "mine", "date_updated": None}
        transport.current.message({"type": "items", "data": stored, "uid": again["uid"]})
        assert await waiter == stored
        assert not live.pending and 7 in [r["id"] for r in live.rows]
        assert local_id not in [r["id"] for r in live.rows]
        # Learned for the collection: the next create goes without an id at once.
        live.create({"text": "next"})
        assert "id" not in transport.current.last("items")["data"]
        live.close()
        live_module._NUMBERED.discard("messages")

    run(scenario())
