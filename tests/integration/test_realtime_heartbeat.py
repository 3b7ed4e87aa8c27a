"""Ping/pong against a Directus with WEBSOCKETS_HEARTBEAT_PERIOD=2: Directus pings every 2 s and
closes a client that sent nothing within the next period. The client answers, so it stays."""

from __future__ import annotations

import asyncio
import json

import websockets

PINGS = 5  # > 3 periods: the server's checks of the first three pings are over by the fifth


async def silent_socket(ws_url: str, token: str, pings: list[dict]) -> None:
    """Authenticates, then never answers: Directus should close it."""
    async with websockets.connect(ws_url, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "auth", "access_token": token}))
        assert json.loads(await ws.recv())["status"] == "ok"
        try:
            async for frame in ws:
                pings.append(json.loads(frame))
        except websockets.ConnectionClosed:
            pass


async def test_client_answers_pings_and_stays_connected_beyond_three_periods(
    rt, stack, heartbeat_directus
):
    period = int(heartbeat_directus.env["WEBSOCKETS_HEARTBEAT_PERIOD"])
    assert period == 2
    client = await rt.connected(heartbeat_directus.url, access_token=stack["token"])
    # a control: a socket that does not answer is closed by this Directus
    silent_pings: list[dict] = []
    silent = asyncio.ensure_future(
        silent_socket(heartbeat_directus.ws_url, stack["token"], silent_pings)
    )
    try:
        pings = await rt.eventually(
            lambda: (
                len([m for m in client.wire.received if m.get("type") == "ping"]) >= PINGS
                and [m for m in client.wire.received if m.get("type") == "ping"]
            ),
            f"{PINGS} pings from Directus",
            timeout=period * PINGS + 15,
            client=client,
        )
        await asyncio.wait_for(silent, 15)  # ends when Directus closes it
    finally:
        silent.cancel()

    assert silent_pings, "the control socket got no ping: is the heartbeat on?"
    pongs = [m for m in client.wire.sent if m.get("type") == "pong"]
    assert len(pongs) >= len(pings), client.wire.dump()
    assert client.is_connected, rt.describe(client)
    assert client.probe.closes == [], rt.describe(client)
    assert client.probe.states == ["connecting", "authenticating", "open"]
    assert len(client.wire.connects) == 1
    # pings are answered by the client itself, not shown as messages
    assert not [m for m in client.probe.messages if m.get("type") == "ping"]

    rows = await asyncio.wait_for(client.read("messages", query={"limit": 1}), rt.WAIT)
    assert isinstance(rows, list)
