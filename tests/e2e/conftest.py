"""End-to-end fixtures: Debian's Chromium driven by Playwright (sync API), against the real page
served by the local stack and a real Directus.

- ``stack`` (from tests/conftest.py): the local stack's var/stack.json, started on demand.
- ``browser``: one headless Chromium per session.
- ``open_page``: a factory; every call opens a page in a fresh browser context and returns a
  ``PageProbe``, the sync shell of tests/browser.py's ``PageProbeCore`` (what the page did:
  console, requests, websockets with frames, dialogs; and what the tests ask of it). When a
  test fails, the console of each of its pages is added to the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.browser import (
    BOOT_TIMEOUT_MS,
    CREATE_JS,
    CREATES_JS,
    FIRE_CREATE_JS,
    IDS_JS,
    LAUNCH_OPTIONS,
    MESSAGE_ROWS,
    RENDERED_ID_JS,
    ROWS_JS,
    STATE_JS,
    STATES_JS,
    STEP_TIMEOUT_MS,
    PageProbeCore,
    init_scripts,
)


class PageProbe(PageProbeCore):
    """The sync shell of tests/browser.py's ``PageProbeCore`` (the methods are described there).
    ``wait_ready`` does not wait for the catch-up read unless asked: the e2e tests that need it
    wait for ``body[data-history]`` themselves."""

    def goto(self, app_url: str, **query: str) -> None:
        self.page.goto(self.url(app_url, **query), wait_until="domcontentloaded")

    def wait_ready(self, timeout: float = BOOT_TIMEOUT_MS, caught_up: bool = False) -> None:
        self.page.wait_for_function(self.ready_js(caught_up), timeout=timeout)

    def wait_until(
        self, condition: Callable[[], Any], timeout: float = STEP_TIMEOUT_MS, what: str = ""
    ) -> None:
        for pause in self.polling(condition, timeout, what):
            self.page.wait_for_timeout(pause)

    def state(self) -> str:
        return self.page.evaluate(STATE_JS)

    def states(self) -> list[tuple[float, str]]:
        return self.as_states(self.page.evaluate(STATES_JS))

    def ids(self) -> list[str]:
        return self.page.eval_on_selector_all(MESSAGE_ROWS, IDS_JS)

    def rendered(self) -> list[dict[str, str]]:
        return self.page.eval_on_selector_all(MESSAGE_ROWS, ROWS_JS)

    def wait_rendered(self, item_id: str, timeout: float = STEP_TIMEOUT_MS) -> None:
        self.page.wait_for_function(RENDERED_ID_JS, arg=item_id, timeout=timeout)

    def create_item(self, *args: Any) -> dict:
        return self.page.evaluate(CREATE_JS, list(args))

    def fire_create(self, label: str, text: str, user: str) -> str:
        return self.page.evaluate(FIRE_CREATE_JS, [label, text, user])

    def creates(self) -> dict[str, dict]:
        return self.page.evaluate(CREATES_JS)


# ----- the browser -----


# Package scope: Playwright's sync API keeps an event loop running on this thread while it
# is alive, which would break asyncio.run() in later suites (and a second sync_playwright()).
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright for the whole package: every engine of tests/engines.py launches from it."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(**LAUNCH_OPTIONS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def open_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator:
    """``open_page(name, spy_sockets=False, spy_states=False) -> PageProbe``: a page in its own
    context."""
    probes: list[PageProbe] = []

    def factory(
        name: str = "page", *, spy_sockets: bool = False, spy_states: bool = False
    ) -> PageProbe:
        context = browser.new_context()
        context.set_default_timeout(STEP_TIMEOUT_MS)
        for script in init_scripts(spy_sockets=spy_sockets, spy_states=spy_states):
            context.add_init_script(script)
        probe = PageProbe(name, context, context.new_page())
        probe.attach(request.node)
        probes.append(probe)
        return probe

    yield factory
    for probe in probes:
        probe.context.close()


# Bad arguments for create_item: every test of its input checks uses these.
BAD_INPUTS = [
    # (label, JS arguments of create_item, what the error message must name)
    ("empty text", ["", "Ben"], "text"),
    ("whitespace text", ["   ", "Ben"], "text"),
    ("number text", [42, "Ben"], "text"),
    ("null text", [None, "Ben"], "text"),
    ("missing user", ["Hello without a user"], "user"),
]


@pytest.fixture
def bad_inputs() -> list:
    """(label, JS arguments of create_item, what the error message must name)."""
    return BAD_INPUTS
