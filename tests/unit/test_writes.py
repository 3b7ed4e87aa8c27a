"""Unit tests of the outbox of writes: what an error means for a write (writes.write_outcome),
the stores, and the client's one outbox (saved after every change, loaded and sent by the next
client, retried after a lost connection, refused by Directus's own errors)."""

from __future__ import annotations

import asyncio
import json

import pytest

from directus_realtime import (
    AuthenticationError,
    ConnectionFailed,
    ConnectionLost,
    DirectusError,
    RequestTimeout,
)
from directus_realtime import writes as w
from directus_realtime.errors import OutboxFull
from tests.unit.test_client import connected, make, run, settle


@pytest.mark.parametrize(
    ("action", "error", "sent_before", "repeatable", "outcome"),
    [
        ("create", None, False, True, w.STORED),
        ("create", DirectusError("RECORD_NOT_UNIQUE", "differs"), True, True, w.REFUSED),
        ("create", DirectusError("FORBIDDEN", "no"), False, True, w.REFUSED),
        ("update", DirectusError("INVALID_PAYLOAD", "bad"), False, True, w.REFUSED),
        ("create", DirectusError("REQUESTS_EXCEEDED", "later"), False, True, w.RETRY),
        ("create", DirectusError("TOKEN_EXPIRED", "later"), False, True, w.RETRY),
        ("delete", DirectusError("FORBIDDEN", "gone"), True, True, w.STORED),
        ("delete", DirectusError("FORBIDDEN", "no"), False, True, w.REFUSED),
        ("create", ConnectionLost("lost"), True, True, w.RETRY),
        ("update", RequestTimeout("slow"), True, True, w.RETRY),
        ("create", ConnectionLost("lost"), True, False, w.REFUSED),
        ("create", ConnectionFailed("disconnect() was called."), False, True, w.KEEP),
        ("create", OutboxFull("full"), False, True, w.REFUSED),
        # A refused sign-in is about the credentials: the write waits for new ones.
        ("create", AuthenticationError("AUTH_FAILED", "rotated"), False, True, w.KEEP),
        ("create", AuthenticationError("INVALID_CREDENTIALS", "no"), True, True, w.KEEP),
        ("update", AuthenticationError("TOKEN_EXPIRED", "old"), True, True, w.KEEP),
        ("delete", AuthenticationError("INVALID_TOKEN", "bad"), False, True, w.KEEP),
        ("create", AuthenticationError("AUTH_TIMEOUT", "slow"), False, True, w.KEEP),
        ("create", DirectusError("INVALID_CREDENTIALS", "no"), False, True, w.KEEP),
        ("create", AuthenticationError("AUTH_FAILED", "rotated"), False, False, w.KEEP),
        ("create", AuthenticationError("AUTH_FAILED", "rotated"), True, False, w.REFUSED),
    ],
)
def test_write_outcome(action, error, sent_before, repeatable, outcome):
    assert w.write_outcome(action, error, sent_before, repeatable) == outcome


def test_idempotent_writes_are_updates_deletes_and_creates_with_ids():
    assert w.idempotent({"action": "update", "id": 1, "data": {}})
    assert w.idempotent({"action": "delete", "id": 1})
    assert w.idempotent({"action": "create", "data": {"id": "x"}})
    assert w.idempotent({"action": "create", "data": [{"id": "x"}, {"id": "y"}]})
    assert not w.idempotent({"action": "create", "data": {"text": "no id"}})


def test_json_file_store_keeps_entries_across_instances(tmp_path):
    path = tmp_path / "outbox.json"
    w.JsonFileStore(str(path)).save([{"seq": 1, "message": {"a": 1}, "sent": False}])
    assert w.JsonFileStore(str(path)).load() == [{"seq": 1, "message": {"a": 1}, "sent": False}]
    path.write_text("not json")
    assert w.JsonFileStore(str(path)).load() == []
    assert w.JsonFileStore(str(tmp_path / "none.json")).load() == []


def test_writes_made_offline_are_saved_and_a_new_client_sends_them():
    async def scenario():
        store = w.MemoryStore()
        first, _ = make(outbox_store=store)
        first.create("messages", {"id": "a", "text": "offline"})
        first.update("messages", {"text": "edited"}, id="b")
        assert [e["message"]["action"] for e in store.entries] == ["create", "update"]
        second, transport = make(outbox_store=store)
        assert [m["action"] for m, _ in second.pending_writes()] == ["create", "update"]
        task = asyncio.ensure_future(second.connect())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        await task
        items = [m for m in transport.current.sent if m.get("type") == "items"]
        assert [m["action"] for m in items] == ["create", "update"]
        for message in items:
            data = dict(message.get("data") or {}, id=message.get("id") or message["data"]["id"])
            transport.current.message({"type": "items", "data": data, "uid": message["uid"]})
        assert store.entries == [] and second.pending_writes() == []

    run(scenario())


def test_a_write_whose_connection_was_lost_is_sent_again_until_stored():
    async def scenario():
        store = w.MemoryStore()
        client, transport = await connected(outbox_store=store, request_attempts=1)
        waiter = client.update("messages", {"text": "x"}, id="k")
        first = transport.current.last("items")
        transport.current.closed_by_server(1006)
        await asyncio.sleep(0.3)
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        again = transport.current.last("items")
        assert again["action"] == "update" and again["uid"] != first["uid"]
        assert store.entries[0]["sent"] is True
        reply = {"type": "items", "data": {"id": "k", "text": "x"}, "uid": again["uid"]}
        transport.current.message(reply)
        assert await waiter == {"id": "k", "text": "x"}
        assert store.entries == []

    run(scenario())


def test_a_write_directus_refuses_leaves_the_outbox_and_raises():
    async def scenario():
        store = w.MemoryStore()
        client, transport = await connected(outbox_store=store)
        waiter = client.create("messages", {"id": "a", "text": ""})
        uid = transport.current.last("items")["uid"]
        error = {"code": "INVALID_PAYLOAD", "message": "text is required"}
        reply = {"type": "items", "status": "error", "error": error, "uid": uid}
        transport.current.message(reply)
        with pytest.raises(DirectusError, match="text is required"):
            await waiter
        assert store.entries == []

    run(scenario())


def test_a_refused_sign_in_keeps_waiting_writes_until_new_credentials_send_them():
    async def scenario():
        store = w.MemoryStore()
        client, transport = make(outbox_store=store, access_token="OLD")
        first = client.create("messages", {"id": "a", "text": "one"})
        second = client.update("messages", {"text": "two"}, id="b")
        task = asyncio.ensure_future(client.connect())
        await settle()
        transport.current.opened()
        error = {"code": "INVALID_CREDENTIALS", "message": "Invalid user credentials."}
        transport.current.message({"type": "auth", "status": "error", "error": error})
        for waiter in (first, second):
            with pytest.raises(AuthenticationError):
                await waiter
        with pytest.raises(AuthenticationError):
            await task
        assert [e["message"]["action"] for e in store.entries] == ["create", "update"]
        assert [m["action"] for m, _ in client.pending_writes()] == ["create", "update"]
        # The same store, a client with the new token: both writes go out.
        fresh, transport = make(outbox_store=store, access_token="NEW")
        task = asyncio.ensure_future(fresh.connect())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        await task
        items = [m for m in transport.current.sent if m.get("type") == "items"]
        assert [m["action"] for m in items] == ["create", "update"]

    run(scenario())


def test_disconnect_keeps_unsent_writes_in_the_store_for_the_next_session():
    async def scenario():
        store = w.MemoryStore()
        client, _ = make(outbox_store=store)
        waiter = client.create("messages", {"id": "a", "text": "later"})
        client.disconnect()
        with pytest.raises(ConnectionFailed):
            await waiter
        assert [json.dumps(e["message"]["data"]) for e in store.entries] == [
            json.dumps({"id": "a", "text": "later"})
        ]

    run(scenario())


def test_a_write_kept_by_disconnect_is_sent_when_the_same_client_connects_again():
    async def scenario():
        store = w.MemoryStore()
        client, transport = make(outbox_store=store)
        waiter = client.create("messages", {"id": "a", "text": "later"})
        client.disconnect()
        with pytest.raises(ConnectionFailed):
            await waiter
        task = asyncio.ensure_future(client.connect())
        await settle()
        transport.current.opened()
        transport.current.message({"type": "auth", "status": "ok"})
        await task
        create = transport.current.last("items")
        assert create["action"] == "create" and create["data"] == {"id": "a", "text": "later"}
        transport.current.message({"type": "items", "data": create["data"], "uid": create["uid"]})
        assert store.entries == []

    run(scenario())
