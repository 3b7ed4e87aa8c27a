"""End-to-end tests of pyodide.html: the page (index.html, on MicroPython) on Pyodide instead,
against the real local Directus. The page server writes pyodide.html from index.html.

The client (protocol, asyncio driver, browser WebSocket transport) is the same Python code that
MicroPython and CPython run; these tests check the page contract on Pyodide (sign-in with
email and password over urllib and pyodide-http included), and that a Pyodide page and a
MicroPython page see each other's writes.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.parse
import urllib.request

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


# ----- the memory snapshot (stack/snapshot.py, static/pyodide-loader.mjs) -----

RESTORED = "pyodide-loader: restored from the snapshot"
REFUSED = "pyodide-loader: snapshot refused, started without it"
SNAPSHOT_LINK = re.compile(r'<link rel="preload" href="\./([^"]+)" [^>]*data-pyodide-snapshot>')


def snapshot_url(stack: dict) -> str:
    """The snapshot pyodide.html links (``make setup`` builds it)."""
    with urllib.request.urlopen(pyodide_url(stack)) as response:
        found = SNAPSHOT_LINK.search(response.read().decode())
    assert found, "pyodide.html links no memory snapshot: run `make setup`"
    return urllib.parse.urljoin(stack["app_url"], found.group(1))


def marks(probe, name: str) -> int:
    return probe.page.evaluate("name => performance.getEntriesByName(name).length", name)


def test_the_pyodide_page_starts_from_its_memory_snapshot(open_page, stack):
    url = snapshot_url(stack)
    probe = ready_page(open_page, stack, "pyodide snapshot", path=PYODIDE)
    assert url in probe.requests + probe.worker_requests
    assert (marks(probe, RESTORED), marks(probe, REFUSED)) == (1, 0)
    result = probe.create_item(unique("from the snapshot"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
    assert probe.page_errors == []


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 404, "body": "not found"},
        # a snapshot of another Pyodide build: refused once Pyodide's wasm is running
        {"status": 200, "body": b"\0" * 4096, "content_type": "application/octet-stream"},
    ],
    ids=["missing", "foreign"],
)
def test_a_snapshot_that_cannot_be_used_leaves_a_pyodide_page_that_starts_without_it(
    open_page, stack, answer
):
    url = snapshot_url(stack)
    probe = open_page("pyodide without snapshot")
    probe.context.route(url, lambda route: route.fulfill(**answer))
    probe.goto(pyodide_url(stack))
    probe.wait_ready()
    assert (marks(probe, RESTORED), marks(probe, REFUSED)) == (0, 1)
    assert any("snapshot could not be used" in text for text in probe.console_texts())
    result = probe.create_item(unique("started without the snapshot"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
    assert probe.page_errors == []


# Pyodide through the page's loader alone, on the page server's origin (the HTML is handed to
# the browser by the test, with no Content-Security-Policy, so it may hold a module script).
LOADER_PROBE = """<!doctype html>
<link rel="preload" href="%s" as="fetch" crossorigin data-pyodide-snapshot>
<script type="module">
import { loadPyodide } from "./static/pyodide-loader.mjs";
const pyodide = await loadPyodide();
window.__python = pyodide.runPython(
  "import json, random, time; json.dumps([[random.random(), random.random()], "
  + "[time.timezone, time.altzone, time.daylight, list(time.tzname), time.strftime('%%Z')]])"
);
</script>
"""


def test_each_start_from_the_snapshot_has_its_own_random_numbers_and_the_visitors_time_zone(
    browser, stack
):
    """The snapshot holds `random` as it was seeded, and the time zone of the machine that made
    it (UTC): after each restore the loader seeds again and asks for the zone again."""
    url = snapshot_url(stack)
    probe_url = urllib.parse.urljoin(stack["app_url"], "loader-probe.html")
    context = browser.new_context(timezone_id="Australia/Sydney")
    try:
        context.route(
            probe_url,
            lambda route: route.fulfill(body=LOADER_PROBE % url, content_type="text/html"),
        )
        page = context.new_page()
        seen = []
        for _ in range(2):
            page.goto(probe_url)
            page.wait_for_function("window.__python !== undefined", timeout=120_000)
            restored = "name => performance.getEntriesByName(name).length"
            assert page.evaluate(restored, RESTORED) == 1
            seen.append(json.loads(page.evaluate("window.__python")))
    finally:
        context.close()
    (first, zone_1), (second, zone_2) = seen
    # Sydney: UTC+10, and +11 in (southern) summer, which the January of each year is
    sydney = [-10 * 3600, -11 * 3600, 1, ["UTC+1000", "UTC+1100"]]
    assert zone_1[:4] == zone_2[:4] == sydney, seen
    assert zone_1[4] in ("UTC+1000", "UTC+1100"), seen  # (strftime: the C library's names)
    assert len(set(first + second)) == 4, seen
