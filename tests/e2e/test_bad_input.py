"""The page against bad input: query parameters, saved values and server frames of the wrong
shape, and huge ones.

For every input the page must end in a named state: ``#status[data-state]`` is ``connected``
(subscribed), or ``error`` with a reason on screen (the problem screen, or a reason in the
status line); no secret (token, password, email) may stay in the address bar; and neither the
console nor the page's errors nor the page itself show a Python traceback.

Frames of the wrong shape are injected into the page's real socket to the real Directus:
Playwright's ``route_web_socket`` forwards every frame both ways and adds the test's own.

"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from stack.api import DirectusAPI
from tests.browser import STEP_TIMEOUT_MS

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# The longest a page may take from navigation to its named state (boot included).
SETTLE_TIMEOUT_MS = 30_000
SECRETS = ("token", "password", "email")
OUTBOX_KEY = "directus-realtime:outbox"
SETTINGS_KEY = "directus-realtime:settings"

# True once the page is in a named state: connected and subscribed, or an error with a reason.
NAMED_STATE_JS = """() => {
    const status = document.querySelector('#status');
    const state = status && status.dataset.state;
    if (state === 'connected') return document.body.dataset.subscribed === 'true';
    if (state !== 'error') return false;
    const problem = document.querySelector('#problem');
    const shown = problem && !problem.hidden && problem.textContent.trim().length > 0;
    return shown || status.textContent.includes(':');
}"""

NO_SECRET_PARAM_JS = """(names) => {
    const params = new URLSearchParams(location.search);
    return !names.some(name => params.has(name));
}"""


def app_url(stack: dict) -> str:
    url = stack["app_url"]
    return url if url.endswith("/") else url + "/"


def seed_storage(probe: Any, stack: dict, local: dict | None = None, session: dict | None = None):
    """Put values into the page origin's storages before the page first runs (from a static
    file of the same origin, so that no page boots with the storages empty)."""
    probe.page.goto(app_url(stack) + "static/app.css", wait_until="domcontentloaded")
    probe.page.evaluate(
        """([local, session]) => {
            for (const [key, value] of Object.entries(local)) localStorage.setItem(key, value);
            for (const [key, value] of Object.entries(session)) sessionStorage.setItem(key, value);
        }""",
        [local or {}, session or {}],
    )


def wait_named_state(probe: Any, timeout: float = SETTLE_TIMEOUT_MS) -> str:
    """Wait for a named state; returns it (``connected`` or ``error``)."""
    try:
        probe.page.wait_for_function(NAMED_STATE_JS, timeout=timeout)
    except Exception as error:
        status = probe.page.evaluate(
            "() => { const s = document.querySelector('#status');"
            " return s ? [s.dataset.state, s.textContent] : null; }"
        )
        raise AssertionError(
            f"the page did not reach a named state within {timeout / 1000:.0f} s; "
            f"#status is {status}"
        ) from error
    return probe.page.evaluate("document.querySelector('#status').dataset.state")


def screen_text(probe: Any) -> str:
    """The status line and the problem screen, as the user reads them."""
    return probe.page.evaluate(
        "() => [document.querySelector('#status').textContent,"
        " document.querySelector('#problem').hidden ? '' :"
        " document.querySelector('#problem').textContent].join(' | ')"
    )


def assert_no_secret_in_address_bar(probe: Any, secret_values: tuple[str, ...] = ()) -> None:
    """No token, password or email parameter left (waited for: the page takes them out as soon
    as it starts), and none of ``secret_values`` anywhere in ``location.href``."""
    try:
        probe.page.wait_for_function(NO_SECRET_PARAM_JS, arg=list(SECRETS), timeout=5_000)
    except Exception as error:
        href = probe.page.evaluate("location.href")
        raise AssertionError(f"a secret is still in the address bar: {href}") from error
    href = probe.page.evaluate("location.href")
    for value in secret_values:
        assert value not in href, f"{value!r} is still in the address bar: {href}"


def tracebacks(probe: Any) -> list[str]:
    """Python tracebacks in the console, in the page's errors or on the page itself."""
    found = [text for text in probe.console_texts() if "Traceback" in text]
    found += [text for text in probe.page_errors if "Traceback" in text]
    body = probe.page.evaluate("document.body.innerText")
    if "Traceback" in body:
        found.append("on the page: " + body[body.index("Traceback") :][:500])
    return found


def assert_sane_end(probe: Any, secret_values: tuple[str, ...] = ()) -> str:
    """The three rules of the suite; returns the named state."""
    state = wait_named_state(probe)
    assert_no_secret_in_address_bar(probe, secret_values)
    found = tracebacks(probe)
    assert not found, "Python traceback:\n" + "\n".join(found)
    return state


def open_with(
    open_page: Any,
    stack: dict,
    query: str = "",
    *,
    local: dict | None = None,
    session: dict | None = None,
    name: str = "page",
) -> Any:
    probe = open_page(name)
    if local or session:
        seed_storage(probe, stack, local, session)
    probe.page.goto(app_url(stack) + query, wait_until="domcontentloaded")
    return probe


def new_text(label: str) -> str:
    return f"bad-input {label} {uuid.uuid4().hex[:10]}"


# ----- query parameters -----------------------------------------------------------------------

SECRET = "SECRET-" + uuid.uuid4().hex[:12]  # a token value the address bar must lose

QUERIES = [
    # (id, query string, the state it must end in, secret values)
    ("url without a scheme", f"?url=127.0.0.1:8055&token={SECRET}", "error", (SECRET,)),
    ("url with a bad port", f"?url=http://127.0.0.1:99999&token={SECRET}", "error", (SECRET,)),
    ("javascript url", "?url=javascript:alert(1)&token=X", "error", ()),
    ("empty url", f"?url=&token={SECRET}", "error", (SECRET,)),  # the token refused locally
    ("empty token", "?token=", "connected", ()),
    (
        "password and email",
        f"?password={SECRET}&email=someone%40example.com",
        None,
        (SECRET, "someone%40example.com", "someone@example.com"),
    ),
    ("history -1", "?history=-1", "connected", ()),
    ("history abc", "?history=abc", "connected", ()),
    ("history 99999999", "?history=99999999", "connected", ()),
    ("history 1e3", "?history=1e3", "connected", ()),
]


@pytest.mark.parametrize(
    ("query", "expected", "secret_values"),
    [pytest.param(q, e, s, id=label) for label, q, e, s in QUERIES],
)
def test_a_bad_query_parameter_ends_in_a_named_state_and_hides_secrets(
    open_page, stack, query, expected, secret_values
):
    probe = open_with(open_page, stack, query)
    state = assert_sane_end(probe, secret_values)
    if expected is not None:
        assert state == expected, f"{query}: ended {state!r} ({screen_text(probe)})"


def test_history_minus_one_reads_in_bounded_pages(open_page, stack):
    """``?history=-1`` once read the whole collection in one request (limit -1): every read of
    rows the page sends (its live query's subscription, and its reads of rows) asks for 1 to
    1,001 items; an aggregate (the live query's check) answers one row whatever it counts."""
    probe = open_with(open_page, stack, "?history=-1")
    assert assert_sane_end(probe) == "connected"

    def reads() -> list[dict]:
        return [
            m
            for m in probe.frames_sent()
            if isinstance(m, dict)
            and (
                (m.get("type") == "items" and m.get("action") == "read")
                or m.get("type") == "subscribe"
            )
            and "aggregate" not in (m.get("query") or {})
        ]

    probe.wait_until(reads, what="the page's first read")
    limits = [(m.get("query") or {}).get("limit") for m in reads()]
    bad = [limit for limit in limits if not (isinstance(limit, int) and 1 <= limit <= 1001)]
    assert not bad, f"reads with a limit outside 1-1001: {bad} (all: {limits})"
    probe.page.wait_for_selector('body[data-history="true"]', timeout=STEP_TIMEOUT_MS)
    assert not tracebacks(probe)


# ----- saved values -----------------------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000  # a list nesting 5,000 levels

SAVED = [
    # (id, localStorage, sessionStorage)
    ("outbox object", {OUTBOX_KEY: '{"a":1}'}, None),
    ("outbox numbers", {OUTBOX_KEY: "[1,2,3]"}, None),
    ("outbox not json", {OUTBOX_KEY: "not json"}, None),
    ("outbox entry without text", {OUTBOX_KEY: '[{"id":5}]'}, None),
    ("outbox nesting 5000 deep", {OUTBOX_KEY: DEEP}, None),
    ("session settings {", None, {SETTINGS_KEY: "{"}),
    ("session settings []", None, {SETTINGS_KEY: "[]"}),
    ("session settings url 5", None, {SETTINGS_KEY: '{"url":5}'}),
    ("local settings {", {SETTINGS_KEY: "{"}, None),
    ("local settings []", {SETTINGS_KEY: "[]"}, None),
    ("local settings url 5", {SETTINGS_KEY: '{"url":5}'}, None),
    ("settings nesting 5000 deep", {SETTINGS_KEY: DEEP}, None),
]


@pytest.mark.parametrize(
    ("local", "session"), [pytest.param(lo, se, id=label) for label, lo, se in SAVED]
)
def test_a_saved_value_of_the_wrong_shape_is_dropped_and_the_page_connects(
    open_page, stack, local, session
):
    """A saved value of the wrong shape is dropped (with a console note): the page connects to
    the local stack as if it were not there."""
    probe = open_with(open_page, stack, local=local, session=session)
    state = assert_sane_end(probe)
    assert state == "connected", f"ended {state!r} ({screen_text(probe)})"
    warnings = [line.text for line in probe.console if line.type == "warning"]
    assert any("Saved" in text or "saved" in text for text in warnings), (
        f"no console note about the dropped value; warnings: {warnings}"
    )


# ----- server frames of the wrong shape -------------------------------------------------------

BIG = "x" * (2 * 1024 * 1024)
FRAMES = [
    pytest.param("not json", id="not json"),
    pytest.param("[]", id="a list"),
    pytest.param("null", id="null"),
    pytest.param('{"type":"subscription","uid":[1]}', id="subscription with a list uid"),
    pytest.param('{"type":"items","uid":{"a":1}}', id="items with an object uid"),
    pytest.param(
        '{"type":"subscription","event":"create","uid":"1","data":"oops"}',
        id="subscription event with data not a list",
    ),
    pytest.param('{"type":"auth","status":"ok"}', id="auth ok out of turn"),
    pytest.param(
        '{"type":"items","status":"error","error":{"code":"FORBIDDEN"}}',
        id="error without a uid",
    ),
    pytest.param(BIG, id="2 MB of text"),
    pytest.param(json.dumps(BIG), id="2 MB json string"),
]


@pytest.mark.parametrize("frame", FRAMES)
def test_a_server_frame_of_the_wrong_shape_leaves_the_page_connected_on_its_socket(
    open_page, stack, frame
):
    """The frame goes to the page on its real socket to the real Directus, between real ones:
    the page stays connected on the same socket and shows a message created afterwards."""
    probe = open_page("page")
    routes: list[Any] = []

    def forward(ws: Any) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(ws.send)
        routes.append(ws)

    probe.page.route_web_socket(re.compile(r"/websocket"), forward)
    probe.page.goto(app_url(stack), wait_until="domcontentloaded")
    assert assert_sane_end(probe) == "connected"
    probe.page.wait_for_selector('body[data-history="true"]', timeout=STEP_TIMEOUT_MS)
    assert len(routes) == 1
    routes[0].send(frame)

    api = DirectusAPI(stack["directus_url"], stack["token"])
    item = api.post("/items/messages", {"text": new_text("after a bad frame"), "user": "tests"})
    probe.wait_rendered(str(item["id"]))
    assert_sane_end(probe)
    state = probe.page.evaluate("document.querySelector('#status').dataset.state")
    assert state == "connected", f"ended {state!r} ({screen_text(probe)})"
    assert len(routes) == 1, f"the page opened {len(routes)} sockets: it reconnected"
