"""End-to-end tests of what the page adds to the guide: history, load older, edits and deletes
followed live, the settings panel, and the error screens (unreachable, realtime off, refused
sign-in). Real Directus, real Chromium; no timing assertions."""

from __future__ import annotations

import json
import secrets
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from stack import directus as local_directus
from tests.browser import BOOT_TIMEOUT_MS, STEP_TIMEOUT_MS
from tests.e2e.pages import ready_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REALTIME_OFF_PORT = 8250


def rest(stack: dict, method: str, path: str, body=None, token: str | None = None):
    request = urllib.request.Request(
        stack["directus_url"] + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Authorization": "Bearer " + (token or stack["token"]),
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw)["data"] if raw else None


def marker() -> str:
    return "product-" + secrets.token_hex(4)


def row_text(probe, item_id: str):
    return probe.page.evaluate(
        'id => { const r = document.querySelector(`li.message[data-id="${id}"] .text`);'
        " return r ? r.textContent : null; }",
        item_id,
    )


def test_history_shows_the_latest_messages_oldest_first_and_loads_older(open_page, stack):
    tag = marker()
    rows = [{"text": f"{tag} #{n:02d}", "user": "history"} for n in range(12)]
    for row in rows:  # one by one, so date_created increases
        rest(stack, "POST", "/items/messages", row)
    probe = open_page("history")
    probe.goto(stack["app_url"], history="5")
    probe.page.wait_for_selector('body[data-history="true"]', timeout=BOOT_TIMEOUT_MS)
    shown = [r["text"] for r in probe.rendered() if r["text"].startswith(tag)]
    assert shown == [f"{tag} #{n:02d}" for n in range(7, 12)]
    probe.page.click("#load-older")
    probe.wait_until(
        lambda: len([r for r in probe.rendered() if r["text"].startswith(tag)]) == 10,
        what="five older messages",
    )
    shown = [r["text"] for r in probe.rendered() if r["text"].startswith(tag)]
    assert shown == [f"{tag} #{n:02d}" for n in range(2, 12)]


def test_updates_change_a_message_in_place_and_deletes_remove_it(open_page, stack):
    probe = ready_page(open_page, stack, "edits")
    result = probe.create_item(marker() + " before", "Ben")
    assert result["ok"], result
    item_id = result["value"]["id"]
    probe.wait_rendered(item_id)
    rest(
        stack,
        "PATCH",
        f"/items/messages/{item_id}",
        {"text": "after the edit"},
        token=stack["editor_token"],
    )
    probe.wait_until(lambda: row_text(probe, item_id) == "after the edit", what="the edit")
    assert [r["id"] for r in probe.rendered()].count(item_id) == 1
    rest(stack, "DELETE", f"/items/messages/{item_id}", token=stack["editor_token"])
    probe.wait_until(lambda: row_text(probe, item_id) is None, what="the delete")


# #messages' children: each chunk's tag, its role and the date_created of its rows.
CHUNKS_JS = """() => [...document.querySelector('#messages').children].map((chunk) => ({
    tag: chunk.tagName, role: chunk.getAttribute('role'),
    created: [...chunk.children].map((row) => row.dataset.created),
    ids: [...chunk.children].map((row) => row.dataset.id),
}))"""


def test_rows_come_in_chunks_of_up_to_100_in_date_order_and_an_emptied_chunk_goes(open_page, stack):
    """#messages holds its rows in ol.chunk elements of at most 100 (the browser skips the
    chunks out of view). A window of 150 stays in date_created order across chunks as 60 live
    messages push the oldest out; deleting every row of a chunk removes the chunk too (and the
    window takes in the older rows that move into it)."""
    tag = marker()
    rest(
        stack, "POST", "/items/messages", [{"text": f"{tag} h{n}", "user": "c"} for n in range(150)]
    )
    probe = open_page("chunks")
    probe.goto(stack["app_url"], history="150")
    probe.page.wait_for_selector('body[data-history="true"]', timeout=BOOT_TIMEOUT_MS)
    chunks = probe.page.evaluate(CHUNKS_JS)
    assert [len(c["ids"]) for c in chunks] == [100, 50]
    assert {(c["tag"], c["role"]) for c in chunks} == {("OL", "none")}
    live = [f"{tag} live {n}" for n in range(60)]
    for text in live:
        result = probe.create_item(text, "c")
        assert result["ok"], result
    probe.wait_until(
        lambda: (
            [r["text"] for r in probe.rendered()][-60:] == live and len(probe.rendered()) == 150
        ),
        what="the 60 live messages, the window still the latest 150",
    )
    chunks = probe.page.evaluate(CHUNKS_JS)
    assert [len(c["ids"]) for c in chunks] == [40, 100, 10]  # the oldest 60 left the window
    created = [when for chunk in chunks for when in chunk["created"]]
    assert created == sorted(created)

    rest(stack, "DELETE", "/items/messages", chunks[-1]["ids"], token=stack["editor_token"])
    probe.wait_until(
        lambda: [len(c["ids"]) for c in probe.page.evaluate(CHUNKS_JS)] == [50, 100],
        what="the last chunk gone with its 10 rows, 10 older rows back in the window",
    )
    created = [when for chunk in probe.page.evaluate(CHUNKS_JS) for when in chunk["created"]]
    assert created == sorted(created)


def test_compose_form_sends_a_message(open_page, stack):
    probe = ready_page(open_page, stack, "compose")
    text = marker() + " from the form"
    probe.page.fill("#compose input[name=user]", "Form user")
    probe.page.fill("#compose input[name=text]", text)
    probe.page.press("#compose input[name=text]", "Enter")
    probe.wait_until(
        lambda: any(r["text"] == text and r["user"] == "Form user" for r in probe.rendered()),
        what="the composed message",
    )
    assert probe.page.input_value("#compose input[name=text]") == ""
    count = len(probe.rendered())
    probe.page.fill("#compose input[name=text]", "   ")  # whitespace: refused, nothing sent
    probe.page.press("#compose input[name=text]", "Enter")
    probe.page.wait_for_selector("#compose .error:has-text('text')", timeout=STEP_TIMEOUT_MS)
    assert len(probe.rendered()) == count


# Where the newest row is: its top and bottom, the sticky compose form's top, the scroll offset.
NEWEST_ROW_JS = """() => {
    const row = [...document.querySelectorAll('#messages .message')].at(-1).getBoundingClientRect();
    const compose = document.querySelector('#compose').getBoundingClientRect();
    return {top: row.top, bottom: row.bottom, composeTop: compose.top, scrollY: window.scrollY,
            id: [...document.querySelectorAll('#messages .message')].at(-1).dataset.id};
}"""
ROW_JS = """(id) => ({top: document.querySelector(`.message[data-id="${id}"]`)
                     .getBoundingClientRect().top})"""


@pytest.mark.parametrize(
    ("history", "width"), [("100", 900), ("150", 900), ("1000", 900), ("100", 390)]
)
def test_the_page_opens_with_the_newest_message_in_view(open_page, stack, history, width):
    """On load the list ends at the newest message, shown whole above the sticky compose form,
    with the history in one chunk, two, or ten, and on a phone (where the form takes two
    lines)."""
    from bench.seed import ensure_messages

    assert ensure_messages(stack, int(history), say=lambda _: None) >= int(history)
    probe = open_page("opens at the bottom")
    probe.page.set_viewport_size({"width": width, "height": 700})
    probe.goto(stack["app_url"], history=history)
    probe.page.wait_for_selector(
        'body[data-history="true"]', state="attached", timeout=BOOT_TIMEOUT_MS
    )
    probe.page.wait_for_function(
        "() => { const r = [...document.querySelectorAll('#messages .message')].at(-1)"
        ".getBoundingClientRect(); return r.bottom <= document.querySelector('#compose')"
        ".getBoundingClientRect().top && r.top >= 0; }",
        timeout=STEP_TIMEOUT_MS,
    )
    assert len(probe.rendered()) == int(history)


def test_new_messages_are_followed_at_the_bottom_and_leave_a_reader_above_in_place(
    open_page, stack
):
    """At the bottom of the list, each new message scrolls into view above the sticky compose
    form; a reader scrolled up to older messages stays where they are."""
    probe = ready_page(open_page, stack, "follow")
    tag = marker()
    for n in range(12):  # enough rows to scroll, whatever the history holds
        rest(stack, "POST", "/items/messages", {"text": f"{tag} fill {n}", "user": "follow"})
    probe.wait_until(
        lambda: len([r for r in probe.rendered() if r["text"].startswith(tag)]) == 12,
        what="the rows that make the page scroll",
    )
    probe.page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight)")
    for n in range(3):
        result = probe.create_item(f"{tag} at the bottom {n}", "follow")
        assert result["ok"], result
        probe.wait_rendered(result["value"]["id"])
        probe.page.wait_for_function(
            "() => { const r = [...document.querySelectorAll('#messages .message')].at(-1)"
            ".getBoundingClientRect(); return r.bottom <= document.querySelector('#compose')"
            ".getBoundingClientRect().top && r.top >= 0; }",
            timeout=STEP_TIMEOUT_MS,
        )
    probe.page.evaluate("window.scrollBy(0, -300)")
    probe.page.wait_for_timeout(100)  # (the scroll is applied at the next frame)
    reading = probe.page.evaluate(NEWEST_ROW_JS)["id"]  # the row the reader has in view
    before = probe.page.evaluate(ROW_JS, reading)
    result = probe.create_item(f"{tag} while reading above", "follow")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])
    probe.page.wait_for_timeout(100)  # a frame or more: time for a scroll, if one came
    # The window is the latest 100: the oldest row left at the top, and the browser's scroll
    # anchoring keeps what the reader sees in place (scrollY itself moves by that row).
    moved = probe.page.evaluate(ROW_JS, reading)["top"] - before["top"]
    assert abs(moved) < 2, f"the row in view moved {moved} px (a row is about 50 px)"
    after = probe.page.evaluate(NEWEST_ROW_JS)
    assert after["top"] > after["composeTop"], (before, after)  # the new row is out of view


# Records every localStorage write of the outbox's key (installed before the page's scripts).
OUTBOX_SPY = """(() => {
    window.__outboxWrites = [];
    for (const name of ['setItem', 'removeItem']) {
        const original = Storage.prototype[name];
        Storage.prototype[name] = function (key, ...rest) {
            if (key === 'directus-realtime:outbox') window.__outboxWrites.push(name);
            return original.call(this, key, ...rest);
        };
    }
})();"""


def test_answered_writes_never_touch_local_storage(open_page, stack):
    """The outbox is saved behind: writes that Directus answers at once (well within
    OUTBOX_DELAY_MS) are never written to localStorage, not even when its timer fires.
    tests/faults covers the writes that go unanswered."""
    probe = open_page("outbox")
    probe.page.add_init_script(OUTBOX_SPY)
    probe.goto(stack["app_url"])
    probe.wait_ready()
    tag = marker()
    first_write = time.monotonic()
    for n in range(5):
        result = probe.create_item(f"{tag} #{n}", "outbox")
        assert result["ok"], result
    # An absence is shown by watching: the outbox's timer starts at the first write and fires
    # OUTBOX_DELAY_MS (1 s) later; wait until then, and a little for a late timer.
    probe.page.wait_for_timeout(max(0.0, first_write + 1.5 - time.monotonic()) * 1000)
    assert probe.page.evaluate("window.__outboxWrites") == []
    assert probe.page.evaluate("localStorage.getItem('directus-realtime:outbox')") is None
    shown = [r["text"] for r in probe.rendered() if r["text"].startswith(tag)]
    assert shown == [f"{tag} #{n}" for n in range(5)]


def test_settings_panel_connects_and_remembers_only_when_asked(open_page, stack):
    probe = open_page("settings")
    probe.goto(stack["app_url"], url="http://127.0.0.1:9", token="wrong-token")
    probe.page.wait_for_selector("#problem:not([hidden])", timeout=BOOT_TIMEOUT_MS)
    if not probe.page.is_visible("#settings-form"):
        probe.page.click("#settings summary")
    probe.page.fill("#settings-form input[name=url]", stack["directus_url"])
    probe.page.check("#settings-form input[value=token]")
    probe.page.fill("#settings-form input[name=token]", stack["token"])
    probe.page.click("#settings-form button[type=submit]")
    probe.page.wait_for_selector('#status[data-state="connected"]', timeout=BOOT_TIMEOUT_MS)
    assert probe.page.is_hidden("#problem")
    assert stack["token"] not in probe.page.url
    stored = probe.page.evaluate(
        "[sessionStorage.getItem('directus-realtime:settings'),"
        " localStorage.getItem('directus-realtime:settings')]"
    )
    assert stored[0] is not None and stored[1] is None  # not remembered: this tab only
    # Ticking "remember" keeps the settings on the device instead.
    if not probe.page.is_visible("#settings-form"):
        probe.page.click("#settings summary")
    probe.page.fill("#settings-form input[name=token]", stack["token"])
    probe.page.check("#settings-form input[name=remember]")
    probe.page.click("#settings-form button[type=submit]")
    probe.page.wait_for_selector('#status[data-state="connected"]', timeout=BOOT_TIMEOUT_MS)
    stored = probe.page.evaluate(
        "[sessionStorage.getItem('directus-realtime:settings'),"
        " localStorage.getItem('directus-realtime:settings')]"
    )
    assert stored[0] is None and json.loads(stored[1])["url"] == stack["directus_url"]
    # A new visit connects with what was remembered, and the panel shows it.
    probe.page.reload()
    probe.page.wait_for_selector('#status[data-state="connected"]', timeout=BOOT_TIMEOUT_MS)
    probe.page.click("#settings summary")
    assert probe.page.input_value("#settings-form input[name=url]") == stack["directus_url"]
    assert probe.page.is_checked("#settings-form input[name=remember]")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_error_screen_when_directus_is_unreachable(open_page, stack):
    probe = open_page("unreachable")
    probe.goto(stack["app_url"], url=f"http://127.0.0.1:{free_port()}", token="any")
    probe.page.wait_for_selector('#problem[data-kind="unreachable"]', timeout=BOOT_TIMEOUT_MS)
    text = probe.page.inner_text("#problem")
    assert "does not answer" in text and "keeps trying" in text


def test_error_screen_when_the_token_is_refused(open_page, stack):
    probe = open_page("refused")
    probe.goto(stack["app_url"], url=stack["directus_url"], token="not-a-token")
    probe.page.wait_for_selector('#problem[data-kind="auth"]', timeout=BOOT_TIMEOUT_MS)
    assert "refused" in probe.page.inner_text("#problem h2")
    assert probe.page.is_visible("#settings-form")  # what to do is right there


def test_error_screen_when_realtime_is_off(open_page, stack):
    workdir = Path(tempfile.mkdtemp(prefix="realtime-off-"))
    handle = local_directus.start_directus(
        REALTIME_OFF_PORT,
        local_directus.copy_of_main_db(workdir),
        extra_env={"WEBSOCKETS_ENABLED": "false"},
        log_file=workdir / "directus.log",
        app_port=stack["app_port"],
    )
    try:
        probe = open_page("realtime-off")
        probe.goto(stack["app_url"], url=handle.url, token=stack["token"])
        probe.page.wait_for_selector('#problem[data-kind="realtime-off"]', timeout=BOOT_TIMEOUT_MS)
        assert "WEBSOCKETS_ENABLED=true" in probe.page.inner_text("#problem")
    finally:
        local_directus.stop(handle)


INTEGER_KEYS_PORT = 8251


def test_a_directus_that_numbers_messages_itself_gets_at_least_once_said_plainly(open_page, stack):
    """Against a `messages` with an auto-increment key, Directus refuses the page's own ids
    (FORBIDDEN): the page sends without one, stores the message once, and says that delivery
    is at-least-once there."""
    from stack.api import DirectusAPI

    workdir = Path(tempfile.mkdtemp(prefix="integer-keys-"))
    handle = local_directus.start_directus(
        INTEGER_KEYS_PORT,
        local_directus.copy_of_main_db(workdir),
        log_file=workdir / "directus.log",
        app_port=stack["app_port"],
    )
    try:
        admin = DirectusAPI.login(handle.url, stack["admin_email"], stack["admin_password"])
        admin.call("DELETE", "/collections/messages")
        admin.post(
            "/collections",
            {
                "collection": "messages",
                "schema": {},
                "meta": {},
                "fields": [
                    {
                        "field": "id",
                        "type": "integer",
                        "meta": {"hidden": True},
                        "schema": {"is_primary_key": True, "has_auto_increment": True},
                    },
                    {"field": "text", "type": "text"},
                    {"field": "user", "type": "string"},
                    {
                        "field": "date_created",
                        "type": "timestamp",
                        "meta": {"special": ["date-created"]},
                    },
                ],
            },
        )
        [policy] = admin.get("/policies", **{"filter[name][_eq]": "Public Posts"})
        for action in ("read", "create"):
            admin.post(
                "/permissions",
                {
                    "policy": policy["id"],
                    "collection": "messages",
                    "action": action,
                    "fields": ["*"],
                },
            )
        probe = open_page("integer keys")
        probe.goto(stack["app_url"], url=handle.url, token=stack["token"])
        probe.wait_ready()
        text = marker() + " numbered by Directus"
        result = probe.create_item(text, "Ben")
        assert result["ok"], result
        assert isinstance(result["value"]["id"], int)
        probe.wait_rendered(str(result["value"]["id"]))
        note = probe.page.locator("#delivery")
        assert note.get_attribute("data-guarantee") == "at-least-once"
        assert note.is_visible() and "at-least-once" in note.inner_text()
        stored = admin.get("/items/messages", **{"filter[text][_eq]": text})
        assert len(stored) == 1
    finally:
        local_directus.stop(handle)


def test_the_provisioned_directus_is_exactly_once_and_says_nothing(open_page, stack):
    probe = ready_page(open_page, stack, "uuid keys")
    result = probe.create_item(marker() + " uuid key", "Ben")
    assert result["ok"], result
    note = probe.page.locator("#delivery")
    assert note.get_attribute("data-guarantee") == "exactly-once"
    assert note.is_hidden()


def test_a_10000_message_history_is_shown_in_full(open_page, stack):
    """10,000 messages (1.3 MB of JSON) in one read ran the MicroPython page out of memory
    (MemoryError); the page now reads in pages, and shows them all, oldest first."""
    from bench.seed import ensure_messages

    wanted = 10_000
    assert ensure_messages(stack, wanted, say=lambda _: None) >= wanted
    probe = open_page("10k history")
    probe.goto(stack["app_url"] + "?history=%d" % wanted)
    probe.page.wait_for_selector("body[data-history=true]", state="attached", timeout=120_000)

    created = probe.page.evaluate(
        "[...document.querySelectorAll('#messages li.message')].map((r) => r.dataset.created)"
    )
    assert len(created) == wanted
    assert created == sorted(created), "rows are not in date_created order"
    ids = probe.page.evaluate(
        "new Set([...document.querySelectorAll('#messages li.message')].map((r) => r.dataset.id))"
        ".size"
    )
    assert ids == wanted, "a message is shown twice"
    assert probe.page_errors == []
    assert not [t for t in probe.console_texts() if "MemoryError" in t]
