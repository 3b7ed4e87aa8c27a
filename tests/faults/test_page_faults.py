"""The page's promises that need a Directus or a network the test controls (the fixtures of
tests/faults/conftest.py):

- writes queued while the network is cut, then refused sign-in (the static token was
  rotated): they stay in localStorage and the page says they wait for a new sign-in; opened
  with the new token, the page stores each exactly once (they were all dropped).
- with ``?url=`` naming another Directus and no token, the local stack's token goes
  nowhere (it was sent to that URL).
- two tabs of one browser: the second does not send the writes the first still owns;
  once the first is closed, the second (loaded again) sends them, each stored once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from stack.api import DirectusAPI

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

SCENARIO_TIMEOUT = 180.0  # seconds: one scenario, start to end
OUTBOX_JS = "localStorage.getItem('directus-realtime:outbox')"
SECOND_LOOK_S = 3.0  # page/app.py SECOND_LOOK_MS: a tab looks at other tabs' writes again


async def saved_outbox(page: Any) -> list:
    """The page's outbox records in localStorage: ``{"tab", "write"}``, the write in the
    library's own format."""
    raw = await page.page.evaluate(OUTBOX_JS)
    return json.loads(raw) if raw else []


def written_rows(value: Any) -> list[dict]:
    """The row data inside a saved write (each dict with a ``text``), wherever the library's
    format keeps it."""
    if isinstance(value, dict):
        found = [value] if isinstance(value.get("text"), str) else []
        return found + [row for v in value.values() for row in written_rows(v)]
    if isinstance(value, list):
        return [row for v in value for row in written_rows(v)]
    return []


async def saved_texts(page: Any) -> list[str]:
    return [
        row["text"]
        for record in await saved_outbox(page)
        for row in written_rows(record.get("write"))
    ]


async def not_connected(page: Any) -> bool:
    return await page.state() != "connected"


def demo_user_id(admin: DirectusAPI, email: str) -> str:
    users = admin.get("/users", fields=["id"], filter={"email": {"_eq": email}})
    assert len(users) == 1, users
    return users[0]["id"]


# ----- writes queued, then the sign-in refused -----------------------------------------------


def test_writes_queued_before_a_refused_sign_in_wait_for_the_new_token(
    loop, stack, kit, proxied_directus, open_page, make_proxy, remember_servers
):
    server = proxied_directus
    remember_servers(server)
    marker = kit.new_marker("rotated")
    texts = [f"{marker} queued-{k}" for k in range(3)]
    new_token = "rotated-" + uuid.uuid4().hex
    admin = DirectusAPI.login(server.url, stack["admin_email"], stack["admin_password"])
    demo = demo_user_id(admin, stack["demo_email"])
    seen: dict[str, Any] = {}

    async def run() -> None:
        proxy = await make_proxy(server.port)
        page = await open_page("page A")
        await page.open(stack["app_url"], url=proxy.url, token=stack["token"])
        await page.wait_ready()
        await proxy.cut()
        await kit.until(lambda: not_connected(page), 15, "the page to notice the cut")
        for k, text in enumerate(texts):
            await page.fire_create(f"queued-{k}", text, "rotated")
        await kit.until(
            lambda: _holds_all(page, texts), 10, "the 3 queued writes to be in localStorage"
        )
        await asyncio.to_thread(admin.patch, f"/users/{demo}", {"token": new_token})
        await proxy.accept_again()
        await kit.until(
            lambda: _state_is(page, "error"), 60, "the page to show the refused sign-in"
        )
        seen["saved"] = await saved_texts(page)
        seen["waiting"] = await page.page.evaluate(
            "() => { const note = document.querySelector('#waiting');"
            " return note && !note.hidden ? note.textContent : ''; }"
        )
        seen["problem"] = await page.page.evaluate(
            "document.querySelector('#problem').dataset.kind"
        )
        # The same tab, opened again with the new token: the waiting writes go out.
        await page.open(stack["app_url"], url=proxy.url, token=new_token)
        await page.wait_ready()

        async def all_stored() -> bool:
            rows = await asyncio.to_thread(kit.rows_with_marker, server.url, new_token, marker)
            return len(rows) >= 3 and await page.page.evaluate(OUTBOX_JS) is None

        try:
            await kit.until(all_stored, 30, "the 3 writes to be stored and the outbox empty")
        except AssertionError as error:
            seen["wait"] = str(error)
        seen["rows"] = await asyncio.to_thread(kit.rows_with_marker, server.url, new_token, marker)
        seen["outbox_at_end"] = await page.page.evaluate(OUTBOX_JS)

    try:
        loop.run(run(), SCENARIO_TIMEOUT)
    finally:
        admin.patch(f"/users/{demo}", {"token": stack["token"]})  # the next tests use it
    stored = sorted(row["text"] for row in seen.get("rows", []))
    print(f"\n[faults] rotated token: saved={len(seen.get('saved', []))} stored={len(stored)}")
    assert sorted(seen["saved"]) == sorted(texts), f"in localStorage after the refusal: {seen}"
    assert "3 messages waiting" in seen["waiting"], seen
    assert "sign in again" in seen["waiting"], seen
    assert seen["problem"] == "auth", seen
    assert stored == sorted(texts), f"each exactly once: {seen}"
    assert seen["outbox_at_end"] is None, seen


# ----- the local stack's token stays with the local Directus ----------------------------------


def test_the_local_token_is_never_sent_to_another_directus(loop, stack, kit, open_page, make_proxy):
    """``?url=`` names another Directus origin (the local Directus behind a proxy on another
    port) and no token: the page must not offer it the local stack's token."""
    token = stack["token"]
    seen: dict[str, Any] = {}

    async def run() -> None:
        proxy = await make_proxy(int(stack["directus_port"]))
        page = await open_page("page")
        headers: list[dict] = []
        page.context.on("request", lambda request: headers.append(dict(request.headers)))
        await page.open(stack["app_url"], url=proxy.url)
        await kit.until(lambda: _named_state(page), 30, "the page to be connected or show an error")
        # Proving an absence: nothing leaves in the next seconds either (a reconnect, a retry).
        await asyncio.sleep(3)
        seen["state"] = await page.state()
        seen["frames"] = [str(frame) for record in page.sockets for frame in record.sent]
        seen["requests"] = list(page.requests)
        seen["headers"] = headers
        seen["proxy"] = proxy.summary()

    loop.run(run(), SCENARIO_TIMEOUT)
    in_frames = [frame for frame in seen["frames"] if token in frame]
    in_urls = [url for url in seen["requests"] if token in url]
    in_headers = [h for h in seen["headers"] if any(token in str(v) for v in h.values())]
    print(f"\n[faults] ?url= another Directus: state={seen['state']} proxy {seen['proxy']}")
    assert not in_frames, f"the local token went out on a WebSocket: {in_frames}"
    assert not in_urls, f"the local token went out in a URL: {in_urls}"
    assert not in_headers, f"the local token went out in a header: {in_headers}"


# ----- two tabs, one localStorage -------------------------------------------------------


def test_a_tab_does_not_send_the_writes_another_open_tab_owns(
    request, loop, stack, kit, proxied_directus, open_page, make_proxy, remember_servers
):
    server = proxied_directus
    remember_servers(server)
    marker = kit.new_marker("two-tabs")
    texts = [f"{marker} A-{k}" for k in range(3)]
    seen: dict[str, Any] = {}

    async def run() -> None:
        proxy = await make_proxy(server.port)
        a = await open_page("tab A")
        await a.open(stack["app_url"], url=proxy.url, token=stack["token"])
        await a.wait_ready()
        await proxy.cut()  # A's writes wait, saved, while A lives
        await kit.until(lambda: not_connected(a), 15, "tab A to notice the cut")
        for k, text in enumerate(texts):
            await a.fire_create(f"A-{k}", text, "tab A")
        await kit.until(lambda: _holds_all(a, texts), 10, "tab A's writes in localStorage")
        ids = {
            row.get("id")
            for record in await saved_outbox(a)
            for row in written_rows(record.get("write"))
            if row.get("text") in texts
        }
        seen["tabs"] = {record.get("tab") for record in await saved_outbox(a)}

        # Tab B: the same browser context (the same localStorage), the same Directus, directly.
        b = type(a)("tab B", a.context, await a.context.new_page())
        b.attach(request.node)
        await b.open(stack["app_url"], url=server.url, token=stack["token"])
        await b.wait_ready()
        # Proving an absence: B's first look and its second one (SECOND_LOOK_S later) pass.
        await asyncio.sleep(SECOND_LOOK_S + 2)
        seen["b_sent_while_a_open"] = _creates_of(b, ids)
        seen["saved_while_both_open"] = len(await saved_outbox(b))

        await a.page.close()  # A's lock goes with it
        # B loads again (a reload would come back without the token: the page took it out of
        # the address bar, and the local stack's token is not for this Directus).
        await b.open(stack["app_url"], url=server.url, token=stack["token"])
        await b.wait_ready()

        async def all_stored() -> bool:
            rows = await asyncio.to_thread(kit.rows_with_marker, server.url, stack["token"], marker)
            return len(rows) >= 3 and await b.page.evaluate(OUTBOX_JS) is None

        try:
            await kit.until(all_stored, 30, "tab B to store A's writes")
        except AssertionError as error:
            seen["wait"] = str(error)
        seen["rows"] = await asyncio.to_thread(
            kit.rows_with_marker, server.url, stack["token"], marker
        )
        seen["b_sent_after"] = _creates_of(b, ids)
        seen["not_sent"] = await b.page.text_content("#compose .error")
        seen["b_console_not_sent"] = [t for t in b.console_texts() if "Not sent" in t]

    loop.run(run(), SCENARIO_TIMEOUT)
    stored = sorted(row["text"] for row in seen.get("rows", []))
    print(
        f"\n[faults] two tabs: B sent {len(seen['b_sent_while_a_open'])} of A's writes while A "
        f"was open; after A closed: stored {len(stored)}"
    )
    assert not seen["b_sent_while_a_open"], f"tab B sent tab A's writes while A was open: {seen}"
    assert None not in seen["tabs"], f"saved writes without an owner tab: {seen}"
    assert seen["saved_while_both_open"] == 3, seen
    assert stored == sorted(texts), f"each exactly once: {seen}"
    assert "Not sent" not in (seen["not_sent"] or ""), seen
    assert not seen["b_console_not_sent"], seen


# ----- helpers ----------------------------------------------------------------------------------


def _creates_of(page: Any, ids: set[str]) -> list[str]:
    """The ids of ``ids`` that ``page`` sent a create for (with its id or, failing that, its
    text: a page that sends a write without its id sends the same text)."""
    sent = []
    for message in page.frames_sent():
        if not (isinstance(message, dict) and message.get("action") == "create"):
            continue
        data = message.get("data") or {}
        if isinstance(data, dict) and data.get("id") in ids:
            sent.append(data["id"])
    return sent


async def _holds_all(page: Any, texts: list[str]) -> bool:
    saved = await saved_texts(page)
    return all(text in saved for text in texts)


async def _state_is(page: Any, state: str) -> bool:
    return await page.state() == state


async def _named_state(page: Any) -> bool:
    return await page.page.evaluate(
        """() => {
            const status = document.querySelector('#status');
            const state = status && status.dataset.state;
            if (state === 'connected') return document.body.dataset.subscribed === 'true';
            if (state !== 'error') return false;
            const problem = document.querySelector('#problem');
            return (problem && !problem.hidden) || status.textContent.includes(':');
        }"""
    )
