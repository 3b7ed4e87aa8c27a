"""End-to-end tests of mpy.html: the same page and the same main.py as index.html, on
PyScript's MicroPython instead of Pyodide, against the real local Directus.

The client (protocol, asyncio driver, browser WebSocket transport) is the same Python code that
Pyodide and CPython run; these tests check the page contract on MicroPython, and that a Pyodide
page and a MicroPython page see each other's writes.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.parse

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.browser]

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
XSS_TEXT = "<img src=x onerror=alert(1)>"
BAD_INPUTS = [
    # (label, JS arguments of create_item, what the error message must name)
    ("empty text", ["", "Ben"], "text"),
    ("whitespace text", ["   ", "Ben"], "text"),
    ("number text", [42, "Ben"], "text"),
    ("null text", [None, "Ben"], "text"),
    ("missing user", ["Hello without a user"], "user"),
]


def unique(text: str) -> str:
    return f"{text} [e2e mpy {secrets.token_hex(4)}]"


def mpy_url(stack: dict) -> str:
    return urllib.parse.urljoin(stack["app_url"], "mpy.html")


def ready_mpy_page(open_page, stack: dict, name: str = "mpy page"):
    probe = open_page(name)
    probe.goto(mpy_url(stack))
    probe.wait_ready()
    return probe


def ready_pyodide_page(open_page, stack: dict, name: str = "pyodide page"):
    probe = open_page(name)
    probe.goto(stack["app_url"])
    probe.wait_ready()
    return probe


def paths(probe) -> list[str]:
    return [urllib.parse.urlsplit(url).path for url in probe.requests]


def test_mpy_page_connects_and_subscribes_on_micropython(open_page, stack):
    probe = ready_mpy_page(open_page, stack)

    assert probe.page.locator("#status").get_attribute("data-state") == "connected"
    assert probe.page.locator("body").get_attribute("data-subscribed") == "true"
    assert "Connection is open" in probe.console_texts()
    # It is MicroPython that runs, from this server; Pyodide is not even fetched.
    requested = paths(probe)
    assert "/static/runtime/micropython/micropython.wasm" in requested, requested
    assert not [path for path in requested if "/pyodide/" in path], requested
    assert probe.page.evaluate("document.querySelector('script[type=mpy]') !== null")
    assert len(probe.sockets) == 1, "expected exactly one WebSocket"
    assert (
        urllib.parse.urlsplit(probe.sockets[0].url).port
        == urllib.parse.urlsplit(stack["directus_url"]).port
    )
    foreign = [
        url
        for url in probe.requests + [record.url for record in probe.sockets]
        if urllib.parse.urlsplit(url).scheme not in ("data", "blob")
        and urllib.parse.urlsplit(url).hostname not in LOCAL_HOSTS
    ]
    assert foreign == [], f"requests left localhost: {foreign}"
    assert probe.page_errors == []


def test_create_item_round_trip_reaches_the_mpy_and_the_pyodide_page(open_page, stack):
    mpy = ready_mpy_page(open_page, stack)
    pyodide = ready_pyodide_page(open_page, stack)

    text = unique("Hello from MicroPython")
    result = mpy.create_item(text, "Ben")
    assert result["ok"], f"create_item rejected: {result}"
    item = result["value"]
    assert (item["text"], item["user"]) == (text, "Ben")
    assert isinstance(item.get("id"), str) and len(item["id"]) == 36, item  # a UUID
    assert item.get("date_created"), item

    # And the other way round: the Pyodide page's write shows up on MicroPython.
    back = unique("Hello from Pyodide")
    reply = pyodide.create_item(back, "Rijk")
    assert reply["ok"], f"create_item rejected: {reply}"

    for probe in (mpy, pyodide):
        for created in (item, reply["value"]):
            probe.wait_rendered(created["id"])
        rows = {row["id"]: row for row in probe.rendered()}
        assert (rows[item["id"]]["text"], rows[item["id"]]["user"]) == (text, "Ben")
        assert rows[item["id"]]["time"], f"{probe.name}: no <time> in {rows[item['id']]}"
        assert rows[reply["value"]["id"]]["text"] == back
        assert len([r for r in probe.rendered() if r["id"] == item["id"]]) == 1


def test_mpy_create_item_rejects_bad_input_without_sending(open_page, stack):
    probe = ready_mpy_page(open_page, stack, "mpy bad input")
    record = probe.sockets[-1]
    for label, args, word in BAD_INPUTS:
        result = probe.create_item(*args)
        assert not result["ok"], f"{label}: create_item{tuple(args)!r} resolved: {result}"
        assert result["isError"], f"{label}: rejected with a non-Error: {result}"
        assert word in result["message"].lower(), (label, result["message"])
    creates = [
        frame
        for frame in record.sent_messages()
        if isinstance(frame, dict) and frame.get("action") == "create"
    ]
    assert creates == [], f"bad input reached the socket: {creates}"
    assert probe.page_errors == []


# A busy loop that ends by itself.
BUSY = "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end: pass\n"


def test_mpy_create_item_answers_every_call_under_cpu_load(open_page, stack):
    """MicroPython's FFI could collect the handle of the Promise that create_item returns while
    it was being handed to JS: with the machine busy, about one call in 13 got ``undefined``
    (and its rejection surfaced as a page error). Three busy processes make the load; every
    call of 10 rounds (5 bad inputs and 1 good) on one page must get its answer."""
    probe = ready_mpy_page(open_page, stack, "mpy under load")
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(3)]
    try:
        for n in range(10):
            for label, args, _ in BAD_INPUTS:
                result = probe.create_item(*args)
                assert not result["ok"] and result["isError"], (n, label, result)
            result = probe.create_item(unique(f"under load {n}"), "Ben")
            assert result["ok"] and (result["value"] or {}).get("id"), (n, result)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert probe.page_errors == []


def test_mpy_page_shows_html_as_text(open_page, stack):
    writer = ready_mpy_page(open_page, stack, "mpy writer")
    reader = ready_pyodide_page(open_page, stack, "pyodide reader")

    result = writer.create_item(XSS_TEXT, "<b>Mallory</b>")
    assert result["ok"], result
    xss_id = result["value"]["id"]
    # A later item that renders after it: by then an <img> would have loaded or failed.
    after = writer.create_item(unique("after the img"), "Ben")
    assert after["ok"], after

    for probe in (writer, reader):
        for item_id in (xss_id, after["value"]["id"]):
            probe.wait_rendered(item_id)
        rows = {row["id"]: row for row in probe.rendered()}
        assert rows[xss_id]["text"] == XSS_TEXT
        assert rows[xss_id]["user"] == "<b>Mallory</b>"
        assert probe.page.locator("#messages img").count() == 0
        assert probe.page.locator("#messages b").count() == 0
        assert probe.dialogs == [], f"{probe.name}: a dialog fired: {probe.dialogs}"
        assert not [u for u in probe.requests if urllib.parse.urlsplit(u).path.endswith("/x")]


def test_mpy_page_reconnects_after_the_socket_drops(open_page, stack):
    """The reconnect backoff runs on the driver's timer task: MicroPython's asyncio.sleep."""
    probe = open_page("mpy reconnect", spy_sockets=True)
    probe.goto(mpy_url(stack))
    probe.wait_ready()
    probe.page.evaluate("window.__e2e_sockets[0].close()")

    probe.page.wait_for_function("() => window.__e2e_sockets.length >= 2")
    probe.page.wait_for_selector('#status[data-state="connected"]')
    assert "Connection has closed" in probe.console_texts()
    assert probe.console_texts().count("Connection is open") >= 2
    # The subscription came back with the connection.
    result = probe.create_item(unique("after reconnect"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])


def test_mpy_page_signs_in_with_email_and_password(open_page, stack):
    """No urllib on MicroPython: the sign-in goes over the browser's fetch (POST /auth/login),
    the socket authenticates with the access token it got, and the page works."""
    probe = open_page("mpy login")
    probe.goto(
        mpy_url(stack),
        url=stack["directus_url"],
        email=stack["demo_email"],
        password=stack["demo_password"],
    )
    probe.wait_ready()
    assert "/auth/login" in paths(probe), paths(probe)
    result = probe.create_item(unique("mpy signed in"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
    assert stack["demo_password"] not in probe.page.url
    assert json.dumps(stack["demo_password"])[1:-1] not in probe.page.content()
    assert probe.page_errors == []


def test_mpy_page_shows_the_sign_in_refusal(open_page, stack):
    probe = open_page("mpy wrong password")
    probe.goto(
        mpy_url(stack),
        url=stack["directus_url"],
        email=stack["demo_email"],
        password="not-" + stack["demo_password"],
    )
    probe.page.wait_for_selector('#problem[data-kind="auth"]', timeout=60_000)
    assert probe.page.locator("#status").get_attribute("data-state") == "error"
    assert "Invalid user credentials" in probe.page.locator("#problem").text_content()


def test_mpy_page_connects_with_query_parameters(open_page, stack):
    probe = open_page("mpy query")
    probe.goto(mpy_url(stack), url=stack["directus_url"], token=stack["token"])
    probe.wait_ready()
    assert stack["token"] not in probe.page.url
    result = probe.create_item(unique("mpy with query"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])


def test_mpy_page_shows_a_10000_message_history(open_page, stack):
    """10,000 messages (1.3 MB of JSON) in one read ran the MicroPython page out of memory
    (MemoryError); the page now reads in pages, and shows them all, oldest first."""
    from bench.seed import ensure_messages

    wanted = 10_000
    assert ensure_messages(stack, wanted, say=lambda _: None) >= wanted
    probe = open_page("mpy page, 10k history")
    probe.goto(mpy_url(stack) + "?history=%d" % wanted)
    probe.page.wait_for_selector("body[data-history=true]", state="attached", timeout=120_000)

    created = probe.page.evaluate(
        "[...document.querySelectorAll('#messages > li.message')].map((r) => r.dataset.created)"
    )
    assert len(created) == wanted
    assert created == sorted(created), "rows are not in date_created order"
    ids = probe.page.evaluate(
        "new Set([...document.querySelectorAll('#messages > li.message')].map((r) => r.dataset.id))"
        ".size"
    )
    assert ids == wanted, "a message is shown twice"
    assert probe.page_errors == []
    assert not [t for t in probe.console_texts() if "MemoryError" in t]
