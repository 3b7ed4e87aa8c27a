"""End-to-end tests of pyodide.html: the page (index.html, on MicroPython) on Pyodide instead,
against the real local Directus. The page server writes pyodide.html from index.html.

The client (protocol, asyncio driver, browser WebSocket transport) is the same Python code that
MicroPython and CPython run; these tests check the page contract on Pyodide (sign-in with
email and password over urllib and pyodide-http included), and that a Pyodide page and a
MicroPython page see each other's writes.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse

import pytest

from tests.e2e.pages import PYODIDE, ready_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def unique(text: str) -> str:
    return f"{text} [e2e pyodide {secrets.token_hex(4)}]"


def pyodide_url(stack: dict) -> str:
    return urllib.parse.urljoin(stack["app_url"], PYODIDE)


def paths(probe) -> list[str]:
    return [urllib.parse.urlsplit(url).path for url in probe.requests]


def test_pyodide_page_connects_and_subscribes_on_pyodide(open_page, stack):
    probe = ready_page(open_page, stack, "pyodide page", path=PYODIDE)

    assert probe.page.locator("#status").get_attribute("data-state") == "connected"
    assert probe.page.locator("body").get_attribute("data-subscribed") == "true"
    assert "Connection is open" in probe.console_texts()
    # It is Pyodide that runs, from this server; MicroPython is not even fetched.
    requested = paths(probe)
    assert "/static/runtime/pyodide/pyodide.asm.wasm" in requested, requested
    assert not [path for path in requested if "/micropython/" in path], requested
    assert probe.page.evaluate("document.querySelector('script[type=py]') !== null")
    assert len(probe.sockets) == 1, "expected exactly one WebSocket"
    assert (
        urllib.parse.urlsplit(probe.sockets[0].url).port
        == urllib.parse.urlsplit(stack["directus_url"]).port
    )
    foreign = [
        url
        for url in probe.requests + probe.worker_requests + [r.url for r in probe.sockets]
        if urllib.parse.urlsplit(url).scheme not in ("data", "blob")
        and urllib.parse.urlsplit(url).hostname not in LOCAL_HOSTS
    ]
    assert foreign == [], f"requests left localhost: {foreign}"
    assert probe.page_errors == []


def test_create_item_round_trip_reaches_the_mpy_and_the_pyodide_page(open_page, stack):
    mpy = ready_page(open_page, stack, "mpy page")
    pyodide = ready_page(open_page, stack, "pyodide page", path=PYODIDE)

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


def test_pyodide_create_item_rejects_bad_input_without_sending(open_page, stack, bad_inputs):
    probe = ready_page(open_page, stack, "pyodide bad input", path=PYODIDE)
    record = probe.sockets[-1]
    for label, args, word in bad_inputs:
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


def test_pyodide_page_reconnects_after_the_socket_drops(open_page, stack):
    """The reconnect backoff runs on the loop's timer: Pyodide's call_later, a setTimeout."""
    probe = open_page("pyodide reconnect", spy_sockets=True)
    probe.goto(pyodide_url(stack))
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


def test_pyodide_page_signs_in_with_email_and_password(open_page, stack):
    """On Pyodide the sign-in goes over urllib, which pyodide-http turns into an
    XMLHttpRequest (POST /auth/login); the socket authenticates with the token it got."""
    probe = open_page("pyodide login")
    probe.goto(
        pyodide_url(stack),
        url=stack["directus_url"],
        email=stack["demo_email"],
        password=stack["demo_password"],
    )
    probe.wait_ready()
    assert "/auth/login" in paths(probe), paths(probe)
    requested = paths(probe)
    assert any(p.endswith("pyodide_http-0.2.2-py3-none-any.whl") for p in requested), requested
    result = probe.create_item(unique("pyodide signed in"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
    assert stack["demo_password"] not in probe.page.url
    assert json.dumps(stack["demo_password"])[1:-1] not in probe.page.content()
    assert probe.page_errors == []


def test_pyodide_page_shows_the_sign_in_refusal(open_page, stack):
    probe = open_page("pyodide wrong password")
    probe.goto(
        pyodide_url(stack),
        url=stack["directus_url"],
        email=stack["demo_email"],
        password="not-" + stack["demo_password"],
    )
    probe.page.wait_for_selector('#problem[data-kind="auth"]', timeout=60_000)
    assert probe.page.locator("#status").get_attribute("data-state") == "error"
    assert "Invalid user credentials" in probe.page.locator("#problem").text_content()


def test_pyodide_page_connects_with_query_parameters(open_page, stack):
    probe = open_page("pyodide query")
    probe.goto(pyodide_url(stack), url=stack["directus_url"], token=stack["token"])
    probe.wait_ready()
    assert stack["token"] not in probe.page.url
    result = probe.create_item(unique("pyodide with query"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
