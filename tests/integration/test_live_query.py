"""The live query against a real Directus: after a cut socket it matches the server again
(edits, deletes and creates made meanwhile by another client over REST); what a check costs;
300 writes queued offline reach a Directus whose rate limiter is on, each stored once.

Figures (time to converge, bytes per check, REQUESTS_EXCEEDED met) are printed (pytest -s)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from stack.api import DirectusAPI, DirectusAPIError
from tests.pools import reserve_port

PROXY_PORTS = range(8460, 8470)
FIELDS = ["id", "text", "user", "date_created", "date_updated"]


def _fault_proxy() -> Any:
    """tests/faults/proxy.py, imported by path (tests/faults is not a package)."""
    path = Path(__file__).parent.parent / "faults" / "proxy.py"
    spec = importlib.util.spec_from_file_location("live_fault_proxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.FaultProxy


def ensure_date_updated(admin: DirectusAPI) -> None:
    """messages gets a date-updated field when this stack's provisioning did not add it."""
    fields = [f["field"] for f in admin.get("/fields/messages")]
    if "date_updated" in fields:
        return
    body = {
        "field": "date_updated",
        "type": "timestamp",
        "meta": {"special": ["date-updated"], "readonly": True, "hidden": True},
        "schema": {"is_indexed": True},
    }
    try:
        admin.post("/fields/messages", body)
    except DirectusAPIError as error:  # made meanwhile by another test session
        if "date_updated" not in [f["field"] for f in admin.get("/fields/messages")]:
            raise error


def window_query(marker: str, limit: int = 50) -> dict[str, Any]:
    return {
        "fields": FIELDS,
        "filter": {"text": {"_starts_with": marker}},
        "sort": [
            "-date_created",
            "-id",
        ],  # (a total order: 60 rows made in one request share dates)
        "limit": limit,
    }


def server_window(api: DirectusAPI, query: dict[str, Any]) -> list[tuple[str, str]]:
    rows = api.get(
        "/items/messages",
        fields=",".join(query["fields"]),
        filter=json.dumps(query["filter"]),
        sort=",".join(query["sort"]),
        limit=str(query["limit"]),
    )
    return [(r["id"], r["text"]) for r in rows]


def shown(live: Any) -> list[tuple[str, str]]:
    return [(r["id"], r["text"]) for r in live.rows]


def port_of(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    return port


async def checks_done(rt: Any, client: Any, mark: int) -> tuple[int, int, int]:
    """Wait until every read sent since ``mark`` is answered; (reads, bytes up, bytes down)."""

    def answered() -> bool:
        sent = [m for m in client.wire.since(mark, "send") if m.get("action") == "read"]
        uids = {m["uid"] for m in sent}
        got = {m.get("uid") for m in client.wire.since(mark, "recv") if m.get("uid") in uids}
        return bool(sent) and got == uids

    await rt.eventually(answered, "the check's reads to be answered", client=client)
    await asyncio.sleep(0.3)  # a read that follows from the last answer
    await rt.eventually(answered, "the check's reads to be answered", client=client)
    sent = [m for m in client.wire.since(mark, "send") if m.get("action") == "read"]
    uids = {m["uid"] for m in sent}
    up = sum(len(json.dumps(m, separators=(",", ":"))) for m in sent)
    down = sum(
        len(json.dumps(m, separators=(",", ":")))
        for m in client.wire.since(mark, "recv")
        if m.get("uid") in uids
    )
    return len(sent), up, down


async def test_live_query_matches_the_server_after_a_cut_with_an_edit_a_delete_and_a_create(
    rt: Any, stack: dict[str, Any], admin_api: DirectusAPI, main_rows: None
) -> None:
    ensure_date_updated(admin_api)
    marker = rt.marker("live-cut")
    seeded = [admin_api.post("/items/messages", rt.row(f"{marker} {i}")) for i in range(5)]
    proxy = _fault_proxy()(reserve_port(PROXY_PORTS), port_of(stack["directus_url"]))
    await proxy.start()
    try:
        client = await rt.connected(proxy.url, access_token=stack["token"])
        query = window_query(marker)
        live = client.live("messages", query=query)
        changes: list[Any] = []
        live.listen(changes.append)
        await rt.eventually(
            lambda: live.current and len(live.rows) == 5, "the window", client=client
        )

        await proxy.cut()
        await rt.eventually(lambda: not live.current, "the live query to see the cut")
        admin_api.patch(f"/items/messages/{seeded[0]['id']}", {"text": f"{marker} edited"})
        admin_api.call("DELETE", f"/items/messages/{seeded[1]['id']}")
        admin_api.post("/items/messages", rt.row(f"{marker} made meanwhile"))
        expected = server_window(admin_api, query)
        assert shown(live) != expected
        await asyncio.sleep(2.0)

        await proxy.accept_again()
        back = time.monotonic()
        await rt.eventually(lambda: shown(live) == expected, "the window to match", client=client)
        converged = time.monotonic() - back
        await rt.eventually(lambda: live.current, "current", client=client)
        reasons = [c.reason for c in changes]
        print(
            f"\nlive query after a 2 s cut (edit + delete + create meanwhile): matched the "
            f"server {converged:.2f} s after the network came back (reconnect included); "
            f"changes {reasons}",
            flush=True,
        )
        assert "catch-up" in reasons
        added = [r["id"] for c in changes for r in c.added]
        assert len(added) == len(set(added)), "a row was added twice"
    finally:
        await proxy.close()


@pytest.mark.parametrize("updated_field", ["date_updated", None])
async def test_what_a_check_costs(
    rt: Any,
    stack: dict[str, Any],
    admin_api: DirectusAPI,
    main_rows: None,
    updated_field: str | None,
) -> None:
    """Bytes on the wire of one check of a 50-row window: when nothing changed, and after an
    edit whose event was applied (the fingerprint moved); with and without date_updated."""
    ensure_date_updated(admin_api)
    marker = rt.marker("live-cost")
    admin_api.post("/items/messages", [rt.row(f"{marker} {i:03d}") for i in range(60)])
    client = await rt.connected(stack["directus_url"], access_token=stack["token"])
    query = window_query(marker, 50)
    if updated_field is None:
        query["fields"] = ["id", "text", "user", "date_created"]
    live = client.live("messages", query=query, check_every=None, updated_field=updated_field)
    await rt.eventually(lambda: live.current and len(live.rows) == 50, "the window")
    await checks_done(rt, client, 0)  # the check after init

    mark = client.wire.mark()
    live.check()
    idle = await checks_done(rt, client, mark)

    target = live.rows[3]["id"]
    admin_api.patch(f"/items/messages/{target}", {"text": f"{marker} edited"})
    await rt.eventually(
        lambda: any(r["text"] == f"{marker} edited" for r in live.rows), "the edit's event"
    )
    mark = client.wire.mark()
    live.check()
    moved = await checks_done(rt, client, mark)
    assert shown(live) == server_window(admin_api, query)
    mode = "fingerprint (date_updated)" if updated_field else "window re-read (no date_updated)"
    print(
        f"\ncheck of a 50-row window, {mode}: nothing changed: {idle[0]} read(s), "
        f"{idle[1]} B up, {idle[2]} B down; after an edit: {moved[0]} read(s), "
        f"{moved[1]} B up, {moved[2]} B down",
        flush=True,
    )
    if updated_field:
        assert idle[0] == 1  # the aggregate alone
        assert idle[2] < 400
    else:
        assert idle[0] == 1


async def test_300_writes_queued_offline_reach_a_rate_limited_directus_once_each(
    rt: Any, stack: dict[str, Any], limited_directus: Any
) -> None:
    exceeded = await _offline_writes(rt, stack, limited_directus, send_rate=40.0)
    assert exceeded == 0, "the paced outbox should keep under the limit"


async def test_unpaced_writes_honour_requests_exceeded_and_are_stored_once_each(
    rt: Any, stack: dict[str, Any], limited_directus: Any
) -> None:
    """With pacing off, Directus drops most of a 300-message burst (REQUESTS_EXCEEDED, no
    uid): the client waits the time it names and sends again what is safe to repeat."""
    exceeded = await _offline_writes(rt, stack, limited_directus, send_rate=None)
    assert exceeded > 0, "the burst should have met the rate limiter"


def wire_summary(client: Any) -> str:
    sent: dict[str, int] = {}
    for m in client.wire.sent:
        key = f"{m.get('type')}/{m.get('action')}" if isinstance(m, dict) else "raw"
        sent[key] = sent.get(key, 0) + 1
    got: dict[str, int] = {}
    for m in client.wire.received:
        if isinstance(m, dict):
            key = f"{m.get('type')}/{(m.get('error') or {}).get('code', 'ok')}"
            got[key] = got.get(key, 0) + 1
    return f"sent {sent}; received {got}; state {client.state}\n{client.wire.dump(15)}"


async def _offline_writes(rt: Any, stack: dict[str, Any], server: Any, send_rate: Any) -> int:
    marker = rt.marker("live-300")
    client = rt.client(server.url, access_token=stack["token"], send_rate=send_rate)
    query = dict(window_query(marker, 400), fields=["id", "text", "user", "date_created"])
    live = client.live("messages", query=query)
    waiters = [live.create(rt.row(f"{marker} {i:03d}")) for i in range(300)]
    assert len(live.pending) == 300 and len(live.rows) == 300

    async def outcome(waiter: Any) -> Any:
        return await waiter

    t0 = time.monotonic()
    client.connect()
    try:
        stored = await asyncio.wait_for(asyncio.gather(*[outcome(w) for w in waiters]), 120)
    except TimeoutError:
        raise AssertionError(
            f"{sum(w.done() for w in waiters)} of 300 writes answered\n{wire_summary(client)}"
        ) from None
    took = time.monotonic() - t0
    api = DirectusAPI(server.url, stack["token"])
    rows = api.get(
        "/items/messages",
        fields="id,text",
        filter=json.dumps({"text": {"_starts_with": marker}}),
        limit="-1",
    )
    texts = sorted(r["text"] for r in rows)
    exceeded = sum(
        1
        for m in client.wire.received
        if isinstance(m, dict) and (m.get("error") or {}).get("code") == "REQUESTS_EXCEEDED"
    )
    creates = sum(1 for m in client.wire.sent if m.get("action") == "create")
    print(
        f"\n300 creates queued offline, send_rate={send_rate}: all answered in {took:.1f} s; "
        f"create frames sent {creates}; REQUESTS_EXCEEDED met {exceeded}; stored {len(rows)}",
        flush=True,
    )
    assert len(stored) == 300
    assert texts == sorted(f"{marker} {i:03d}" for i in range(300))  # each once
    assert len({r["id"] for r in rows}) == 300
    await rt.eventually(
        lambda: not live.pending and len(live.rows) == 300, "confirmed", client=client
    )
    return exceeded
