"""End-to-end fixtures: Debian's Chromium driven by Playwright (sync API), against the real page
served by the local stack and a real Directus.

- ``stack`` (from tests/conftest.py): the local stack's var/stack.json, started on demand.
- ``browser``: one headless Chromium per session.
- ``open_page``: a factory; every call opens a page in a fresh browser context and returns a
  ``PageProbe`` (tests/browser.py's ``PageRecord``: console, requests, websockets with frames,
  dialogs) with the page's own helpers. When a test fails, the console of each of its pages is
  added to the report.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.browser import (
    BOOT_TIMEOUT_MS,
    LAUNCH_OPTIONS,
    STEP_TIMEOUT_MS,
    PageRecord,
    init_scripts,
)


class PageProbe(PageRecord):
    """A page plus everything it did, and what the e2e tests ask of it (sync API)."""

    def goto(self, app_url: str, **query: str) -> None:
        url = app_url
        if query:
            url += "?" + urllib.parse.urlencode(query)
        self.page.goto(url, wait_until="domcontentloaded")

    def wait_ready(self, timeout: float = BOOT_TIMEOUT_MS) -> None:
        """Connected and subscribed (the subscription's init arrived)."""
        self.page.wait_for_selector('#status[data-state="connected"]', timeout=timeout)
        self.page.wait_for_selector('body[data-subscribed="true"]', timeout=timeout)

    def wait_until(
        self, condition: Callable[[], Any], timeout: float = STEP_TIMEOUT_MS, what: str = ""
    ) -> None:
        """Wait for a condition on recorded events (Playwright delivers events while it waits)."""
        waited = 0.0
        while not condition():
            if waited >= timeout:
                raise AssertionError(f"timed out after {timeout:.0f} ms waiting for {what}")
            self.page.wait_for_timeout(50)
            waited += 50

    def create_item(self, *args: Any) -> dict:
        """``window.create_item(*args)``: {ok, value}, or {ok: false, isError, message}."""
        return self.page.evaluate(
            """async (args) => {
                try {
                    return {ok: true, value: await window.create_item(...args)};
                } catch (error) {
                    return {ok: false, isError: error instanceof Error,
                            message: String(error && error.message)};
                }
            }""",
            list(args),
        )

    def rendered(self) -> list[dict[str, str]]:
        """Every li.message in #messages, in document order."""
        return self.page.eval_on_selector_all(
            "#messages li.message",
            """rows => rows.map(row => ({
                id: row.dataset.id,
                user: row.querySelector('.user')?.textContent,
                text: row.querySelector('.text')?.textContent,
                time: row.querySelector('time') ? row.querySelector('time').dateTime : null,
            }))""",
        )

    def wait_rendered(self, item_id: str, timeout: float = STEP_TIMEOUT_MS) -> None:
        self.page.wait_for_function(
            "id => [...document.querySelectorAll('#messages li.message')]"
            ".some(row => row.dataset.id === id)",
            arg=item_id,
            timeout=timeout,
        )


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
    """``open_page(name, spy_sockets=False) -> PageProbe``: a page in its own context."""
    probes: list[PageProbe] = []

    def factory(name: str = "page", *, spy_sockets: bool = False) -> PageProbe:
        context = browser.new_context()
        context.set_default_timeout(STEP_TIMEOUT_MS)
        for script in init_scripts(spy_sockets=spy_sockets):
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
