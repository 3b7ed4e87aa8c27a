"""Fixtures of the fault-injection tests (tests/faults/test_faults.py).

Every scenario runs as one coroutine on a background event loop (``loop``): the browser
(Playwright's async API), the fault proxy (``proxy.py``) and the page probes all live there.
A background loop, not the test's thread, because tests/e2e keeps a *sync* Playwright open for
the whole session and a second Playwright cannot run in that thread while it lives.

- ``loop`` (session): ``loop.run(coroutine, timeout)`` runs a coroutine there and returns its
  result (cancelled and failed after ``timeout``).
- ``browser`` (session): one headless Chromium (Debian's), launched on that loop.
- ``open_page`` (function): async factory ``await open_page(name)`` -> ``PageProbe``, the async
  shell of tests/browser.py's ``PageProbeCore``: a page in a fresh browser context that records
  console, page errors, WebSocket frames and every ``#status[data-state]`` change with its
  wall-clock time (a MutationObserver in the page).
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
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from stack import directus, procs
from stack.api import DirectusAPI
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
    report_on_failure,
)
from tests.pools import InstancePool, extra_directus_fixture, reserve_port, running_pool

HERE = Path(__file__).parent
PORTS = range(8200, 8250)
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
        chromium = await playwright.chromium.launch(**LAUNCH_OPTIONS)
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


class PageProbe(PageProbeCore):
    """The async shell of tests/browser.py's ``PageProbeCore`` (the methods are described there).
    ``wait_ready`` waits for the first catch-up read too: every scenario counts rows after it."""

    async def goto(self, app_url: str, **query: str) -> None:
        await self.page.goto(self.url(app_url, **query), wait_until="domcontentloaded")

    open = goto  # the scenarios' word for it

    async def wait_ready(self, timeout: float = BOOT_TIMEOUT_MS, caught_up: bool = True) -> None:
        await self.page.wait_for_function(self.ready_js(caught_up), timeout=timeout)

    async def wait_until(
        self, condition: Callable[[], Any], timeout: float = STEP_TIMEOUT_MS, what: str = ""
    ) -> None:
        for pause in self.polling(condition, timeout, what):
            await self.page.wait_for_timeout(pause)

    async def state(self) -> str:
        return await self.page.evaluate(STATE_JS)

    async def states(self) -> list[tuple[float, str]]:
        return self.as_states(await self.page.evaluate(STATES_JS))

    async def ids(self) -> list[str]:
        return await self.page.eval_on_selector_all(MESSAGE_ROWS, IDS_JS)

    async def rendered(self) -> list[dict[str, str]]:
        return await self.page.eval_on_selector_all(MESSAGE_ROWS, ROWS_JS)

    async def wait_rendered(self, item_id: str, timeout: float = STEP_TIMEOUT_MS) -> None:
        await self.page.wait_for_function(RENDERED_ID_JS, arg=item_id, timeout=timeout)

    async def create_item(self, *args: Any) -> dict:
        return await self.page.evaluate(CREATE_JS, list(args))

    async def fire_create(self, label: str, text: str, user: str) -> str:
        return await self.page.evaluate(FIRE_CREATE_JS, [label, text, user])

    async def creates(self) -> dict[str, dict]:
        return await self.page.evaluate(CREATES_JS)


@pytest.fixture
def open_page(
    request: pytest.FixtureRequest, loop: BackgroundLoop, browser: Browser
) -> Iterator[Callable[[str], Awaitable[PageProbe]]]:
    """``await open_page(name)`` (on the background loop) -> a PageProbe in its own context."""
    probes: list[PageProbe] = []

    async def factory(name: str) -> PageProbe:
        context = await browser.new_context()
        context.set_default_timeout(STEP_TIMEOUT_MS)
        for script in init_scripts(spy_states=True):
            await context.add_init_script(script)
        probe = PageProbe(name, context, await context.new_page())
        probe.attach(request.node)
        probes.append(probe)
        return probe

    yield factory

    async def close_all() -> None:
        for probe in probes:
            with contextlib.suppress(Exception):
                await probe.context.close()

    loop.run(close_all(), 30)


# ----- Directus instances -------------------------------------------------------------------


class FaultDirectus:
    """A Directus of our own: a copy of the main database, its own port, CORS for the page."""

    def __init__(self, name: str, env: dict[str, str], stack: dict[str, Any], tmp: Path) -> None:
        self.name = name
        self.env = env
        self.app_port = int(stack["app_port"])
        self.tmp = tmp
        self.port = reserve_port(PORTS)
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


crash_directus = extra_directus_fixture("crash_directus", "directus_pool", EXTRA)
proxied_directus = extra_directus_fixture("proxied_directus", "directus_pool", EXTRA)
short_ttl_directus = extra_directus_fixture("short_ttl_directus", "directus_pool", EXTRA)


@pytest.fixture
def remember_servers(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``remember_servers(*servers)``: their log tails go into the report when the test fails."""

    def remember(*servers: FaultDirectus) -> None:
        for server in servers:
            report_on_failure(request.node, f"log of {server.name}", server.log_tail)

    return remember


@pytest.fixture
def make_proxy(loop: BackgroundLoop) -> Iterator[Callable[[int], Awaitable[Any]]]:
    """``await make_proxy(target_port)`` (on the loop) -> a started FaultProxy on 8200-8249."""
    proxies: list[Any] = []

    async def factory(target_port: int) -> Any:
        proxy = FaultProxy(reserve_port(PORTS), target_port)
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
        self.api = DirectusAPI(url, token, timeout=5)
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
        try:
            response = self.api.request("POST", "/items/messages", item, params={"fields": "id"})
        except (OSError, ValueError) as error:  # refused, reset, timeout, a cut-off body
            return f"{type(error).__name__}: {error}"
        if response.status >= 400:
            return next(iter(response.error_codes), "") or f"HTTP {response.status}"
        data = response.data or {}
        return "stored" if data.get("id") == item["id"] else f"odd answer {response.body}"

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
    """Wait (bounded) until every page shows every expected id and has the answer to every
    request it sent on its current socket (a catch-up read, a create): then nothing that could
    bring a row twice is under way. Returns each page's DOM ids."""
    wanted = set(expected)
    deadline = time.monotonic() + timeout
    while True:
        shown = all([wanted <= set(await p.ids()) for p in pages])
        waiting = [p.name for p in pages if p.sockets and p.sockets[-1].unanswered()]
        if (shown and not waiting) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    # What is on the wire by now reaches the DOM within a task or two of the page's; this short
    # look is what proves that no late duplicate of it shows.
    await asyncio.sleep(0.25)
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
