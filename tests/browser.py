"""The browser probes of tests/e2e (Playwright's sync API) and tests/faults (its async API, on a
background loop), in one place.

Whatever does not depend on the API lives here: how Chromium is launched, the timeouts, the
scripts installed in every page before its own, and ``PageRecord``, which records what a page
did from Playwright's events (console, page errors, requests, WebSocket frames, dialogs) and
answers questions about it without touching the page. The two conftests add thin shells over it:
the few methods that wait on the page, synchronously in e2e, awaited in faults. What those
methods ask of the page (its scripts, the URL, how long to poll) is ``PageProbeCore``'s, so the
shells differ only in ``await``.

A failed test's report carries what was remembered with ``report_on_failure`` (the console of
each page it opened, the log of each server it used); tests/conftest.py's hook adds them.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from stack.browser import CHROMIUM, CHROMIUM_ARGS

LAUNCH_OPTIONS: dict[str, Any] = {
    "executable_path": CHROMIUM,
    "headless": True,
    "args": CHROMIUM_ARGS,
}

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

# Records every change of #status[data-state] with Date.now() (window.__states), so that the
# time a page got back to "connected" is measured in the page, not by polling.
STATE_SPY = """
(() => {
  window.__states = [];
  const start = () => {
    const el = document.getElementById('status');
    if (!el) return;
    let last = null;
    const record = () => {
      const state = el.dataset.state;
      if (state !== last) { last = state; window.__states.push([Date.now(), state]); }
    };
    record();
    new MutationObserver(record).observe(el, {attributes: true, attributeFilter: ['data-state']});
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
"""


def init_scripts(*, spy_sockets: bool = False, spy_states: bool = False) -> list[str]:
    """What a new browser context runs in each page before the page's own scripts."""
    return [script for script, on in ((SOCKET_SPY, spy_sockets), (STATE_SPY, spy_states)) if on]


# ----- what a page did -----------------------------------------------------------------------

SENT, RECEIVED = ">>", "<<"


def decoded(frame: str | bytes) -> Any:
    """A WebSocket frame as JSON when it is JSON, else as it came."""
    try:
        return json.loads(frame)
    except (TypeError, ValueError):
        return frame


@dataclass
class ConsoleLine:
    at: float  # time.time(), the clock of the page's Date.now()
    type: str
    text: str
    args: list[Any]  # the logged values, as Playwright's JSHandles (sync or async API)


@dataclass
class SocketRecord:
    """One WebSocket of a page: its frames in order, each with the time Playwright saw it."""

    url: str
    opened_at: float
    # (time.time(), SENT or RECEIVED, the frame)
    frames: list[tuple[float, str, str | bytes]] = field(default_factory=list)
    closed_at: float | None = None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def sent(self) -> list[str | bytes]:
        return [frame for _, way, frame in self.frames if way == SENT]

    @property
    def received(self) -> list[str | bytes]:
        return [frame for _, way, frame in self.frames if way == RECEIVED]

    def sent_messages(self) -> list[Any]:
        """Sent frames decoded as JSON (frames that are not JSON stay as text)."""
        return [decoded(frame) for frame in self.sent]

    def received_messages(self) -> list[Any]:
        return [decoded(frame) for frame in self.received]

    def unanswered(self) -> list[str]:
        """The uids of requests sent on this socket that no received message answered yet."""
        answered = {m.get("uid") for m in self.received_messages() if isinstance(m, dict)}
        return [
            m["uid"]
            for m in self.sent_messages()
            if isinstance(m, dict) and m.get("uid") and m["uid"] not in answered
        ]


class PageRecord:
    """A page (and its own browser context) plus everything it did, recorded from Playwright's
    events, which it delivers while a test waits on the page. Nothing here waits or evaluates:
    the same code serves the sync and the async API."""

    def __init__(self, name: str, context: Any, page: Any) -> None:
        self.name = name
        self.context = context
        self.page = page
        self.console: list[ConsoleLine] = []
        self.page_errors: list[str] = []
        self.request_log: list[tuple[str, str]] = []  # (method, url)
        # URLs the service worker fetched for itself (its precache), not the page
        self.worker_requests: list[str] = []
        self.sockets: list[SocketRecord] = []
        self.dialogs: list[str] = []

    def attach(self, node: Any) -> None:
        """Record from now on; when the test of ``node`` fails, its report shows the record."""
        report_on_failure(node, f"browser console of {self.name}", self.report)
        self.context.on("request", self._on_request)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("websocket", self._on_websocket)
        self.page.on("dialog", self._on_dialog)

    def _on_console(self, message: Any) -> None:
        self.console.append(ConsoleLine(time.time(), message.type, message.text, message.args))

    def _on_websocket(self, ws: Any) -> None:
        record = SocketRecord(ws.url, time.time())
        self.sockets.append(record)
        ws.on("framesent", lambda frame: record.frames.append((time.time(), SENT, frame)))
        ws.on("framereceived", lambda frame: record.frames.append((time.time(), RECEIVED, frame)))
        ws.on("close", lambda _ws: setattr(record, "closed_at", time.time()))

    def _on_request(self, request: Any) -> None:
        if getattr(request, "service_worker", None) is not None:
            self.worker_requests.append(request.url)
        else:
            self.request_log.append((request.method, request.url))

    def _on_dialog(self, dialog: Any) -> Any:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        # The async API returns a coroutine here, which Playwright runs; the sync one, None.
        return dialog.dismiss()

    # ----- questions -----

    @property
    def requests(self) -> list[str]:
        """The URL of every request of the page's context but its service worker's, in order."""
        return [url for _, url in self.request_log]

    def console_texts(self) -> list[str]:
        return [line.text for line in self.console]

    def console_count(self, text: str) -> int:
        return self.console_texts().count(text)

    def console_matching(self, prefix: str) -> list[str]:
        return [text for text in self.console_texts() if text.startswith(prefix)]

    def console_since(self, text: str, since: float) -> int:
        """How many times ``text`` was logged at or after ``since`` (time.time())."""
        return sum(1 for line in self.console if line.text == text and line.at >= since)

    def frames_received(self) -> list[Any]:
        return [m for record in self.sockets for m in record.received_messages()]

    def frames_sent(self) -> list[Any]:
        return [m for record in self.sockets for m in record.sent_messages()]

    def wire_ids(self) -> set[str]:
        """Ids of every row that reached the page on its sockets (events and replies)."""
        ids = set()
        for message in self.frames_received():
            if not isinstance(message, dict):
                continue
            data = message.get("data")
            for row in data if isinstance(data, list) else [data]:
                if isinstance(row, dict) and row.get("id"):
                    ids.add(str(row["id"]))
        return ids

    def pings_on_last_socket(self) -> int:
        if not self.sockets:
            return 0
        messages = self.sockets[-1].received_messages()
        return sum(1 for m in messages if isinstance(m, dict) and m.get("type") == "ping")

    def errors_received(self) -> list[dict]:
        return [
            m for m in self.frames_received() if isinstance(m, dict) and m.get("status") == "error"
        ]

    def report(self) -> str:
        lines = [f"url: {self.page.url if not self.page.is_closed() else '(closed)'}"]
        t0 = self.console[0].at if self.console else time.time()
        lines += [f"{line.at - t0:8.3f}s [{line.type}] {line.text[:300]}" for line in self.console]
        lines += [f"[pageerror] {error}" for error in self.page_errors]
        lines += [f"[dialog] {dialog}" for dialog in self.dialogs]
        for record in self.sockets:
            closed = f"{record.closed_at - t0:.3f}s" if record.closed_at else "no"
            lines.append(
                f"[websocket] {record.url} opened={record.opened_at - t0:.3f}s "
                f"sent={len(record.sent)} received={len(record.received)} closed={closed}"
            )
        return "\n".join(lines)


# ----- what the tests ask of a page ---------------------------------------------------------

# Connected and subscribed (the subscription's init arrived).
READY_JS = """() => document.querySelector('#status')?.dataset.state === 'connected'
    && document.body?.dataset.subscribed === 'true'"""
# ... and the first catch-up read done.
CAUGHT_UP_JS = READY_JS + " && document.body?.dataset.history === 'true'"

STATE_JS = "document.querySelector('#status').dataset.state"
STATES_JS = "window.__states || []"

MESSAGE_ROWS = "#messages li.message"
IDS_JS = "rows => rows.map(row => row.dataset.id)"
ROWS_JS = """rows => rows.map(row => ({
    id: row.dataset.id,
    user: row.querySelector('.user')?.textContent,
    text: row.querySelector('.text')?.textContent,
    time: row.querySelector('time') ? row.querySelector('time').dateTime : null,
}))"""
RENDERED_ID_JS = """id => [...document.querySelectorAll('#messages li.message')]
    .some(row => row.dataset.id === id)"""

# Awaits window.create_item(...args): {ok, value}, or {ok: false, isError, message}.
CREATE_JS = """async (args) => {
    try {
        return {ok: true, value: await window.create_item(...args)};
    } catch (error) {
        return {ok: false, isError: error instanceof Error,
                message: String(error && error.message)};
    }
}"""

# Calls window.create_item(text, user) without awaiting it; the outcome lands in
# window.__creates[label]. Returns the page's status at the call.
FIRE_CREATE_JS = """([label, text, user]) => {
    window.__creates = window.__creates || {};
    const state = document.querySelector('#status').dataset.state;
    const entry = window.__creates[label] = {state, at: Date.now(), done: false};
    const pick = (v, k) => v instanceof Map ? v.get(k) : (v ? v[k] : undefined);
    window.create_item(text, user).then(
        value => Object.assign(entry, {done: true, ok: true, id: pick(value, 'id'),
                                       text: pick(value, 'text'), end: Date.now()}),
        error => Object.assign(entry, {done: true, ok: false,
                                       error: String(error && error.message),
                                       end: Date.now()}));
    return state;
}"""
CREATES_JS = "window.__creates || {}"

POLL_STEP_MS = 50


class PageProbeCore(PageRecord):
    """What the tests ask of a page, apart from how Playwright is called. The sync shell
    (tests/e2e/conftest.py) and the async one (tests/faults/conftest.py) each have the same
    methods, every one a single Playwright call with what is defined here:

    - ``goto(app_url, **query)``: open the page with these query parameters;
    - ``wait_ready(timeout, caught_up)``: connected and subscribed, and with ``caught_up`` the
      first catch-up read done too;
    - ``wait_until(condition, timeout, what)``: poll a condition on the record;
    - ``state()``, ``states()`` (every ``#status[data-state]`` change with the page's
      Date.now(), when the context has ``spy_states``), ``ids()``, ``rendered()``,
      ``wait_rendered(item_id)``;
    - ``create_item(*args)`` (awaits it in the page), ``fire_create(label, text, user)`` (does
      not), ``creates()`` (the outcomes of the fired ones).
    """

    @staticmethod
    def url(app_url: str, **query: str) -> str:
        return app_url + ("?" + urllib.parse.urlencode(query) if query else "")

    @staticmethod
    def ready_js(caught_up: bool) -> str:
        return CAUGHT_UP_JS if caught_up else READY_JS

    @staticmethod
    def as_states(entries: list[list[Any]]) -> list[tuple[float, str]]:
        return [(entry[0], entry[1]) for entry in entries]

    @staticmethod
    def polling(condition: Callable[[], Any], timeout: float, what: str) -> Iterator[int]:
        """The pauses (ms) to take until ``condition()`` holds; fails after ``timeout`` ms.
        Playwright delivers the page's events during those pauses, so the record grows."""
        waited = 0.0
        while not condition():
            if waited >= timeout:
                raise AssertionError(f"timed out after {timeout:.0f} ms waiting for {what}")
            yield POLL_STEP_MS
            waited += POLL_STEP_MS


# ----- reports of failed tests ---------------------------------------------------------------


def report_on_failure(node: Any, title: str, describe: Callable[[], str]) -> None:
    """When the test of ``node`` fails, its report gets a section ``title``: ``describe()``."""
    if not hasattr(node, "failure_sections"):
        node.failure_sections = []
    node.failure_sections.append((title, describe))


def failure_sections(item: Any) -> list[tuple[str, str]]:
    return [(title, describe()) for title, describe in getattr(item, "failure_sections", [])]
