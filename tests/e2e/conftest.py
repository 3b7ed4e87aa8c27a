"""End-to-end fixtures: Debian's Chromium driven by Playwright (sync API), against the real page
served by the local stack and a real Directus.

- ``stack`` (from tests/conftest.py): the local stack's var/stack.json, started on demand.
- ``browser``: one headless Chromium per session.
- ``open_page``: a factory; every call opens a page in a fresh browser context and returns a
  ``PageProbe`` that records the page's console, requests, websockets (with frames) and dialogs.
  When a test fails, the console of each of its pages is added to the report.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Request,
    WebSocket,
    sync_playwright,
)

from stack.browser import CHROMIUM, CHROMIUM_ARGS

# Pyodide's first start takes a few seconds; a loaded machine may need much more.
BOOT_TIMEOUT_MS = 60_000
# Anything after boot (a create, a render, a status change).
STEP_TIMEOUT_MS = 15_000

# Remembers every WebSocket the page constructs (window.__e2e_sockets), so that a test can
# close the page's socket the way a network drop would. Nothing else of WebSocket changes.
SOCKET_SPY = """
(() => {
  const Native = window.WebSocket;
  window.__e2e_sockets = [];
  window.WebSocket = new Proxy(Native, {
    construct(target, args, newTarget) {
      const ws = Reflect.construct(target, args, newTarget);
      window.__e2e_sockets.push(ws);
      return ws;
    },
  });
})();
"""


@dataclass
class SocketRecord:
    url: str
    sent: list[str | bytes] = field(default_factory=list)
    received: list[str | bytes] = field(default_factory=list)
    closed: bool = False

    def sent_messages(self) -> list[Any]:
        """Sent text frames decoded as JSON (frames that are not JSON stay as text)."""
        out = []
        for frame in self.sent:
            try:
                out.append(json.loads(frame))
            except (TypeError, ValueError):
                out.append(frame)
        return out


@dataclass
class PageProbe:
    """A page plus everything it did: console, requests, websockets, dialogs, page errors."""

    name: str
    context: BrowserContext
    page: Page
    console: list[ConsoleMessage] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    sockets: list[SocketRecord] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    # ----- recording -----

    def attach(self) -> None:
        self.context.on("request", self._on_request)
        self.page.on("console", lambda message: self.console.append(message))
        self.page.on("websocket", self._on_websocket)
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_websocket(self, ws: WebSocket) -> None:
        record = SocketRecord(ws.url)
        self.sockets.append(record)
        ws.on("framesent", lambda payload: record.sent.append(payload))
        ws.on("framereceived", lambda payload: record.received.append(payload))
        ws.on("close", lambda _ws: setattr(record, "closed", True))

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    # ----- helpers -----

    def goto(self, app_url: str, **query: str) -> None:
        url = app_url
        if query:
            url += "?" + urllib.parse.urlencode(query)
        self.page.goto(url, wait_until="domcontentloaded")

    def wait_ready(self, timeout: float = BOOT_TIMEOUT_MS) -> None:
        """Connected and subscribed (the subscription's init arrived)."""
        self.page.wait_for_selector('#status[data-state="connected"]', timeout=timeout)
        self.page.wait_for_selector('body[data-subscribed="true"]', timeout=timeout)

    def wait_until(self, condition, timeout: float = STEP_TIMEOUT_MS, what: str = "") -> None:
        """Wait for a condition on recorded events (Playwright delivers events while it waits)."""
        waited = 0.0
        while not condition():
            if waited >= timeout:
                raise AssertionError(f"timed out after {timeout:.0f} ms waiting for {what}")
            self.page.wait_for_timeout(50)
            waited += 50

    def console_texts(self) -> list[str]:
        return [message.text for message in self.console]

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

    def report(self) -> str:
        lines = [f"url: {self.page.url if not self.page.is_closed() else '(closed)'}"]
        lines += [f"[{m.type}] {m.text}" for m in self.console]
        lines += [f"[pageerror] {e}" for e in self.page_errors]
        lines += [f"[dialog] {d}" for d in self.dialogs]
        for record in self.sockets:
            lines.append(
                f"[websocket] {record.url} sent={len(record.sent)} "
                f"received={len(record.received)} closed={record.closed}"
            )
        return "\n".join(lines)


# ----- the browser -----


# Package scope: Playwright's sync API keeps an event loop running on this thread while it
# is alive, which would break asyncio.run() in later suites (and a second sync_playwright()).
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator:
    """``open_page(name, spy_sockets=False) -> PageProbe``: a page in its own context."""
    probes: list[PageProbe] = []
    request.node.e2e_probes = probes

    def factory(name: str = "page", *, spy_sockets: bool = False) -> PageProbe:
        context = browser.new_context()
        context.set_default_timeout(STEP_TIMEOUT_MS)
        if spy_sockets:
            context.add_init_script(SOCKET_SPY)
        page = context.new_page()
        probe = PageProbe(name, context, page)
        probe.attach()
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for probe in getattr(item, "e2e_probes", []):
            report.sections.append((f"browser console of {probe.name}", probe.report()))
