"""The page opens with no network (its service worker, static/sw.js), in Chromium.

A visit online installs the worker, which stores the MicroPython page's files. Then the
browser goes offline (Playwright's ``set_offline``: the network is gone, ``navigator.onLine``
is false) and the tab is reloaded: the page comes from the worker's cache, says ``offline``,
and ``create_item`` works; a write made there is stored once when the network is back. No
cache entry holds the token (the page server's config.json has one; the address had one).

Firefox is in test_dist.py, where the page's server (nginx) can be stopped: Firefox's offline
emulation over BiDi does not reach a service worker's requests, so here its worker would still
fetch the page from the network. WebKit is not tested offline: Selenium has no way to take
WebKitGTK offline. The built page (make dist, served by nginx) and an update across two builds
are in test_dist.py too.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from stack.api import DirectusAPI
from tests.engines import Engine, missing

pytestmark = [pytest.mark.integration, pytest.mark.browser]

OUTBOX_KEY = "directus-realtime:outbox"
BOOT_S = 60
STEP_S = 20

# Every entry of the worker's caches: {cache name: [[url, body as text], ...]}.
CACHED_JS = """
const out = {};
for (const name of await caches.keys()) {
  const cache = await caches.open(name);
  out[name] = [];
  for (const request of await cache.keys()) {
    const response = await cache.match(request);
    out[name].push([request.url, await response.text()]);
  }
}
return out;
"""


@pytest.fixture(scope="module", params=["chromium"])
def engine(request, playwright, browser, tmp_path_factory) -> Iterator[Engine]:
    absent = missing(request.param)
    if absent:
        pytest.fail(f"{request.param} is not installed ({absent}): `make browsers` installs it")
    tmp = tmp_path_factory.mktemp(request.param)
    running = browser if request.param == "chromium" else None
    engine = Engine(request.param, playwright, tmp, browser=running)
    try:
        yield engine
    finally:
        engine.close()


def stored_with(stack: dict, text: str) -> list:
    return DirectusAPI(stack["directus_url"], stack["token"]).get(
        "/items/messages", filter={"text": {"_eq": text}}, fields=["id"]
    )


def wait_subscribed(page, timeout: float = BOOT_S) -> None:
    page.wait_for(
        "return document.getElementById('status').dataset.state === 'connected'"
        " && document.body.dataset.subscribed === 'true';",
        timeout=timeout,
        what="connected and subscribed",
    )


def wait_worker(page) -> None:
    """The service worker active and in control of the page (its files stored)."""
    page.wait_for(
        "return !!navigator.serviceWorker.controller;", timeout=STEP_S, what="the service worker"
    )


def cached(page) -> dict:
    return page.run_async(CACHED_JS)


def assert_no_token_cached(page, stack: dict) -> None:
    entries = [entry for found in cached(page).values() for entry in found]
    assert len(entries) > 20, f"the worker stored only {[url for url, _ in entries]}"
    for url, body in entries:
        assert stack["token"] not in url, f"the token is in a cached URL: {url}"
        assert stack["token"] not in body, f"the token is in the cached {url}"
    config = [body for url, body in entries if urllib.parse.urlsplit(url).path == "/config.json"]
    assert config, "config.json is not cached (the Directus to connect to, offline)"
    assert json.loads(config[0]) == {"directus_url": stack["directus_url"]}


@pytest.mark.parametrize("opened_with", ["query string", "config.json"])
def test_the_page_opens_offline_and_sends_a_write_made_there_once(
    engine, stack, record_property, opened_with
):
    """Opened with ``?url=&token=``, or with nothing (the page server's config.json names the
    Directus and its token; the worker's copy holds no token, and the tab keeps the settings)."""
    page = engine.session()
    try:
        query = urllib.parse.urlencode({"url": stack["directus_url"], "token": stack["token"]})
        page.goto(stack["app_url"] + ("?" + query if opened_with == "query string" else ""))
        wait_subscribed(page)
        wait_worker(page)
        assert_no_token_cached(page, stack)

        page.set_offline(True)
        started = time.monotonic()
        page.reload()
        page.wait_for(
            "return document.getElementById('status').dataset.state === 'offline'"
            " && typeof window.create_item === 'function';",
            timeout=BOOT_S,
            what="status offline and create_item, from the cache",
        )
        offline_ms = (time.monotonic() - started) * 1000
        record_property("offline_reload_to_offline_status_ms", round(offline_ms))
        print(f"\n{engine.name}: offline reload -> status offline, create_item {offline_ms:.0f} ms")
        assert page.run("return navigator.onLine;") is False

        text = f"written offline [{secrets.token_hex(4)}]"
        page.run("window.create_item(args[0], 'offline'); return true;", text)
        page.wait_for(
            "return (localStorage.getItem(args[0]) || '').includes(args[1]);",
            OUTBOX_KEY,
            text,
            timeout=STEP_S,
            what="the write in the outbox",
        )
        assert stored_with(stack, text) == []

        page.set_offline(False)
        wait_subscribed(page)
        page.wait_for(
            "return localStorage.getItem(args[0]) === null;",
            OUTBOX_KEY,
            timeout=STEP_S,
            what="the outbox to empty",
        )
        assert len(stored_with(stack, text)) == 1
        assert_no_token_cached(page, stack)
    finally:
        page.close()


def test_the_page_server_sends_the_worker_with_its_build(stack):
    with urllib.request.urlopen(stack["app_url"] + "sw.js") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert response.headers["Cache-Control"] == "no-cache"
        worker = response.read().decode()
    assert 'const VERSION = "unbuilt"' not in worker
    assert '"./bytecode.mpy?v=' in worker and '"./config.json"' in worker
    with urllib.request.urlopen(stack["app_url"] + "static/manifest.webmanifest") as response:
        assert response.headers["Content-Type"].startswith("application/manifest+json")
        manifest = json.loads(response.read())
    assert manifest["display"] == "standalone"
    assert {icon["sizes"] for icon in manifest["icons"]} >= {"192x192", "512x512"}


def test_chromium_offers_to_install_the_page(browser, stack):
    """Chromium's own installability check (what decides whether it offers "Install") finds
    nothing missing: a manifest with a name, a start URL, standalone display and icons."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(stack["app_url"], wait_until="domcontentloaded")
        page.wait_for_selector('body[data-subscribed="true"]', timeout=BOOT_S * 1000)
        cdp = context.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["url"].endswith("/static/manifest.webmanifest"), manifest
        assert not manifest["errors"], manifest["errors"]
        errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        # (a Playwright context is an incognito profile, where Chromium installs nothing)
        assert [e for e in errors if e["errorId"] != "in-incognito"] == [], errors
    finally:
        context.close()
