"""The guide's flow in Firefox and WebKit (Chromium runs it in test_page.py and the others).

Each engine (tests/engines.py: Firefox over WebDriver BiDi, WebKitGTK's MiniBrowser through
Selenium on an Xvfb display) opens the page served by the local stack and checks what a
reader of the guide checks: subscribed; three ``create_item`` calls resolve with the stored
items; the rows in order; another client's message (REST) shown; a bad URL gets its problem
screen; and a write made while Directus cannot be reached waits in the outbox, survives a
reload, and is stored once when Directus is back.

"Directus cannot be reached" is a ``Gate``: a TCP relay in front of the real Directus that the
test closes and opens (the page is pointed at it with ``?url=``), which works the same in every
engine. Each engine's time from navigation to subscribed is printed and recorded as a test
property (never asserted).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from stack.api import DirectusAPI
from tests.engines import Engine, missing

pytestmark = [pytest.mark.integration, pytest.mark.browser]

GUIDE_ITEMS = [
    ("Hello World!", "Ben"),
    ("Hello Universe!", "Rijk"),
    ("Hello Everyone Everywhere All At Once!", "Kevin"),
]
OUTBOX_KEY = "directus-realtime:outbox"
BOOT_S = 60
STEP_S = 20


@pytest.fixture(scope="module", params=["firefox", "webkit"])
def engine(request, playwright, tmp_path_factory) -> Iterator[Engine]:
    absent = missing(request.param)
    if absent:
        pytest.fail(f"{request.param} is not installed ({absent}): `make browsers` installs it")
    engine = Engine(request.param, playwright, tmp_path_factory.mktemp(request.param))
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def session(engine):
    """``session()``: a page of the engine in a fresh profile, closed after the test."""
    opened = []

    def factory(**kwargs):
        opened.append(engine.session(**kwargs))
        return opened[-1]

    yield factory
    for page in opened:
        page.close()


def unique(text: str) -> str:
    return f"{text} [engines {secrets.token_hex(4)}]"


def api(stack: dict) -> DirectusAPI:
    return DirectusAPI(stack["directus_url"], stack["token"])


def stored_with(stack: dict, text: str) -> list:
    return api(stack).get("/items/messages", filter={"text": {"_eq": text}}, fields=["id"])


def wait_subscribed(page, timeout: float = BOOT_S) -> None:
    page.wait_for(
        "return document.getElementById('status').dataset.state === 'connected'"
        " && document.body.dataset.subscribed === 'true';",
        timeout=timeout,
        what="connected and subscribed",
    )


def wait_rendered(page, item_id: str) -> None:
    page.wait_for(
        "return [...document.querySelectorAll('#messages li.message')]"
        ".some(row => row.dataset.id === args[0]);",
        item_id,
        timeout=STEP_S,
        what=f"the row {item_id}",
    )


class Gate:
    """A TCP relay from 127.0.0.1:<port> to Directus that can be shut (every connection cut,
    new ones refused) and opened again on the same port."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.links: list[socket.socket] = []
        self.lock = threading.Lock()
        self._serve()

    def _serve(self) -> None:
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.links += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def shut(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # (wakes the accept; close alone does not)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            links, self.links = self.links, []
        for sock in links:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self._serve()


@pytest.fixture
def gate(stack) -> Iterator[Gate]:
    port = urllib.parse.urlsplit(stack["directus_url"]).port
    gate = Gate(port)
    yield gate
    gate.shut()


# ----- the guide -----


def test_the_guide_flow(engine, session, stack, record_property):
    page = session()
    started = time.monotonic()
    page.goto(stack["app_url"])  # the local stack's config.json: its Directus and token
    wait_subscribed(page)
    subscribed_ms = (time.monotonic() - started) * 1000
    record_property("time_to_subscribed_ms", round(subscribed_ms))
    print(f"\n{engine.name}: navigation -> subscribed {subscribed_ms:.0f} ms")

    created = []
    for text, user in GUIDE_ITEMS:
        text = unique(text)
        result = page.create_item(text, user)
        assert result.get("ok"), f"{engine.name}: create_item({text!r}) rejected: {result}"
        item = result["value"]
        assert (item["text"], item["user"]) == (text, user)
        assert item.get("id") and item.get("date_created"), item
        created.append(item)
    ids = [item["id"] for item in created]
    for item_id in ids:
        wait_rendered(page, item_id)
    assert [i for i in page.rendered_ids() if i in ids] == ids, f"{engine.name}: wrong order"
    assert sorted(stored["id"] for stored in stored_with(stack, created[1]["text"])) == [ids[1]]

    # another client's message, over REST
    other = api(stack).post("/items/messages", {"text": unique("over REST"), "user": "REST"})
    wait_rendered(page, other["id"])
    row = page.run(
        "const row = document.querySelector(`#messages li.message[data-id='${args[0]}']`);"
        "return [row.querySelector('.user').textContent, row.querySelector('.text').textContent];",
        other["id"],
    )
    assert row == ["REST", other["text"]]


def test_a_bad_url_gets_its_problem_screen(engine, session, stack):
    page = session()
    page.goto(stack["app_url"] + "?url=ftp%3A%2F%2Fexample.org&token=x")
    page.wait_for(
        "const p = document.getElementById('problem');"
        "return !p.hidden && p.dataset.kind === 'bad-url' && p.textContent.trim().length > 0;",
        timeout=BOOT_S,
        what="the bad-url problem screen",
    )
    assert page.state() == "error"
    assert "token" not in page.run("return location.search;")


def test_a_write_made_while_directus_is_away_survives_a_reload_and_is_stored_once(
    engine, session, stack, gate
):
    page = session()
    query = urllib.parse.urlencode({"url": gate.url, "token": stack["token"]})
    page.goto(stack["app_url"] + "?" + query)
    wait_subscribed(page)
    text = unique("written while away")

    gate.shut()
    page.wait_for(
        "return document.getElementById('status').dataset.state !== 'connected';",
        timeout=STEP_S,
        what="the page to see the connection gone",
    )
    page.run("window.create_item(args[0], 'away'); return true;", text)
    page.wait_for(
        "return (localStorage.getItem(args[0]) || '').includes(args[1]);",
        OUTBOX_KEY,
        text,
        timeout=STEP_S,
        what="the write in the outbox",
    )
    page.reload()  # (the settings stay with the tab: sessionStorage)
    assert text in (page.run("return localStorage.getItem(args[0]);", OUTBOX_KEY) or "")
    assert stored_with(stack, text) == []

    gate.open()
    wait_subscribed(page)
    page.wait_for(
        "return localStorage.getItem(args[0]) === null;",
        OUTBOX_KEY,
        timeout=STEP_S,
        what="the outbox to empty",
    )
    assert len(stored_with(stack, text)) == 1
