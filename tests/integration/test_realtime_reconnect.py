"""Reconnect after a crash: SIGKILL an extra Directus while a client is subscribed, start it
again on the same database and port, and the client comes back by itself: the subscription is
re-sent with a fresh uid and delivers new creates."""

from __future__ import annotations

import asyncio
import time

from stack.api import DirectusAPI


async def test_client_reconnects_after_directus_is_killed_and_restarted(rt, stack, crash_directus):
    text = rt.marker("reconnect")
    server = crash_directus
    client = await rt.connected(server.url, access_token=stack["token"])
    sub = await client.subscribe(
        "messages",
        event="create",
        query={"fields": ["id", "text"], "filter": {"text": {"_eq": text}}},
    )
    init = await rt.next(sub, client)
    assert init["event"] == "init"
    old_uid = sub.uid
    writer = DirectusAPI(server.url, stack["token"])
    before = writer.post("/items/messages", rt.row(text))
    assert rt.ids(await rt.next(sub, client)) == [before["id"]]

    t_kill = time.monotonic()
    server.kill()
    await rt.eventually(
        lambda: not client.is_connected, "the client to notice the crash", client=client
    )
    assert client.probe.closes, rt.describe(client)
    assert client.state in ("reconnecting", "connecting"), rt.describe(client)

    # start it again on the same database and port (blocking: off the event loop)
    await asyncio.get_running_loop().run_in_executor(None, server.start_again)
    t_ready = time.monotonic()
    await rt.eventually(
        lambda: client.is_connected,
        "the client to reconnect by itself",
        timeout=60,
        client=client,
    )
    t_open = time.monotonic()
    print(
        f"\nreconnect: Directus down {t_ready - t_kill:.1f} s (kill to ready); "
        f"restart ready -> client open {t_open - t_ready:.2f} s; "
        f"socket attempts {len(client.wire.connects)}; "
        f"states {client.probe.states}",
        flush=True,
    )

    again = await rt.next(sub, client)
    assert again["event"] == "init", again
    assert sub.uid == again["uid"] != old_uid
    after = writer.post("/items/messages", rt.row(text))
    message = await rt.next(sub, client)
    assert rt.ids(message) == [after["id"]], message
    assert message["uid"] == sub.uid

    subscribes = [m for m in client.wire.sent if m.get("type") == "subscribe"]
    assert len(subscribes) == 2 and subscribes[0]["uid"] != subscribes[1]["uid"]
    assert client.probe.opens == 2
