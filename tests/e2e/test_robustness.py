"""How the page recovers from bad settings it is given, in a browser against the local stack:

- a Directus URL without a scheme, or with a port that cannot be, gets a problem screen that
  names it (instead of hanging in "Starting Python…" / "Connecting…"), and the token leaves the
  address bar within seconds;
- a corrupt saved outbox is dropped with a console warning; the page connects, ``create_item``
  works, and a write queued afterwards still survives a reload (instead of a TypeError at
  start-up shown as a Python traceback, and failing saves later).

What needs a Directus or a network the test controls is in tests/faults/test_page_faults.py.
"""

from __future__ import annotations

import uuid

import pytest

from stack.api import DirectusAPI
from tests.browser import STEP_TIMEOUT_MS
from tests.e2e.test_bad_input import (
    OUTBOX_KEY,
    assert_sane_end,
    open_with,
    screen_text,
    tracebacks,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

OUTBOX_JS = f"localStorage.getItem('{OUTBOX_KEY}')"


# ----- a URL that cannot work -----------------------------------------------------------------

BAD_URLS = [
    pytest.param("127.0.0.1:8055", id="no scheme"),
    pytest.param("http://127.0.0.1:99999", id="port out of range"),
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_bad_url_gets_a_problem_screen_naming_it_and_the_token_leaves(open_page, stack, url):
    secret = "SECRET-" + uuid.uuid4().hex[:12]
    probe = open_with(open_page, stack, f"?url={url}&token={secret}")
    probe.page.wait_for_selector('#problem[data-kind="bad-url"]', timeout=30_000)
    problem = probe.page.text_content("#problem") or ""
    assert url in problem, f"the problem screen does not name {url!r}: {problem!r}"
    assert "http" in problem.split(url, 1)[1], f"no example of a good URL: {problem!r}"
    assert assert_sane_end(probe, (secret,)) == "error"


# ----- a corrupt saved outbox -----------------------------------------------------------------


@pytest.mark.parametrize("saved", ['{"a":1}', "[1,2,3]"])
def test_a_corrupt_outbox_is_dropped_and_the_page_still_saves_writes(open_page, stack, saved):
    probe = open_with(open_page, stack, local={OUTBOX_KEY: saved})
    state = assert_sane_end(probe)
    assert state == "connected", f"ended {state!r} ({screen_text(probe)})"
    warnings = [line.text for line in probe.console if line.type == "warning"]
    assert any("saved message" in text.lower() for text in warnings), warnings

    marker = "robustness-" + uuid.uuid4().hex[:10]
    created = probe.create_item(f"{marker} first", "robustness")
    assert created["ok"], created

    # A write the page cannot send now: kept in localStorage, and sent after a reload.
    probe.context.set_offline(True)
    probe.page.wait_for_function(
        "document.querySelector('#status').dataset.state !== 'connected'",
        timeout=STEP_TIMEOUT_MS,
    )
    queued = f"{marker} queued"
    probe.page.evaluate("(t) => { window.create_item(t, 'robustness'); }", queued)
    probe.page.wait_for_function(
        "(t) => (localStorage.getItem('directus-realtime:outbox') || '').includes(t)",
        arg=queued,
        timeout=STEP_TIMEOUT_MS,
    )
    probe.context.set_offline(False)
    probe.page.reload(wait_until="domcontentloaded")
    assert assert_sane_end(probe) == "connected"
    api = DirectusAPI(stack["directus_url"], stack["token"])

    def stored() -> list:
        return api.get(
            "/items/messages", fields=["id", "text"], filter={"text": {"_starts_with": marker}}
        )

    probe.wait_until(
        lambda: len(stored()) >= 2 and probe.page.evaluate(OUTBOX_JS) is None,
        what="the queued write to be stored and the outbox to empty",
    )
    texts = sorted(row["text"] for row in stored())
    assert texts == sorted([f"{marker} first", queued]), texts
    assert not tracebacks(probe)
