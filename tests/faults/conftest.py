"""Fixtures of the fault-injection tests (tests/faults/test_faults.py).

Every scenario runs as one coroutine on a background event loop (``loop``): the browser
(Playwright's async API), the fault proxy (``proxy.py``) and the page probes all live there.
A background loop, not the test's thread, because tests/e2e keeps a *sync* Playwright open for
the whole session and a second Playwright cannot run in that thread while it lives.

- ``loop`` (session): ``loop.run(coroutine, timeout)`` runs a coroutine there and returns its
  result (cancelled and failed after ``timeout``).
- ``browser`` (session): one headless Chromium (Debian's), launched on that loop.
- ``open_page`` (function): async factory ``await open_page(name)`` -> ``PageProbe``, a page in a
  fresh browser context that records console, page errors, WebSocket frames and every
  ``#status[data-state]`` change with its wall-clock time (a MutationObserver in the page).
- ``crash_directus``, ``proxied_directus``, ``short_ttl_directus`` (module): extra Directus
  instances (``FaultDirectus``) on copies of the main database, ports 8200-8249, with CORS for
  the page server's origin; all the collected tests need are started at once, in the background.
- ``make_proxy`` (function): ``await make_proxy(target_port)`` -> a started ``FaultProxy``
  (proxy.py) on 8200-8249; closed at teardown.
- ``writers`` (function): ``writers(url, token, marker, count, rate)`` -> a started ``Writer``, a
  thread creating N messages over REST at a steady rate, each with its own uuid, retrying until
  stored (RECORD_NOT_UNIQUE on a retry = stored by an earlier attempt); halted at teardown.
- ``kit`` (session): helpers (``until``, ``quiesce``, ``tally``, ``rows_with_marker``,
  ``reconnect_after``, ``new_marker``, ``now_ms``) and the instances' settings.
- ``remember_servers(*servers)``: their log tails go into the report of a failed test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from stack import directus, procs
from stack.api import DirectusAPI
from stack.browser import CHROMIUM, CHROMIUM_ARGS
from tests.pools import InstancePool, instance_fixture, running_pool

HERE = Path(__file__).parent
PORTS = range(8200, 8250)
_reserved: set[int] = set()
_reserve_lock = threading.Lock()

BOOT_TIMEOUT = 60.0  # Pyodide's start on a loaded machine
HEARTBEAT_PERIOD = 2  # seconds (WEBSOCKETS_HEARTBEAT_PERIOD of the instances where it matters)
TOKEN_TTL = 5  # seconds (ACCESS_TOKEN_TTL of short_ttl_directus)


def _load_proxy_module():
    """proxy.py, imported by path (tests/faults is not a package)."""
    spec = importlib.util.spec_from_file_location("faults_proxy", HERE / "proxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FaultProxy = _load_proxy_module().FaultProxy


def reserve_port() -> int:
    with _reserve_lock:
        for port in PORTS:
            if port not in _reserved and not procs.port_in_use(port):
                _reserved.add(port)
                return port
    raise RuntimeError("no free port in 8200-8249")


def now_ms() -> float:
    """Wall-clock milliseconds: the same clock as the page's Date.now()."""
    return time.time() * 1000.0


# ----- the background loop ------------------------------------------------------------------


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="faults-loop")
        self._thread.daemon = True
        self._thread.start()

    def run(self, coroutine: Awaitable[Any], timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            with contextlib.suppress(Exception):
                future.result(10)
            raise AssertionError(f"the scenario did not finish within {timeout:.0f} s") from None

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


@pytest.fixture(scope="session")
def loop() -> Iterator[BackgroundLoop]:
    background = BackgroundLoop()
    try:
        yield background
    finally:
        background.close()


@pytest.fixture(scope="session")
def browser(loop: BackgroundLoop) -> Iterator[Browser]:
    async def launch() -> tuple[Any, Browser]:
        playwright = await async_playwright().start()
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        return playwright, chromium

    async def close(playwright: Any, chromium: Browser) -> None:
        try:
            await chromium.close()
        finally:
            await playwright.stop()

    playwright, chromium = loop.run(launch(), 60)
    try:
        yield chromium
    finally:
        loop.run(close(playwright, chromium), 30)


# ----- pages --------------------------------------------------------------------------------

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


@dataclass
class SocketRecord:
    url: str
    opened_at: float
    sent: list[tuple[float, str]] = field(default_factory=list)
    received: list[tuple[float, str]] = field(default_factory=list)
    closed_at: float | None = None

    def received_json(self) -> list[Any]:
        return [m for _, m in _decoded(self.received)]

    def sent_json(self) -> list[Any]:
        return [m for _, m in _decoded(self.sent)]

    def timeline(self) -> list[tuple[float, str, Any]]:
        """(time, ">>" sent or "<<" received, decoded message), in time order."""
        both = [(t, ">>", m) for t, m in _decoded(self.sent)]
        both += [(t, "<<", m) for t, m in _decoded(self.received)]
        return sorted(both, key=lambda entry: entry[0])


def _decoded(frames: list[tuple[float, str]]) -> list[tuple[float, Any]]:
    out = []
    for t, frame in frames:
        with contextlib.suppress(TypeError, ValueError):
            out.append((t, json.loads(frame)))
    return out


@dataclass
class PageProbe:
    name: str
    context: BrowserContext
    page: Page
    console: list[tuple[float, str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    sockets: list[SocketRecord] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self) -> None:
        self.page.on("console", lambda m: self.console.append((time.time(), m.type, m.text)))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("websocket", self._on_websocket)
        self.context.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))

    def _on_websocket(self, ws: Any) -> None:
        record = SocketRecord(ws.url, time.time())
        self.sockets.append(record)
        ws.on("framesent", lambda payload: record.sent.append((time.time(), payload)))
        ws.on("framereceived", lambda payload: record.received.append((time.time(), payload)))
        ws.on("close", lambda _ws: setattr(record, "closed_at", time.time()))

    async def open(self, app_url: str, **query: str) -> None:
        await self.page.goto(app_url + "?" + urllib.parse.urlencode(query))

    async def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Connected, subscribed (init arrived) and the first catch-up read done."""
        await self.page.wait_for_function(
            """() => document.querySelector('#status')?.dataset.state === 'connected'
                  && document.body.dataset.subscribed === 'true'
                  && document.body.dataset.history === 'true'""",
            timeout=timeout * 1000,
        )

    async def state(self) -> str:
        return await self.page.evaluate("document.querySelector('#status').dataset.state")

    async def states(self) -> list[tuple[float, str]]:
        return [tuple(entry) for entry in await self.page.evaluate("window.__states || []")]

    async def ids(self) -> list[str]:
        """The data-id of every li.message in #messages, in document order."""
        return await self.page.eval_on_selector_all(
            "#messages li.message", "rows => rows.map(row => row.dataset.id)"
        )

    async def fire_create(self, label: str, text: str, user: str) -> str:
        """Call ``window.create_item(text, user)`` without waiting for its Promise; the outcome
        lands in ``window.__creates[label]``. Returns the page's status at the call."""
        return await self.page.evaluate(
            """([label, text, user]) => {
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
            }""",
            [label, text, user],
        )

    async def creates(self) -> dict[str, dict]:
        return await self.page.evaluate("window.__creates || {}")

    def console_count(self, text: str) -> int:
        return sum(1 for _, _, line in self.console if line == text)

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
        return sum(
            1
            for m in self.sockets[-1].received_json()
            if isinstance(m, dict) and m.get("type") == "ping"
        )

    def errors_received(self) -> list[dict]:
        return [
            m for m in self.frames_received() if isinstance(m, dict) and m.get("status") == "error"
        ]

    def console_matching(self, prefix: str) -> list[str]:
        return [line for _, _, line in self.console if line.startswith(prefix)]

    def frames_received(self) -> list[Any]:
        return [m for record in self.sockets for m in record.received_json()]

    def frames_sent(self) -> list[Any]:
        return [m for record in self.sockets for m in record.sent_json()]

    def report(self) -> str:
        lines = [f"url: {self.page.url if not self.page.is_closed() else '(closed)'}"]
        t0 = self.console[0][0] if self.console else time.time()
        lines += [f"{t - t0:8.3f}s [{kind}] {text[:300]}" for t, kind, text in self.console]
        lines += [f"[pageerror] {e}" for e in self.page_errors]
        for record in self.sockets:
            lines.append(
                f"[websocket] {record.url} opened={record.opened_at - t0:.3f}s "
                f"sent={len(record.sent)} received={len(record.received)} "
                f"closed={'%.3fs' % (record.closed_at - t0) if record.closed_at else 'no'}"
            )
        return "\n".join(lines)


@pytest.fixture
def open_page(
    request: pytest.FixtureRequest, loop: BackgroundLoop, browser: Browser
) -> Iterator[Callable[[str], Awaitable[PageProbe]]]:
    """``await open_page(name)`` (on the background loop) -> a PageProbe in its own context."""
    probes: list[PageProbe] = []
    request.node.fault_probes = probes

    async def factory(name: str) -> PageProbe:
        context = await browser.new_context()
        context.set_default_timeout(15_000)
        await context.add_init_script(STATE_SPY)
        page = await context.new_page()
        probe = PageProbe(name, context, page)
        probe.attach()
        probes.append(probe)
        return probe

    yield factory

    async def close_all() -> None:
        for probe in probes:
            with contextlib.suppress(Exception):
                await probe.context.close()

    loop.run(close_all(), 30)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for probe in getattr(item, "fault_probes", []):
            report.sections.append((f"browser console of {probe.name}", probe.report()))
        for server in getattr(item, "fault_servers", []):
            report.sections.append((f"log of {server.name}", server.log_tail()))


# ----- Directus instances -------------------------------------------------------------------


class FaultDirectus:
    """A Directus of our own: a copy of the main database, its own port, CORS for the page."""

    def __init__(self, name: str, env: dict[str, str], stack: dict[str, Any], tmp: Path) -> None:
        self.name = name
        self.env = env
        self.app_port = int(stack["app_port"])
        self.tmp = tmp
        self.port = reserve_port()
        self.db = directus.copy_of_main_db(tmp)
        self.log_file = tmp / "directus.log"
        self.handle: directus.DirectusHandle | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start it (again) on the same port, database and environment; returns seconds."""
        assert self.handle is None or not self.handle.alive()
        t0 = time.monotonic()
        self.handle = directus.start_directus(
            self.port, self.db, self.env, self.log_file, app_port=self.app_port
        )
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL (a crash); returns once the process is gone."""
        assert self.handle is not None
        directus.kill(self.handle)
        procs.wait_until(lambda: not procs.port_in_use(self.port), timeout=10.0)

    def stop(self) -> None:
        if self.handle is not None and self.handle.alive():
            directus.stop(self.handle)

    def log_tail(self) -> str:
        return procs.log_tail(self.log_file)


EXTRA: dict[str, dict[str, str]] = {
    "crash_directus": {"WEBSOCKETS_HEARTBEAT_PERIOD": str(HEARTBEAT_PERIOD)},
    "proxied_directus": {"WEBSOCKETS_HEARTBEAT_PERIOD": str(HEARTBEAT_PERIOD)},
    "short_ttl_directus": {"ACCESS_TOKEN_TTL": f"{TOKEN_TTL}s"},
}


def _plan_fault(stack: dict[str, Any], tmp: pytest.TempPathFactory) -> Callable[..., Any]:
    def plan(name: str) -> Callable[[], FaultDirectus]:
        def start() -> FaultDirectus:
            server = FaultDirectus(name, EXTRA[name], stack, tmp.mktemp(name))
            try:
                seconds = server.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    server.stop()  # a server whose start failed is still ours to stop
                raise
            print(
                f"\n[faults] {name} :{server.port} {server.env} up in {seconds:.1f} s", flush=True
            )
            return server

        return start

    return plan


@pytest.fixture(scope="session")
def directus_pool(
    request: pytest.FixtureRequest, stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InstancePool[FaultDirectus]]:
    pool = InstancePool(_plan_fault(stack, tmp_path_factory), len(EXTRA))
    yield from running_pool(request, pool, EXTRA)


def _extra_fixture(name: str) -> Any:
    return instance_fixture(
        name, "directus_pool", f"A Directus with {EXTRA[name]} on a copy of the main database."
    )


crash_directus = _extra_fixture("crash_directus")
proxied_directus = _extra_fixture("proxied_directus")
short_ttl_directus = _extra_fixture("short_ttl_directus")


@pytest.fixture
def remember_servers(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``remember_servers(*servers)``: their log tails go into the report when the test fails."""

    def remember(*servers: FaultDirectus) -> None:
        request.node.fault_servers = list(servers)

    return remember


@pytest.fixture
def make_proxy(loop: BackgroundLoop) -> Iterator[Callable[[int], Awaitable[Any]]]:
    """``await make_proxy(target_port)`` (on the loop) -> a started FaultProxy on 8200-8249."""
    proxies: list[Any] = []

    async def factory(target_port: int) -> Any:
        proxy = FaultProxy(reserve_port(), target_port)
        proxies.append(proxy)
        await proxy.start()
        return proxy

    yield factory

    async def close_all() -> None:
        for proxy in proxies:
            await proxy.close()

    loop.run(close_all(), 30)


# ----- the steady writer --------------------------------------------------------------------


class Writer(threading.Thread):
    """Creates ``count`` messages over REST at ``rate`` per second, in order, each with a uuid
    chosen here; a failed create is retried with the same id until stored (Directus down,
    connection reset...). A retry answered RECORD_NOT_UNIQUE means an earlier attempt stored it
    and its answer was lost: that is success, so each message is created exactly once."""

    def __init__(
        self,
        url: str,
        token: str,
        marker: str,
        count: int,
        rate: float,
        user: str = "fault-writer",
        give_up: float = 90.0,
    ) -> None:
        super().__init__(name=f"writer-{marker}", daemon=True)
        self.url = url.rstrip("/")
        self.token = token
        self.user = user
        self.interval = 1.0 / rate
        self.give_up = give_up
        self.items = [
            {"id": str(uuid.uuid4()), "text": f"{marker} w{i:03d}", "user": user}
            for i in range(count)
        ]
        self.stored = 0
        self.stored_at: list[float] = []
        self.attempts = 0
        self.failed_attempts = 0
        self.duplicate_on_retry = 0
        self.last_error = ""
        self.failure: str | None = None
        self.finished_at: float | None = None
        self._halt = threading.Event()

    @property
    def ids(self) -> list[str]:
        return [item["id"] for item in self.items]

    def halt(self) -> None:
        self._halt.set()

    def run(self) -> None:
        next_at = time.monotonic()
        for item in self.items:
            delay = next_at - time.monotonic()
            if delay > 0 and self._halt.wait(delay):
                self.failure = "halted"
                return
            if not self._store(item):
                return
            self.stored += 1
            self.stored_at.append(time.time())
            next_at = max(next_at + self.interval, time.monotonic())
        self.finished_at = time.time()

    def _store(self, item: dict[str, str]) -> bool:
        deadline = time.monotonic() + self.give_up
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            outcome = self._post(item)
            if outcome == "stored":
                return True
            if outcome == "RECORD_NOT_UNIQUE" and attempt > 1:
                self.duplicate_on_retry += 1
                return True
            self.failed_attempts += 1
            self.last_error = outcome
            if time.monotonic() > deadline or self._halt.wait(0.2):
                self.failure = f"could not store {item['text']} after {attempt} attempts: {outcome}"
                return False

    def _post(self, item: dict[str, str]) -> str:
        request = urllib.request.Request(
            self.url + "/items/messages?fields=id",
            data=json.dumps(item).encode(),
            method="POST",
            headers={"Authorization": "Bearer " + self.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                data = json.loads(response.read()).get("data") or {}
                return "stored" if data.get("id") == item["id"] else f"odd answer {data}"
        except urllib.error.HTTPError as error:
            try:
                errors = json.loads(error.read() or b"{}").get("errors") or [{}]
                code = (errors[0].get("extensions") or {}).get("code")
            except ValueError:
                code = None
            return code or f"HTTP {error.code}"
        except (OSError, ValueError) as error:  # refused, reset, timeout, a cut-off body
            return f"{type(error).__name__}: {error}"

    def describe(self) -> str:
        return (
            f"stored={self.stored}/{len(self.items)} attempts={self.attempts} "
            f"failed_attempts={self.failed_attempts} dup_on_retry={self.duplicate_on_retry}"
            + (f" failure={self.failure}" if self.failure else "")
        )


@pytest.fixture
def writers() -> Iterator[Callable[..., Writer]]:
    """``writers(url, token, marker, count, rate)`` -> a started Writer, halted at teardown."""
    started: list[Writer] = []

    def start(*args: Any, **kwargs: Any) -> Writer:
        writer = Writer(*args, **kwargs)
        started.append(writer)
        writer.start()
        return writer

    yield start
    for writer in started:
        writer.halt()
    for writer in started:
        writer.join(10)


# ----- counting -----------------------------------------------------------------------------


@dataclass
class Tally:
    page: str
    sent: int
    rendered: int
    lost: int
    doubled: int
    missing: list[str]
    doubles: list[str]

    def line(self) -> str:
        return (
            f"{self.page}: sent={self.sent} rendered={self.rendered} lost={self.lost} "
            f"doubled={self.doubled}"
        )


def tally(page: str, expected: list[str], dom_ids: list[str]) -> Tally:
    counts = Counter(dom_ids)
    missing = [i for i in expected if counts[i] == 0]
    doubles = sorted(i for i, n in counts.items() if n > 1)
    return Tally(
        page=page,
        sent=len(expected),
        rendered=len(expected) - len(missing),
        lost=len(missing),
        doubled=len(doubles),
        missing=missing,
        doubles=doubles,
    )


async def quiesce(
    pages: list[PageProbe], expected: list[str], timeout: float = 30.0
) -> dict[str, list[str]]:
    """Wait (bounded) until every page shows every expected id, then 1 s more so that a late
    duplicate would show too. Returns each page's DOM ids."""
    wanted = set(expected)
    deadline = time.monotonic() + timeout
    while True:
        seen = {p.name: await p.ids() for p in pages}
        if all(wanted <= set(ids) for ids in seen.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)
    return {p.name: await p.ids() for p in pages}


def rows_with_marker(server_url: str, token: str, marker: str) -> list[dict[str, Any]]:
    """Every row of messages whose text starts with ``marker`` (REST, as the demo user)."""
    api = DirectusAPI(server_url, token)
    return api.get(
        "/items/messages",
        fields=["id", "text", "user", "date_created"],
        filter={"text": {"_starts_with": marker}},
        limit=-1,
        sort=["date_created"],
    )


def reconnect_after(
    states: list[tuple[float, str]], fault_ms: float, back_ms: float
) -> dict[str, float | None]:
    """From a page's state log: when it left ``connected`` after the fault and when it was
    ``connected`` again, in seconds relative to the fault and to the server being back."""
    left = next((t for t, s in states if t >= fault_ms and s != "connected"), None)
    again = None
    if left is not None:
        again = next((t for t, s in states if t >= left and s == "connected"), None)
    return {
        "left_s": None if left is None else (left - fault_ms) / 1000.0,
        "back_to_connected_s": None if again is None else (again - back_ms) / 1000.0,
        "again_ms": again,
    }


def new_marker(label: str) -> str:
    return f"fault-{label}-{uuid.uuid4().hex[:10]}"


async def until(check: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll ``check()`` (plain or async) until it returns something true; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(step)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers of this folder, for the tests (the folder is not a package)."""
    return SimpleNamespace(
        HEARTBEAT_PERIOD=HEARTBEAT_PERIOD,
        TOKEN_TTL=TOKEN_TTL,
        now_ms=now_ms,
        new_marker=new_marker,
        until=until,
        tally=tally,
        quiesce=quiesce,
        rows_with_marker=rows_with_marker,
        reconnect_after=reconnect_after,
    )
