"""auth_mode "public" and "strict" against extra Directus instances set to
WEBSOCKETS_REST_AUTH=public / strict (each on its own copy of the main database)."""

from __future__ import annotations

import asyncio
import time
import uuid

from directus_realtime import RealtimeError
from stack.api import DirectusAPI

WAIT = 15.0


async def test_public_mode_subscribes_without_a_token(rt, stack, public_directus):
    text = rt.marker("public")
    client = await rt.connected(public_directus.url, auth_mode="public")

    assert client.is_connected
    assert client.probe.states == ["connecting", "open"]
    assert not [m for m in client.wire.sent if m.get("type") == "auth"], client.wire.dump()

    sub = await client.subscribe(
        "messages",
        event="create",
        query={"fields": ["id", "text"], "filter": {"text": {"_eq": text}}},
    )
    init = await rt.next(sub, client)
    assert init["event"] == "init", init
    created = DirectusAPI(public_directus.url, stack["token"]).post("/items/messages", rt.row(text))
    message = await rt.next(sub, client)
    assert message["event"] == "create"
    assert message["data"] == [{"id": created["id"], "text": text}]

    rows = await asyncio.wait_for(
        client.read("messages", query={"filter": {"text": {"_eq": text}}}), WAIT
    )
    assert [r["id"] for r in rows] == [created["id"]]


async def test_strict_mode_sends_the_token_in_the_url(rt, stack, strict_directus):
    text = rt.marker("strict")
    client = await rt.connected(
        strict_directus.url, auth_mode="strict", access_token=stack["token"]
    )

    assert client.wire.connects == [f"{strict_directus.ws_url}?access_token={stack['token']}"]
    assert not [m for m in client.wire.sent if m.get("type") == "auth"], client.wire.dump()
    assert client.probe.states == ["connecting", "open"]

    sub = await client.subscribe(
        "messages",
        event="create",
        query={"fields": ["id", "text"], "filter": {"text": {"_eq": text}}},
    )
    await rt.next(sub, client)
    created = await asyncio.wait_for(client.create("messages", rt.row(text)), WAIT)
    message = await rt.next(sub, client)
    assert message["data"] == [{"id": created["id"], "text": text}]


async def test_strict_mode_wrong_token_fails_connect_and_does_not_retry_in_a_loop(
    rt, strict_directus
):
    """Directus refuses the upgrade (HTTP 401): connect() must raise, and the client must not
    keep knocking (the protocol's rule: "a refused token stops the retries")."""
    client = rt.client(
        strict_directus.url, auth_mode="strict", access_token="wrong-" + uuid.uuid4().hex
    )

    outcome: BaseException | None = None
    t0 = time.monotonic()
    try:  # a refused upgrade is answered at once; 10 s is only the bound of the wait
        await asyncio.wait_for(client.connect(), 10)
    except BaseException as error:  # what connect() did is the observation
        outcome = error
    took = time.monotonic() - t0
    attempts_at_end_of_connect = len(client.wire.connects)
    watched = await rt.watch_for_retries(client)
    attempts_after_watching = len(client.wire.connects)
    report = (
        f"connect() -> {outcome!r} after {took:.1f} s; socket attempts: "
        f"{attempts_at_end_of_connect} then {attempts_after_watching} {watched:.1f} s later; "
        f"state now {client.state!r}\n" + rt.describe(client)
    )
    print("\n" + report.splitlines()[0])

    assert isinstance(outcome, RealtimeError), report
    assert client.state == "failed", report
    assert attempts_after_watching == attempts_at_end_of_connect, report
    assert not client.is_connected
