"""End-to-end tests of the PyScript page (index.html + main.py) against the real local Directus.

Each test opens the page in Debian's Chromium, waits on DOM conditions (no sleep-based
assertions), and checks the page contract: status, subscription marker, rendered items,
window.create_item, the guide's console lines, the token leaving the address bar, and no request
leaving localhost.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import urllib.parse

import pytest

from directus_realtime.protocol import Backoff
from stack.api import DirectusAPI
from tests.browser import BOOT_TIMEOUT_MS, STEP_TIMEOUT_MS
from tests.e2e.pages import PYODIDE, ready_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
GUIDE_ITEMS = [
    ("Hello World!", "Ben"),
    ("Hello Universe!", "Rijk"),
    ("Hello Everyone Everywhere All At Once!", "Kevin"),
]
XSS_TEXT = "<img src=x onerror=alert(1)>"


def unique(text: str) -> str:
    return f"{text} [e2e {secrets.token_hex(4)}]"


def rest_create(stack: dict, item: dict) -> dict:
    """POST {directus_url}/items/messages with the demo user's static token."""
    return DirectusAPI(stack["directus_url"], stack["token"]).post("/items/messages", item)


def ids_in_order(probe, wanted: list[str]) -> list[str]:
    return [row["id"] for row in probe.rendered() if row["id"] in wanted]


# ----- 1. start-up -----


def test_connects_and_subscribes_with_the_local_stack(open_page, stack):
    probe = open_page()
    probe.goto(stack["app_url"])
    probe.wait_ready()

    status = probe.page.locator("#status")
    assert status.get_attribute("data-state") == "connected"
    assert status.text_content().strip(), "the status has no human text"
    assert probe.page.locator("body").get_attribute("data-subscribed") == "true"
    assert len(probe.sockets) == 1, "expected exactly one WebSocket"
    assert (
        urllib.parse.urlsplit(probe.sockets[0].url).port
        == urllib.parse.urlsplit(stack["directus_url"]).port
    )
    assert any(urllib.parse.urlsplit(u).path == "/config.json" for u in probe.requests), (
        "without query parameters the page should read /config.json (the local stack's)"
    )


def test_connects_with_query_parameters_and_hides_the_token(open_page, stack):
    probe = open_page()
    probe.goto(stack["app_url"], url=stack["directus_url"], token=stack["token"])
    probe.wait_ready()

    assert probe.page.locator("#status").get_attribute("data-state") == "connected"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(probe.page.url).query)
    assert "token" not in query, f"token still in the address bar: {probe.page.url}"
    assert stack["token"] not in probe.page.url
    assert stack["token"] not in probe.page.evaluate("location.href")


# ----- 2. the guide's three creates, seen by two pages -----


def test_guide_items_appear_in_order_in_both_pages(open_page, stack):
    page_a = ready_page(open_page, stack, "page A")
    page_b = ready_page(open_page, stack, "page B")
    wanted = [(unique(text), user) for text, user in GUIDE_ITEMS]

    created = []
    for text, user in wanted:
        result = page_a.create_item(text, user)
        assert result["ok"], f"create_item({text!r}, {user!r}) rejected: {result}"
        item = result["value"]
        assert item["text"] == text
        assert item["user"] == user
        assert isinstance(item.get("id"), str) and item["id"]
        assert item.get("date_created"), f"no date_created in {item}"
        created.append(item)
    ids = [item["id"] for item in created]
    assert len(set(ids)) == 3, f"ids are not distinct: {ids}"

    for probe in (page_a, page_b):
        for item_id in ids:
            probe.wait_rendered(item_id)
        assert ids_in_order(probe, ids) == ids, f"{probe.name}: wrong order"
        rows = {row["id"]: row for row in probe.rendered()}
        for item, (text, user) in zip(created, wanted, strict=True):
            row = rows[item["id"]]
            assert (row["text"], row["user"]) == (text, user), f"{probe.name}: {row}"
            assert row["time"], f"{probe.name}: no <time> in row {row}"
            assert len([r for r in probe.rendered() if r["id"] == item["id"]]) == 1


# ----- 3. an item created over REST -----


def test_item_created_over_rest_appears(open_page, stack):
    probe = ready_page(open_page, stack)
    text = unique("Created over REST")
    item = rest_create(stack, {"text": text, "user": "REST"})

    probe.wait_rendered(item["id"])
    row = next(row for row in probe.rendered() if row["id"] == item["id"])
    assert row["text"] == text
    assert row["user"] == "REST"


# ----- 4. text is text, never HTML -----


@pytest.mark.parametrize("writer_path", ["", PYODIDE], ids=["micropython", "pyodide"])
def test_html_in_a_message_is_shown_as_text(open_page, stack, writer_path):
    """Written by either build, read by the page."""
    writer = ready_page(open_page, stack, "writer", path=writer_path)
    reader = ready_page(open_page, stack, "reader")

    result = writer.create_item(XSS_TEXT, "<b>Mallory</b>")
    assert result["ok"], result
    xss_id = result["value"]["id"]
    # Also through REST, so the rendering of another client's item is checked too.
    rest_item = rest_create(stack, {"text": XSS_TEXT, "user": "REST"})
    # A later item that renders after both: by then an <img> would have loaded/failed.
    after = writer.create_item(unique("after the img"), "Ben")
    assert after["ok"], after

    for probe in (writer, reader):
        for item_id in (xss_id, rest_item["id"], after["value"]["id"]):
            probe.wait_rendered(item_id)
        rows = {row["id"]: row for row in probe.rendered()}
        assert rows[xss_id]["text"] == XSS_TEXT
        assert rows[xss_id]["user"] == "<b>Mallory</b>"
        assert rows[rest_item["id"]]["text"] == XSS_TEXT
        assert probe.page.locator("#messages img").count() == 0
        assert probe.page.locator("#messages b").count() == 0
        assert probe.dialogs == [], f"{probe.name}: a dialog fired: {probe.dialogs}"
        assert not [u for u in probe.requests if urllib.parse.urlsplit(u).path.endswith("/x")]


# ----- 5. the guide's console lines -----


def test_console_logs_open_and_messages(open_page, stack):
    probe = ready_page(open_page, stack)
    assert "Connection is open" in probe.console_texts()

    text = unique("console")
    result = probe.create_item(text, "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])

    def logged_data_after(kind: str) -> list:
        """The data logged right after each 'New message of type <kind>' line."""
        out = []
        for index, message in enumerate(probe.console[:-1]):
            if message.text == "New message of type " + kind:
                following = probe.console[index + 1]
                out.append(following.args[0].json_value() if following.args else None)
        return out

    def event_logged() -> bool:
        return any(
            isinstance(data, list) and any(row.get("text") == text for row in data)
            for data in logged_data_after("subscription")
        )

    # (The row shows at once, pending; the subscription's event may come after the answer.)
    try:
        probe.wait_until(event_logged, what="the subscription event of the item")
    except AssertionError:
        subscription_data = logged_data_after("subscription")
        raise AssertionError(
            f"no 'New message of type subscription' followed by the item: {subscription_data}"
        ) from None
    items_data = logged_data_after("items")
    assert any(isinstance(data, dict) and data.get("text") == text for data in items_data), (
        f"no 'New message of type items' followed by the created item: {items_data}"
    )
    assert "Connection has closed" not in probe.console_texts()
    assert "Connection has had an error" not in probe.console_texts()


# Every console.log call: its first argument (as JSON, or the string) and the text of the last
# row in #messages at that moment.
CONSOLE_SPY = """
(() => {
    const write = console.log;
    window.__logged = [];
    console.log = function (...args) {
        const rows = document.querySelectorAll('#messages .message .text');
        window.__logged.push({
            first: typeof args[0] === 'string' ? args[0] : JSON.stringify(args[0]),
            lastRow: rows.length ? rows[rows.length - 1].textContent : null,
        });
        return write.apply(this, args);
    };
})();
"""


def test_the_guide_lines_for_a_new_message_come_in_order_once_its_row_is_shown(open_page, stack):
    """A new message's three console lines (its type, its data, the item) keep the guide's
    order and are written once the row is on the page, not before it (they cost 0.3-0.7 ms
    each with DevTools open)."""
    probe = open_page("console order")
    probe.page.add_init_script(CONSOLE_SPY)
    probe.goto(stack["app_url"])
    probe.wait_ready()
    text = unique("console order")
    result = probe.create_item(text, "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
    probe.wait_until(
        lambda: sum(text in e["first"] for e in probe.page.evaluate("window.__logged")) >= 3,
        what="the console lines about the new message",
    )
    logged = probe.page.evaluate("window.__logged")
    start = next(
        n
        for n, entry in enumerate(logged[:-1])
        if entry["first"] == "New message of type subscription" and text in logged[n + 1]["first"]
    )
    lines = logged[start : start + 3]
    assert text in lines[1]["first"] and text in lines[2]["first"], lines
    assert json.loads(lines[1]["first"])[0]["text"] == text  # the data: a list of rows
    assert json.loads(lines[2]["first"])["text"] == text  # the item
    assert [entry["lastRow"] for entry in lines] == [text] * 3, lines


def test_console_logs_close_and_the_page_reconnects(open_page, stack):
    probe = ready_page(open_page, stack, spy_sockets=True)
    # Close the page's own socket from inside the page, as a dropped connection would.
    probe.page.evaluate("window.__e2e_sockets[0].close()")

    probe.page.wait_for_function("() => window.__e2e_sockets.length >= 2", timeout=STEP_TIMEOUT_MS)
    probe.page.wait_for_selector('#status[data-state="connected"]', timeout=STEP_TIMEOUT_MS)
    assert "Connection has closed" in probe.console_texts()
    assert probe.console_texts().count("Connection is open") >= 2

    # The subscription came back: an item created after the reconnect still shows up.
    item = rest_create(stack, {"text": unique("after reconnect"), "user": "REST"})
    probe.wait_rendered(item["id"])


def test_console_logs_an_error_when_directus_is_unreachable(open_page, stack):
    probe = open_page()
    # A local port where nothing listens: the socket fails to open.
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    probe.goto(stack["app_url"], url=f"http://127.0.0.1:{port}", token=stack["token"])
    probe.page.wait_for_function(
        "() => ['reconnecting', 'offline', 'error']"
        ".includes(document.querySelector('#status').dataset.state)",
        timeout=BOOT_TIMEOUT_MS,
    )
    probe.page.wait_for_function("() => document.body.dataset.subscribed !== 'true'", timeout=1000)
    assert "Connection has had an error" in probe.console_texts()
    assert "Connection is open" not in probe.console_texts()


# ----- 6. nothing leaves localhost -----


def test_no_request_leaves_localhost(open_page, stack):
    probe = ready_page(open_page, stack)
    result = probe.create_item(unique("local only"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])

    urls = probe.requests + probe.worker_requests + [record.url for record in probe.sockets]

    def host(url: str) -> str | None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "data":
            return "127.0.0.1"  # inline, fetched from nowhere
        if parts.scheme == "blob":
            return urllib.parse.urlsplit(url[len("blob:") :]).hostname
        return parts.hostname

    assert any(urllib.parse.urlsplit(u).path.endswith("micropython.wasm") for u in urls)
    assert probe.sockets, "no WebSocket seen"
    foreign = [u for u in urls if host(u) not in LOCAL_HOSTS]
    assert foreign == [], f"requests left localhost: {foreign}"


def test_the_page_runs_the_library_from_micropython_bytecode(open_page, stack):
    """index.html's [files] are .mpy, compiled by the page server (stack/mpy.py) and sent in
    one bundle (stack/pages.py): the page asks for it and for no Python source."""
    probe = ready_page(open_page, stack)
    paths = {urllib.parse.urlsplit(url).path for url in probe.requests}
    assert "/bytecode.mpy" in paths
    assert [path for path in paths if path.endswith(".py")] == []
    assert [path for path in paths if path.startswith(("/directus_realtime/", "/page/"))] == []


# ----- 7. create_item refuses bad input and sends nothing -----


def is_bookkeeping(frame) -> bool:
    """Frames the page may send on its own: heartbeat answers and its catch-up reads."""
    try:
        message = json.loads(frame)
    except (TypeError, ValueError):
        return False
    if message.get("type") in ("ping", "pong"):
        return True
    return message.get("type") == "items" and message.get("action") == "read"


def test_create_item_rejects_bad_input_without_sending(open_page, stack, bad_inputs):
    probe = ready_page(open_page, stack)
    record = probe.sockets[-1]
    sent_before = len(record.sent)

    problems = []
    for label, args, word in bad_inputs:
        result = probe.create_item(*args)
        if result["ok"]:
            problems.append(f"{label}: create_item{tuple(args)!r} resolved: {result}")
        elif not result["isError"]:
            problems.append(f"{label}: rejected with a non-Error: {result}")
        elif word not in result["message"].lower():
            problems.append(f"{label}: message does not name {word!r}: {result['message']!r}")
    assert problems == []

    # Control: a valid create right after sends its frame, and it is the only frame sent since
    # the bad calls (frames are reported in order), so the bad calls sent nothing.
    good = probe.create_item(unique("valid after bad input"), "Ben")
    assert good["ok"], good
    good_text = good["value"]["text"]
    probe.wait_until(
        lambda: any(good_text in str(frame) for frame in record.sent[sent_before:]),
        what="the valid create's frame",
    )
    since = [frame for frame in record.sent[sent_before:] if not is_bookkeeping(frame)]
    assert len(since) == 1, f"frames sent since the bad calls: {since}"
    assert json.loads(since[0])["data"]["text"] == good_text


# A busy loop that ends by itself.
BUSY = "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end: pass\n"


def test_create_item_answers_every_call_under_cpu_load(open_page, stack, bad_inputs):
    """MicroPython's FFI could collect the handle of the Promise that create_item returns while
    it was being handed to JS: with the machine busy, about one call in 13 got ``undefined``
    (and its rejection surfaced as a page error). Three busy processes make the load; every
    call of 10 rounds (5 bad inputs and 1 good) on one page must get its answer."""
    probe = ready_page(open_page, stack, "under load")
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(3)]
    try:
        for n in range(10):
            for label, args, _ in bad_inputs:
                result = probe.create_item(*args)
                assert not result["ok"] and result["isError"], (n, label, result)
            result = probe.create_item(unique(f"under load {n}"), "Ben")
            assert result["ok"] and (result["value"] or {}).get("id"), (n, result)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert probe.page_errors == []


# ----- 9. a refused token -----


def test_wrong_token_shows_error_and_does_not_retry(open_page, stack):
    probe = open_page()
    probe.goto(stack["app_url"], token="wrong")
    probe.page.wait_for_selector('#status[data-state="error"]', timeout=BOOT_TIMEOUT_MS)
    assert "token" not in urllib.parse.parse_qs(urllib.parse.urlsplit(probe.page.url).query)

    status_text = probe.page.locator("#status").text_content().strip()
    assert status_text.lower() != "error", "the error status does not say what went wrong"
    assert any(
        word in status_text.lower() for word in ("credential", "token", "auth", "invalid")
    ), f"status text does not mention the failure: {status_text!r}"

    # An absence is shown by watching: once the refused socket is closed, a retry would come
    # within the backoff's first ceiling (the page's client keeps the default); watch twice it.
    probe.wait_until(lambda: probe.sockets and probe.sockets[-1].closed, what="the refused socket")
    probe.page.wait_for_timeout(2 * Backoff().delay * 1000)
    assert len(probe.sockets) == 1, f"sockets opened: {[s.url for s in probe.sockets]}"
    assert probe.page.locator("#status").get_attribute("data-state") == "error"
    assert probe.page.locator("body").get_attribute("data-subscribed") != "true"


CSP_SPY = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def test_page_runs_under_its_content_security_policy(open_page, stack):
    probe = open_page("csp")
    probe.context.add_init_script(CSP_SPY)
    response = probe.page.goto(stack["app_url"], wait_until="domcontentloaded")
    policy = response.headers.get("content-security-policy", "")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives.get("default-src") == "'self'", policy
    connect = directives.get("connect-src", "").split()
    assert "'self'" in connect and "*" not in connect and "https:" not in connect, policy
    assert all(
        source == "'self'" or urllib.parse.urlsplit(source).hostname in LOCAL_HOSTS
        for source in connect
    ), policy
    probe.wait_ready()
    result = probe.create_item(unique("under CSP"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
    # A connection to any other origin is refused by the policy, not just by the network.
    blocked = probe.page.evaluate(
        "fetch('https://example.com/').then(() => 'sent', (e) => 'blocked')"
    )
    assert blocked == "blocked"
    violations = probe.page.evaluate("window.__cspViolations")
    assert violations == ["connect-src https://example.com/"], violations


XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<svg onload=alert(1)>",
    '"><img src=x onerror=alert(1)>',
    "<iframe src=javascript:alert(1)></iframe>",
    "<a href=javascript:alert(1)>click</a>",
    "<body onload=alert(1)>",
    "{{constructor.constructor('alert(1)')()}}",
    "<style>*{display:none}</style>",
]


def test_classic_xss_payloads_stay_text_in_text_and_user(open_page, stack):
    probe = ready_page(open_page, stack, "xss")
    created = []
    for payload in XSS_PAYLOADS:
        result = probe.create_item(unique(payload), payload)
        assert result["ok"], result
        created.append(result["value"])
    for item in created:
        probe.wait_rendered(item["id"])
    rows = {row["id"]: row for row in probe.rendered()}
    for item in created:
        assert rows[item["id"]]["text"] == item["text"]
        assert rows[item["id"]]["user"] == item["user"]
    markup = probe.page.eval_on_selector_all(
        "#messages script, #messages svg, #messages iframe, #messages a, #messages style, "
        "#messages img, #messages body",
        "els => els.length",
    )
    assert markup == 0
    assert probe.dialogs == []
    assert probe.page.evaluate("getComputedStyle(document.body).display") != "none"


def test_the_token_never_reaches_the_console_or_the_dom(open_page, stack):
    probe = open_page("secret")
    probe.goto(stack["app_url"], url=stack["directus_url"], token=stack["token"])
    probe.wait_ready()
    result = probe.create_item(unique("secret check"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
    token = stack["token"]
    assert all(token not in text for text in probe.console_texts())
    assert token not in probe.page.content()
    assert token not in probe.page.url
    assert token not in probe.page.evaluate("location.href + document.title")
