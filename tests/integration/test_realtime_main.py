"""The realtime client against the main stack's Directus 12 (handshake auth, static tokens).

Every test uses its own marker text, so what a subscription sees is deterministic even when
other clients write to ``messages`` meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest

from directus_realtime import AuthenticationError, DirectusError
from directus_realtime.errors import ConnectionFailed

pytestmark = pytest.mark.usefixtures("main_rows")

ROOT = Path(__file__).resolve().parents[2]


WAIT = 15.0


async def connected(rt, stack, token_key: str = "token", **kwargs):
    return await rt.connected(stack["directus_url"], access_token=stack[token_key], **kwargs)


# --- connection ---------------------------------------------------------------------------


async def test_handshake_with_static_token_opens_and_reports_states_and_handlers(rt, stack):
    client = rt.client(stack["directus_url"], access_token=stack["token"])
    assert not client.is_connected
    assert client.state == "closed"

    await asyncio.wait_for(client.connect(), WAIT)

    assert client.is_connected, rt.describe(client)
    assert client.state == "open"
    probe = client.probe
    assert probe.states[:3] == ["connecting", "authenticating", "open"], probe.states
    assert probe.opens == 1
    # the handshake on the wire: auth with the token first, then Directus's ok
    assert client.wire.sent[0] == {"type": "auth", "access_token": stack["token"]}
    assert {"type": "auth", "status": "ok"} in probe.messages
    assert probe.closes == []

    # the message handler sees Directus's replies
    rows = await client.read("messages", query={"limit": 1, "fields": ["id"]})
    assert isinstance(rows, list)
    assert any(m.get("type") == "items" for m in probe.messages), probe.messages


async def test_close_handler_fires_after_disconnect(rt, stack):
    """The SDK's ``close`` event fires when disconnect() closes the socket."""
    client = await connected(rt, stack)
    assert client.probe.closes == []

    client.disconnect()

    assert client.state == "closed"
    assert not client.is_connected
    await client.wire.settle()
    await rt.eventually(
        lambda: client.probe.closes,
        "the 'close' handler after disconnect() (the socket is closed: "
        f"{client.wire.of('closed')})",
        timeout=5,
        client=client,
    )


async def test_wrong_token_in_handshake_fails_with_authentication_error_and_no_retries(rt, stack):
    client = rt.client(stack["directus_url"], access_token="wrong-" + uuid.uuid4().hex)

    with pytest.raises(AuthenticationError) as caught:
        await asyncio.wait_for(client.connect(), WAIT)

    assert caught.value.code == "AUTH_FAILED"
    assert client.state == "failed"
    assert isinstance(client.failure, AuthenticationError)
    # nothing tries again by itself (watched for as long as a retry would take to come)
    await rt.watch_for_retries(client)
    assert client.state == "failed", rt.describe(client)
    assert len(client.wire.connects) == 1, rt.describe(client)
    assert client.probe.states.count("connecting") == 1, rt.describe(client)
    assert "reconnecting" not in client.probe.states


async def test_email_and_password_login_over_the_socket(rt, stack):
    client = rt.client(
        stack["directus_url"], email=stack["demo_email"], password=stack["demo_password"]
    )
    await asyncio.wait_for(client.connect(), WAIT)

    assert client.is_connected
    assert client.wire.sent[0] == {
        "type": "auth",
        "email": stack["demo_email"],
        "password": stack["demo_password"],
    }
    ok = client.wire.received[0]
    assert ok["type"] == "auth" and ok["status"] == "ok"
    assert ok.get("refresh_token"), ok  # Directus hands a refresh token to a socket login

    text = rt.marker("login")
    created = await asyncio.wait_for(client.create("messages", rt.row(text)), WAIT)
    assert created["text"] == text


# --- subscriptions ------------------------------------------------------------------------


async def test_subscribe_to_create_gets_init_then_items_created_by_another_client(rt, stack):
    text = rt.marker("create")
    listener = await connected(rt, stack)
    sub = await listener.subscribe(
        "messages",
        event="create",
        query={"fields": ["id", "text", "user"], "filter": {"text": {"_eq": text}}},
    )
    init = await rt.next(sub, listener)
    assert init["type"] == "subscription" and init["event"] == "init", init
    assert "data" not in init, init

    writer = await connected(rt, stack)
    created = await asyncio.wait_for(writer.create("messages", rt.row(text)), WAIT)

    message = await rt.next(sub, listener)
    assert message["event"] == "create", message
    assert message["uid"] == init["uid"] == sub.uid
    assert message["data"] == [{"id": created["id"], "text": text, "user": rt.TEST_USER}]


async def test_subscribe_without_event_gets_rows_in_init_then_create_update_delete(rt, stack):
    text = rt.marker("all")
    editor = await connected(rt, stack, "editor_token")
    before = await asyncio.wait_for(
        editor.create("messages", [rt.row(text + " a"), rt.row(text + " b")]), WAIT
    )
    before_ids = sorted(r["id"] for r in before)

    listener = await connected(rt, stack)
    sub = await listener.subscribe(
        "messages",
        query={"fields": ["id", "text"], "filter": {"text": {"_contains": text}}, "sort": ["id"]},
    )
    init = await rt.next(sub, listener)
    assert init["event"] == "init", init
    assert init["data"] == [
        {"id": i, "text": next(r["text"] for r in before if r["id"] == i)} for i in before_ids
    ]

    new = await asyncio.wait_for(editor.create("messages", rt.row(text + " c")), WAIT)
    await asyncio.wait_for(editor.update("messages", {"text": text + " c!"}, id=new["id"]), WAIT)
    await asyncio.wait_for(editor.delete("messages", id=new["id"]), WAIT)

    seen = await rt.until(
        sub, lambda m: m["event"] == "delete" and new["id"] in rt.ids(m), listener
    )
    # Directus sends every delete on the collection (raw ids, unfiltered): ignore other rows'
    ours = [m for m in seen if not (m["event"] == "delete" and new["id"] not in rt.ids(m))]
    assert [m["event"] for m in ours] == ["create", "update", "delete"], seen
    create, update, delete = ours
    assert create["data"] == [{"id": new["id"], "text": text + " c"}]
    assert update["data"] == [{"id": new["id"], "text": text + " c!"}]
    assert delete["data"] == [new["id"]]  # delete carries the ids, not rows
    assert {m["uid"] for m in seen} == {init["uid"]}


async def test_item_subscription_gets_events_of_that_item_only(rt, stack):
    text = rt.marker("item")
    editor = await connected(rt, stack, "editor_token")
    made = await asyncio.wait_for(
        editor.create("messages", [rt.row(text + " mine"), rt.row(text + " other")]), WAIT
    )
    # Directus returns a list create's rows in its own order (by key), not in the order sent
    mine, other = sorted(made, key=lambda r: r["text"])
    listener = await connected(rt, stack)
    sub = await listener.subscribe("messages", item=mine["id"], query={"fields": ["id", "text"]})
    init = await rt.next(sub, listener)
    assert init["event"] == "init"
    assert init["data"] == {"id": mine["id"], "text": text + " mine"}

    # the other item first, then ours: if the other's event were delivered, it would come first
    await asyncio.wait_for(editor.update("messages", {"text": text + " o2"}, id=other["id"]), WAIT)
    await asyncio.wait_for(editor.update("messages", {"text": text + " m2"}, id=mine["id"]), WAIT)
    await asyncio.wait_for(editor.delete("messages", id=other["id"]), WAIT)
    await asyncio.wait_for(editor.delete("messages", id=mine["id"]), WAIT)

    seen = await rt.until(sub, lambda m: m["event"] == "delete", listener)
    assert [m["event"] for m in seen] == ["update", "delete"], seen
    assert seen[0]["data"] == {"id": mine["id"], "text": text + " m2"}
    assert seen[1]["data"] == mine["id"]
    assert all(other["id"] not in json.dumps(m) for m in seen), seen


async def test_two_subscriptions_on_one_client_are_routed_by_uid(rt, stack):
    one, two = rt.marker("one"), rt.marker("two")
    listener = await connected(rt, stack)
    fields = ["id", "text"]
    sub1 = await listener.subscribe(
        "messages", event="create", query={"fields": fields, "filter": {"text": {"_eq": one}}}
    )
    sub2 = await listener.subscribe(
        "messages", event="create", query={"fields": fields, "filter": {"text": {"_eq": two}}}
    )
    init1 = await rt.next(sub1, listener)
    init2 = await rt.next(sub2, listener)
    assert init1["event"] == init2["event"] == "init"
    assert sub1.uid == init1["uid"] != sub2.uid == init2["uid"]

    writer = await connected(rt, stack)
    made = []
    for text in (two, one, one, two):
        made.append(await asyncio.wait_for(writer.create("messages", rt.row(text)), WAIT))

    last_one, last_two = made[2]["id"], made[3]["id"]
    got1 = await rt.until(sub1, lambda m: last_one in rt.ids(m), listener)
    got2 = await rt.until(sub2, lambda m: last_two in rt.ids(m), listener)
    assert [rt.ids(m)[0] for m in got1] == [made[1]["id"], made[2]["id"]], got1
    assert [rt.ids(m)[0] for m in got2] == [made[0]["id"], made[3]["id"]], got2
    assert {m["uid"] for m in got1} == {sub1.uid}
    assert {m["uid"] for m in got2} == {sub2.uid}
    assert all(m["data"][0]["text"] == one for m in got1)
    assert all(m["data"][0]["text"] == two for m in got2)


async def test_unsubscribe_ends_iteration_and_later_creates_are_not_delivered(rt, stack):
    text = rt.marker("unsub")
    query = {"fields": ["id", "text"], "filter": {"text": {"_eq": text}}}
    listener = await connected(rt, stack)
    sub = await listener.subscribe("messages", event="create", query=query)
    control = await listener.subscribe("messages", event="create", query=query)
    await rt.next(sub, listener)
    await rt.next(control, listener)
    writer = await connected(rt, stack)

    first = await asyncio.wait_for(writer.create("messages", rt.row(text)), WAIT)
    assert rt.ids(await rt.next(sub, listener)) == [first["id"]]
    assert rt.ids(await rt.next(control, listener)) == [first["id"]]
    old_uid = sub.uid

    sub.unsubscribe()

    # the loop over the subscription ends
    rest = []

    async def drain():
        async for message in sub:
            rest.append(message)

    await asyncio.wait_for(drain(), WAIT)
    assert rest == []
    assert {"type": "unsubscribe", "uid": old_uid} in listener.wire.sent

    # a later create reaches the control subscription, and nothing of it comes for the old uid
    mark = listener.wire.mark()
    second = await asyncio.wait_for(writer.create("messages", rt.row(text)), WAIT)
    assert rt.ids(await rt.next(control, listener)) == [second["id"]]
    after = listener.wire.since(mark, "recv")
    assert not [m for m in after if m.get("uid") == old_uid and m.get("event") == "create"], after
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(sub.__anext__(), WAIT)


async def test_listen_hands_each_message_to_the_callback_as_it_arrives(rt, stack):
    """``listen(callback)``: messages reach the callback inside the socket's message handling
    (already there when the frame has been read), in order; ``wait_closed`` ends with
    ``unsubscribe()`` and raises after ``disconnect()``."""
    text = rt.marker("listen")
    query = {"fields": ["id", "text"], "filter": {"text": {"_eq": text}}}
    listener = await connected(rt, stack)
    sub = await listener.subscribe("messages", event="create", query=query)
    got = []
    sub.listen(got.append)
    await rt.eventually(lambda: got, "the init message", client=listener)
    assert got[0]["event"] == "init", got

    writer = await connected(rt, stack)
    created = [await writer.create("messages", rt.row(text)) for _ in range(3)]
    await rt.eventually(lambda: len(got) == 4, "three create events", client=listener)
    assert [rt.ids(m) for m in got[1:]] == [[c["id"]] for c in created]

    closed = asyncio.ensure_future(sub.wait_closed())
    await asyncio.sleep(0.1)
    assert not closed.done()
    sub.unsubscribe()
    await asyncio.wait_for(closed, WAIT)  # returns, no error

    other = await listener.subscribe("messages", event="create", query=query)
    other.listen(lambda message: None)
    listener.disconnect()
    with pytest.raises(ConnectionFailed):
        await asyncio.wait_for(other.wait_closed(), WAIT)


async def test_create_is_sent_when_called_not_when_awaited(rt, stack):
    """Like the SDK's Promises: the frame leaves at the call; awaiting only collects the reply."""
    text = rt.marker("eager")
    client = await connected(rt, stack)
    mark = client.wire.mark()
    pending = client.create("messages", rt.row(text))
    # no await in between: the frame went out during the call
    sent = [m for m in client.wire.since(mark, "send") if m.get("action") == "create"]
    assert [m["data"]["text"] for m in sent] == [text], sent
    created = await asyncio.wait_for(pending, WAIT)
    assert created["text"] == text


# --- items over the socket ----------------------------------------------------------------


async def test_crud_over_the_socket(rt, stack):
    text = rt.marker("crud")
    editor = await connected(rt, stack, "editor_token")
    fields = {"fields": ["id", "text", "user"]}

    one = await asyncio.wait_for(editor.create("messages", rt.row(text + " 1"), query=fields), WAIT)
    assert one == {"id": one["id"], "text": text + " 1", "user": rt.TEST_USER}
    uuid.UUID(one["id"])

    made = await asyncio.wait_for(
        editor.create("messages", [rt.row(text + " 2"), rt.row(text + " 3")], query=fields), WAIT
    )
    assert isinstance(made, list) and len(made) == 2
    two, three = sorted(made, key=lambda r: r["text"])  # Directus's order is by key
    assert (two["text"], three["text"]) == (text + " 2", text + " 3")

    read_one = await asyncio.wait_for(editor.read("messages", id=one["id"], query=fields), WAIT)
    assert read_one == one
    read_ids = await asyncio.wait_for(
        editor.read("messages", ids=[two["id"], three["id"]], query=fields), WAIT
    )
    assert sorted(r["id"] for r in read_ids) == sorted([two["id"], three["id"]])
    by_query = await asyncio.wait_for(
        editor.read(
            "messages",
            query={
                "fields": ["id", "text"],
                "filter": {"text": {"_starts_with": text}},
                "sort": ["text"],
            },
        ),
        WAIT,
    )
    assert [r["text"] for r in by_query] == [text + " 1", text + " 2", text + " 3"]

    updated = await asyncio.wait_for(
        editor.update("messages", {"text": text + " 1 edited"}, id=one["id"]), WAIT
    )
    assert updated["id"] == one["id"] and updated["text"] == text + " 1 edited"
    updated_many = await asyncio.wait_for(
        editor.update("messages", {"user": rt.TEST_USER}, ids=[two["id"], three["id"]]), WAIT
    )
    assert sorted(r["id"] for r in updated_many) == sorted([two["id"], three["id"]])

    assert await asyncio.wait_for(editor.delete("messages", id=one["id"]), WAIT) == one["id"]
    deleted = await asyncio.wait_for(editor.delete("messages", ids=[two["id"], three["id"]]), WAIT)
    assert sorted(deleted) == sorted([two["id"], three["id"]])
    left = await asyncio.wait_for(
        editor.read("messages", query={"filter": {"text": {"_starts_with": text}}}), WAIT
    )
    assert left == []


async def test_errors_carry_directus_code_and_message(rt, stack):
    client = await connected(rt, stack, "editor_token")

    # a collection that does not exist: Directus 12 answers FORBIDDEN (it does not say which)
    with pytest.raises(DirectusError) as missing:
        await asyncio.wait_for(client.read("no_such_collection_" + uuid.uuid4().hex[:6]), WAIT)
    # a system collection: INVALID_COLLECTION
    with pytest.raises(DirectusError) as system:
        await asyncio.wait_for(client.read("directus_users"), WAIT)

    replies = [m for m in client.wire.received if m.get("status") == "error"]
    assert len(replies) == 2, client.wire.dump()
    for error, reply in zip((missing.value, system.value), replies, strict=True):
        assert error.code == reply["error"]["code"]
        assert error.message == reply["error"]["message"]
    assert missing.value.code == "FORBIDDEN"
    assert "no_such_collection" in missing.value.message
    assert system.value.code == "INVALID_COLLECTION"
    assert system.value.message == "Cannot trigger an action on a system collection."
    assert client.is_connected


async def test_reader_token_create_is_forbidden_and_the_connection_stays_open(rt, stack):
    reader = await connected(rt, stack, "reader_token")

    with pytest.raises(DirectusError) as caught:
        await asyncio.wait_for(reader.create("messages", rt.row(rt.marker("nope"))), WAIT)

    assert caught.value.code == "FORBIDDEN", caught.value
    assert not isinstance(caught.value, AuthenticationError)
    assert reader.is_connected
    rows = await asyncio.wait_for(reader.read("messages", query={"limit": 1}), WAIT)
    assert isinstance(rows, list)
    assert reader.probe.closes == [] and reader.probe.states == [
        "connecting",
        "authenticating",
        "open",
    ]


async def test_the_same_create_twice_is_stored_once_and_another_write_with_its_id_is_refused(
    rt, stack
):
    """A create sent again (its reply lost) is the same write: RECORD_NOT_UNIQUE, read back,
    counts as stored. Another write that reuses the id is refused with that error."""
    client = await connected(rt, stack)
    own_id = str(uuid.uuid4())
    item = rt.row(rt.marker("once"), id=own_id)

    first = await asyncio.wait_for(client.create("messages", item), WAIT)
    assert first["id"] == own_id
    again = await asyncio.wait_for(client.create("messages", item), WAIT)
    assert again["id"] == own_id and again["text"] == item["text"]

    with pytest.raises(DirectusError) as caught:
        other = dict(item, text=item["text"] + " (another write)")
        await asyncio.wait_for(client.create("messages", other), WAIT)
    assert caught.value.code == "RECORD_NOT_UNIQUE"
    rows = await asyncio.wait_for(
        client.read("messages", query={"filter": {"id": {"_eq": own_id}}}), WAIT
    )
    assert len(rows) == 1 and rows[0]["text"] == item["text"]
    assert client.is_connected


async def test_send_message_gets_a_uid_and_the_reply_reaches_the_message_handler(rt, stack):
    client = await connected(rt, stack)

    uid = client.send_message(
        {"type": "items", "collection": "messages", "action": "read", "query": {"limit": 1}}
    )
    assert isinstance(uid, str) and uid
    reply = await rt.eventually(
        lambda: [m for m in client.probe.messages if m.get("uid") == uid],
        f"Directus's reply to uid {uid}",
        client=client,
    )
    assert reply[0]["type"] == "items" and isinstance(reply[0]["data"], list)
    sent = [m for m in client.wire.sent if m.get("uid") == uid]
    assert sent and sent[0]["action"] == "read"

    ping_uid = client.send_message({"type": "ping"})
    assert ping_uid and ping_uid != uid
    await rt.eventually(
        lambda: {"type": "pong", "uid": ping_uid} in client.probe.messages,
        "the pong",
        client=client,
    )
    # a uid the caller chose is kept
    assert client.send_message({"type": "ping", "uid": "mine-1"}) == "mine-1"
    await rt.eventually(
        lambda: {"type": "pong", "uid": "mine-1"} in client.probe.messages,
        "the pong to uid mine-1",
        client=client,
    )


# --- the CLI ------------------------------------------------------------------------------


async def test_cli_tail_prints_the_created_item_and_exits_0(rt, stack, api):
    text = rt.marker("cli")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "directus_realtime.cli",
        "--url",
        stack["directus_url"],
        "--token",
        stack["token"],
        "tail",
        "messages",
        "--event",
        "create",
        "--limit",
        "1",
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[dict] = []
    try:
        # once init is printed the subscription is live
        while not lines or lines[-1].get("event") != "init":
            raw = await asyncio.wait_for(proc.stdout.readline(), WAIT)
            if not raw:  # (seen once in CI, not reproduced: say what the CLI said)
                await proc.wait()
                err = (await proc.stderr.read()).decode()
                raise AssertionError(
                    f"the CLI ended (exit {proc.returncode}) before its subscription started: "
                    + err
                )
            lines.append(json.loads(raw))
        created = api(stack["token"]).post("/items/messages", rt.row(text))
        out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines += [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert proc.returncode == 0, err.decode()
    events = [m for m in lines if m.get("event") == "create"]
    assert len(events) == 1, lines
    assert events[0]["data"][0]["id"] == created["id"], lines
    assert events[0]["data"][0]["text"] == text
    assert "# open" in err.decode()
