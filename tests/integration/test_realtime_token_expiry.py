"""Expiring access tokens: a Directus with ACCESS_TOKEN_TTL=3s. When a socket's token expires,
Directus sends {"type": "auth", "status": "error", "error": {"code": "TOKEN_EXPIRED"}} and waits
for a new auth on the same socket. A client logged in with email and password (or given a
token_provider) re-authenticates there, so its subscription lives on: no reconnect, no close."""

from __future__ import annotations

import asyncio

from directus_realtime import RealtimeClient, rest

TTL = 3  # ACCESS_TOKEN_TTL of short_ttl_directus (tests/integration/conftest.py)


def is_expiry(message: dict) -> bool:
    return (
        message.get("type") == "auth"
        and message.get("status") == "error"
        and (message.get("error") or {}).get("code") == "TOKEN_EXPIRED"
    )


def reauthenticated_after(client: RealtimeClient, expiries: int) -> bool:
    """``expiries`` TOKEN_EXPIRED have come, and an auth ok came after the last one."""
    received = client.wire.received  # type: ignore[attr-defined]
    where = [i for i, m in enumerate(received) if is_expiry(m)]
    if len(where) < expiries:
        return False
    return any(
        m.get("type") == "auth" and m.get("status") == "ok" for m in received[where[-1] + 1 :]
    )


async def subscription_survives_two_expiries(rt, stack, handle, client: RealtimeClient) -> None:
    assert handle.env["ACCESS_TOKEN_TTL"] == f"{TTL}s"
    text = rt.marker("ttl")
    sub = await client.subscribe(
        "messages",
        event="create",
        query={"fields": ["id", "text"], "filter": {"text": {"_eq": text}}},
    )
    init = await rt.next(sub, client)
    assert init["event"] == "init", init
    uid = sub.uid
    writer = await rt.connected(handle.url, access_token=stack["token"])  # static: no expiry

    first = await asyncio.wait_for(writer.create("messages", rt.row(text)), rt.WAIT)
    assert rt.ids(await rt.next(sub, client)) == [first["id"]]

    # more than two TTLs: two expiries, each answered on the same socket
    await rt.eventually(
        lambda: reauthenticated_after(client, 2),
        "two TOKEN_EXPIRED, then a successful re-authentication",
        timeout=3 * TTL + rt.WAIT,
        client=client,
    )
    second = await asyncio.wait_for(writer.create("messages", rt.row(text)), rt.WAIT)
    message = await rt.next(sub, client)
    assert rt.ids(message) == [second["id"]], message
    assert message["uid"] == uid == sub.uid

    assert client.is_connected, rt.describe(client)
    assert client.probe.closes == [], rt.describe(client)
    assert client.probe.opens == 1
    assert len(client.wire.connects) == 1, rt.describe(client)
    assert "reconnecting" not in client.probe.states
    # the subscription was sent once: it was never re-made
    subscribes = [m for m in client.wire.sent if m.get("type") == "subscribe"]
    assert len(subscribes) == 1, client.wire.dump()


async def test_email_password_login_keeps_its_subscription_across_token_expiry(
    rt, stack, short_ttl_directus
):
    client = await rt.connected(
        short_ttl_directus.url, email=stack["demo_email"], password=stack["demo_password"]
    )
    await subscription_survives_two_expiries(rt, stack, short_ttl_directus, client)
    # re-authenticated with the refresh token Directus handed out, never with a stale token
    reauths = [m for m in client.wire.sent[1:] if m.get("type") == "auth"]
    assert len(reauths) >= 2, client.wire.dump()
    assert all("refresh_token" in m and "access_token" not in m for m in reauths), reauths


async def test_token_provider_is_used_for_the_first_authentication(rt, stack, short_ttl_directus):
    """RealtimeClient(url, token_provider=TokenSession(...).token): the provider is the only
    source of tokens, so it must be asked for the first one too."""
    session = rest.TokenSession(short_ttl_directus.url, stack["demo_email"], stack["demo_password"])
    client = await rt.connected(short_ttl_directus.url, token_provider=session.token)

    assert client.wire.sent[0] == {"type": "auth", "access_token": session.access_token}
    await subscription_survives_two_expiries(rt, stack, short_ttl_directus, client)


async def test_token_provider_refreshes_over_rest_and_keeps_the_subscription(
    rt, stack, short_ttl_directus
):
    session = rest.TokenSession(short_ttl_directus.url, stack["demo_email"], stack["demo_password"])
    first_token = await session.login()
    first_refresh = session.refresh_token
    client = await rt.connected(
        short_ttl_directus.url, access_token=first_token, token_provider=session.token
    )

    await subscription_survives_two_expiries(rt, stack, short_ttl_directus, client)

    tokens = [m["access_token"] for m in client.wire.sent if m.get("type") == "auth"]
    assert tokens[0] == first_token
    assert len(tokens) >= 3, client.wire.dump()
    assert len(set(tokens)) == len(tokens), "every re-auth carries a fresh token"
    assert session.refresh_token and session.refresh_token != first_refresh  # refreshed via REST
    assert tokens[-1] == session.access_token
