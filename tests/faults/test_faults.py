"""Fault injection: the realtime page against a Directus that crashes, a network that is cut or
silently stalls, and access tokens that expire, while a third client writes steadily.

Each scenario: an extra Directus (copy of the main db, CORS for the page server), two pages
(separate browser contexts) connected and subscribed, a writer thread creating N messages over
REST at a steady rate (each retried with its own id until stored), page A calling
``create_item`` while the connection is down (its outbox), the fault, and at the end, once the
pages are quiet: per page sent / rendered / lost / doubled (lost == 0 and doubled == 0 on both),
every message stored exactly once in Directus, and how long after the server came back each
page's ``#status`` was ``connected`` again (from a MutationObserver in the page).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from stack.api import DirectusAPI

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

SCENARIO_TIMEOUT = 200.0  # seconds: one scenario, start to end, whatever happens
RECONNECT_WAIT = 45.0  # the longest a page may take to be connected again after a fault
QUIET_WAIT = 30.0  # the longest the pages may take to show everything once writing stopped


@dataclass
class Outage:
    what: str
    fault_ms: float
    back_ms: float | None = None
    restart_s: float | None = None
    per_page: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        parts = []
        for page, m in self.per_page.items():
            left = "never" if m["left_s"] is None else f"{m['left_s']:.2f}s"
            back = m["back_to_connected_s"]
            parts.append(
                f"{page}: left connected after {left}, "
                f"connected {'NEVER' if back is None else f'{back:.2f}s'} after server back"
            )
        extra = f" (restart took {self.restart_s:.1f}s)" if self.restart_s is not None else ""
        return f"{self.what}{extra}: " + "; ".join(parts)


class Scenario:
    """What a test builds up on the background loop, and checks at the end."""

    def __init__(self, name: str, kit: Any, stack: dict, server: Any, marker: str) -> None:
        self.name = name
        self.kit = kit
        self.stack = stack
        self.server = server
        self.marker = marker
        self.pages: list[Any] = []
        self.writer: Any = None
        self.outages: list[Outage] = []
        self.page_a_texts: dict[str, str] = {}  # label -> text
        self.page_a_states: dict[str, str] = {}  # label -> #status at the call
        self.problems: list[str] = []
        self.tallies: list[Any] = []
        self.rows: list[dict] = []
        self.creates: dict[str, dict] = {}
        self.on_wire: dict[str, int] = {}
        self.label_of: dict[str, str] = {}  # id -> the short part of its text, for messages

    @property
    def a(self) -> Any:
        return self.pages[0]

    async def open_pages(
        self, open_page: Any, directus_url: str, prepare: Any = None, **auth: str
    ) -> None:
        self.pages = [await open_page("page A"), await open_page("page B")]
        for page in self.pages:
            if prepare is not None:
                await prepare(page)
        await asyncio.gather(
            # A window of 1,000: every message of a run stays shown (the default 100 would let
            # the first ones of a 102-message run leave the window, which is not a loss).
            *(
                p.open(self.stack["app_url"], url=directus_url, history="1000", **auth)
                for p in self.pages
            )
        )
        await asyncio.gather(*(p.wait_ready() for p in self.pages))

    async def page_a_create(self, label: str) -> None:
        text = f"{self.marker} A-{label}"
        self.page_a_texts[label] = text
        self.page_a_states[label] = await self.a.fire_create(label, text, "page A")

    async def wait_stored(self, count: int, timeout: float = 60.0) -> None:
        await self.kit.until(
            lambda: self.writer.stored >= count or self.writer.failure,
            timeout,
            f"the writer to store {count} messages ({self.writer.describe()})",
        )

    async def wait_pages(self, check: Any, timeout: float) -> None:
        """Until ``await check(page)`` holds for every page, or ``timeout`` passed: a page that
        did not get there is reported by the checks at the end, not here."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all([await check(page) for page in self.pages]):
                return
            await asyncio.sleep(0.05)

    async def wait_reconnected(self, outage: Outage, timeout: float = RECONNECT_WAIT) -> None:
        """Until each page left ``connected`` after the fault and is ``connected`` again (or the
        bound passed: then it is recorded as never, and reported at the end)."""
        deadline = time.monotonic() + timeout
        while True:
            done = True
            for page in self.pages:
                m = self.kit.reconnect_after(
                    await page.states(), outage.fault_ms, outage.back_ms or outage.fault_ms
                )
                outage.per_page[page.name] = m
                done = done and m["again_ms"] is not None
            if done or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.1)

    async def finish(self) -> None:
        """Writer done, page A's creates settled, pages quiet; then count everything."""
        await self.kit.until(
            lambda: self.writer.finished_at or self.writer.failure,
            90,
            f"the writer to finish ({self.writer.describe()})",
        )
        if self.page_a_texts:
            try:
                await self.kit.until(
                    lambda: _all_done(self.a), QUIET_WAIT, "page A's create_item promises"
                )
            except AssertionError as error:
                self.problems.append(str(error))
            self.creates = await self.a.creates()
        self.rows = await asyncio.to_thread(
            self.kit.rows_with_marker, self.server.url, self.stack["token"], self.marker
        )
        by_text: dict[str, list[str]] = {}
        for row in self.rows:
            by_text.setdefault(row["text"], []).append(row["id"])
        expected = list(self.writer.ids)
        for text in self.page_a_texts.values():
            expected += by_text.get(text, [])
        prefix = self.marker + " "
        self.label_of = {row["id"]: row["text"].removeprefix(prefix) for row in self.rows}
        dom = await self.kit.quiesce(self.pages, expected, QUIET_WAIT)
        self.tallies = [self.kit.tally(p.name, expected, dom[p.name]) for p in self.pages]
        self.on_wire = {p.name: len(set(expected) & p.wire_ids()) for p in self.pages}
        self.check_store(by_text)

    def check_store(self, by_text: dict[str, list[str]]) -> None:
        writer = self.writer
        if writer.failure:
            self.problems.append(f"writer (test harness) failed: {writer.describe()}")
        for item in writer.items[: writer.stored]:
            ids = by_text.get(item["text"], [])
            if ids != [item["id"]]:
                self.problems.append(f"writer message {item['text']} stored as {ids}")
        for label, text in self.page_a_texts.items():
            ids = by_text.get(text, [])
            result = self.creates.get(label, {})
            if len(ids) != 1:
                self.problems.append(
                    f"page A create_item {label!r} (status at the call: "
                    f"{self.page_a_states[label]}) is in Directus {len(ids)} times, not once"
                )
            if not result.get("ok"):
                self.problems.append(
                    f"page A create_item {label!r} (status at the call: "
                    f"{self.page_a_states[label]}) did not resolve: {result}"
                )
            elif ids and result.get("id") not in ids:
                self.problems.append(f"page A create_item {label!r} resolved with {result}")
        known = {item["text"] for item in writer.items} | set(self.page_a_texts.values())
        strays = [row for row in self.rows if row["text"] not in known]
        if strays:
            self.problems.append(f"rows nobody asked for: {strays}")

    def report(self) -> str:
        """Print the figures; returns the assertion message (empty when all is well)."""
        creates = ", ".join(
            f"{label}@{self.page_a_states[label]}->"
            + ("ok" if self.creates.get(label, {}).get("ok") else "FAILED")
            for label in self.page_a_texts
        )
        print(f"\n[faults] {self.name}: writer {self.writer.describe()}", flush=True)
        if creates:
            print(f"[faults] {self.name}: page A create_item during the outage: {creates}")
        for outage in self.outages:
            print(f"[faults] {self.name}: {outage.describe()}")
        for t, page in zip(self.tallies, self.pages, strict=True):
            reconnects = [
                o.per_page.get(page.name, {}).get("back_to_connected_s") for o in self.outages
            ]
            shown = ", ".join("NEVER" if r is None else f"{r:.2f}s" for r in reconnects)
            line = (
                f"[faults] {self.name} {t.line()} (on the wire: {self.on_wire.get(page.name)})"
                f" | reconnect after server back: {shown or '-'}"
                f" | sockets={len(page.sockets)} opens={page.console_count('Connection is open')}"
                f" closes={page.console_count('Connection has closed')}"
                f" errors={page.console_count('Connection has had an error')}"
            )
            print(line, flush=True)
        problems = list(self.problems)
        for page in self.pages:
            for line in page.console_matching("The subscription ended"):
                problems.append(f"{page.name} console: {line!r}")
        for t in self.tallies:
            if t.lost or t.doubled:
                missing = [self.label_of.get(i, i) for i in t.missing]
                doubles = [self.label_of.get(i, i) for i in t.doubles]
                problems.append(f"{t.line()}; missing {_brief(missing)}; doubled {_brief(doubles)}")
        for outage in self.outages:
            for page, m in outage.per_page.items():
                if m["again_ms"] is None:
                    problems.append(
                        f"{page} was not connected again within {RECONNECT_WAIT:.0f} s after "
                        f"{outage.what} (states: left connected after {m['left_s']})"
                    )
        return "\n".join(problems)


def _brief(labels: list[str], keep: int = 12) -> str:
    return ", ".join(labels[:keep]) + (f" ... ({len(labels)} in all)" if len(labels) > keep else "")


def _all_done(page: Any) -> Any:
    async def check() -> bool:
        creates = await page.creates()
        return bool(creates) and all(c.get("done") for c in creates.values())

    return check()


def check_cors(url: str, origin: str) -> str | None:
    """GET {url}/server/ping with the page's Origin: the Access-Control-Allow-Origin answered."""
    response = DirectusAPI(url, timeout=5).request(
        "GET", "/server/ping", headers={"Origin": origin}
    )
    assert response.status == 200, response
    return {k.lower(): v for k, v in response.headers.items()}.get("access-control-allow-origin")


def app_origin(stack: dict) -> str:
    return f"http://127.0.0.1:{stack['app_port']}"


# ----- 1. Directus crashes (SIGKILL) mid-stream, twice ----------------------------------------


def test_sigkill_directus_twice_mid_stream(
    loop, stack, kit, crash_directus, open_page, writers, remember_servers
):
    server = crash_directus
    remember_servers(server)
    s = Scenario("sigkill x2", kit, stack, server, kit.new_marker("sigkill"))

    async def run() -> None:
        await s.open_pages(open_page, server.url, token=stack["token"])
        s.writer = writers(server.url, stack["token"], s.marker, 60, 8.0)
        for round_, at in enumerate((15, 38), start=1):
            await s.wait_stored(at)
            outage = Outage(f"SIGKILL #{round_}", kit.now_ms())
            s.outages.append(outage)
            await asyncio.to_thread(server.kill)
            await s.wait_pages(_left_connected, 5)  # the pages saw their sockets close
            for k in range(2):
                await s.page_a_create(f"outbox-kill{round_}-{k}")
            outage.restart_s = await asyncio.to_thread(server.start)
            outage.back_ms = kit.now_ms()
            await s.wait_reconnected(outage)
        await s.finish()

    loop.run(run(), SCENARIO_TIMEOUT)
    problems = s.report()
    assert not problems, problems


# ----- 2. the network is cut until the pages' retries are refused ------------------------------

REFUSALS = 2  # refused attempts per page while cut: a retry, then the next one of the backoff


def test_network_cut_closes_everything_until_the_retries_are_refused(
    loop, stack, kit, proxied_directus, open_page, writers, make_proxy, remember_servers
):
    """The proxy closes every connection and refuses new ones until each page has been refused
    twice (its first retry and the next, later one of its backoff), with page A's creates made
    while it is cut; then it accepts again."""
    server = proxied_directus
    remember_servers(server)
    s = Scenario("network cut", kit, stack, server, kit.new_marker("cut"))
    cors: dict[str, Any] = {}

    async def run() -> None:
        proxy = await make_proxy(server.port)
        # The pages talk to the proxy's port, not Directus's PUBLIC_URL; CORS goes by the
        # page's Origin, which CORS_ORIGIN allows whatever port the request came in on.
        cors["allow"] = await asyncio.to_thread(check_cors, proxy.url, app_origin(stack))
        await s.open_pages(open_page, proxy.url, token=stack["token"])
        s.writer = writers(server.url, stack["token"], s.marker, 60, 6.0)
        await s.wait_stored(12)
        outage = Outage("cut", kit.now_ms())
        s.outages.append(outage)
        closed = await proxy.cut()
        await s.wait_pages(_left_connected, 5)
        for k in range(3):
            await s.page_a_create(f"outbox-cut-{k}")

        async def refused(page: Any) -> bool:
            errors = page.console_since("Connection has had an error", outage.fault_ms / 1000)
            return errors >= REFUSALS

        await s.wait_pages(refused, RECONNECT_WAIT)
        await proxy.accept_again()
        outage.back_ms = kit.now_ms()
        outage.what += (
            f" until each page was refused {REFUSALS} times "
            f"({(outage.back_ms - outage.fault_ms) / 1000:.1f} s, {closed} connections closed)"
        )
        await s.wait_reconnected(outage)
        await s.finish()
        print(f"\n[faults] network cut: proxy {proxy.summary()}")

    loop.run(run(), SCENARIO_TIMEOUT)
    problems = s.report()
    assert cors["allow"] == app_origin(stack), f"CORS through the proxy: {cors}"
    assert not problems, problems


# ----- 3. silent stall: half-open connections ---------------------------------------------------


def test_silent_stall_is_detected_by_liveness(
    loop, stack, kit, proxied_directus, open_page, writers, make_proxy, remember_servers
):
    """The proxy stops forwarding (both ways, nothing closed) until each page has left
    "connected" and tried to reconnect into the blackhole (so for longer than the liveness bound
    of 1.5 heartbeat periods), then forwards again for new connections only. The pages have been
    connected for two pings (so they know Directus pings every 2 s); they must leave "connected"
    within 3 periods, reconnect, and lose nothing; page A's creates sent into the blackhole must
    be stored once."""
    server = proxied_directus
    remember_servers(server)
    s = Scenario("silent stall", kit, stack, server, kit.new_marker("stall"))
    period = kit.HEARTBEAT_PERIOD
    notice_within = 3.0 * period  # the page must leave "connected" within this of the stall
    detection: dict[str, float | None] = {}
    pings: dict[str, int] = {}

    async def run() -> None:
        proxy = await make_proxy(server.port)
        await s.open_pages(open_page, proxy.url, token=stack["token"])
        s.writer = writers(server.url, stack["token"], s.marker, 60, 6.0)
        await kit.until(
            lambda: all(p.pings_on_last_socket() >= 2 for p in s.pages),
            4 * period,
            "two pings from Directus on each page's socket",
        )
        await s.wait_stored(12)
        pings.update({p.name: p.pings_on_last_socket() for p in s.pages})
        outage = Outage("stall", kit.now_ms())
        s.outages.append(outage)
        stalled = proxy.stall()
        await asyncio.sleep(0.3)
        for k in range(2):  # the page may still think it is connected: into the blackhole
            await s.page_a_create(f"outbox-stall-{k}")

        async def retried_into_the_stall(page: Any) -> bool:
            # A socket opened since the stall: the page noticed it and tried again.
            return any(record.opened_at * 1000 >= outage.fault_ms for record in page.sockets)

        # (The first retry comes within 0.5 s of noticing, the backoff's first ceiling.)
        await s.wait_pages(retried_into_the_stall, notice_within + 2)
        proxy.resume()
        outage.back_ms = kit.now_ms()
        outage.what += (
            f" until each page retried into it "
            f"({(outage.back_ms - outage.fault_ms) / 1000:.1f} s, {stalled} connections blackholed)"
        )
        await s.wait_reconnected(outage)
        for page in s.pages:
            detection[page.name] = outage.per_page[page.name]["left_s"]
        await s.finish()
        print(f"\n[faults] silent stall: proxy {proxy.summary()}")

    loop.run(run(), SCENARIO_TIMEOUT)
    problems = s.report()
    print(
        "[faults] silent stall: left connected after "
        + ", ".join(f"{n}: {'never' if v is None else f'{v:.2f}s'}" for n, v in detection.items())
        + f" (pings heard before the stall: {pings}; bound 1.5 x {period} s)"
    )
    slow = {n: v for n, v in detection.items() if v is None or v > notice_within}
    assert not slow, (
        f"a page did not notice the silent stall within {notice_within:.0f} s "
        f"(Directus pings every {period} s): {slow}\n{problems}"
    )
    assert not problems, problems


# ----- 4. access tokens expire every 5 s ------------------------------------------------------

REFRESH_LATENCY = 0.25  # seconds added to each /auth/refresh, as on a real network


def test_token_expiry_while_streaming(
    loop, stack, kit, short_ttl_directus, open_page, writers, remember_servers
):
    """Pages signed in with email and password; Directus (ACCESS_TOKEN_TTL=5s) expires their
    socket's token every 5 s while the writer streams for more than 2 TTLs. Each /auth/refresh
    takes 250 ms more (a real network's round trip; on loopback it is ~40 ms). Nothing may be
    lost or doubled, and the status stays connected (or recovers)."""
    server = short_ttl_directus
    remember_servers(server)
    ttl = kit.TOKEN_TTL
    s = Scenario(f"token ttl {ttl}s", kit, stack, server, kit.new_marker("ttl"))
    timing: dict[str, float] = {}

    async def slow_refresh(page: Any) -> None:
        async def handle(route: Any) -> None:
            await asyncio.sleep(REFRESH_LATENCY)
            await route.continue_()

        await page.context.route("**/auth/refresh", handle)

    async def run() -> None:
        await s.open_pages(
            open_page,
            server.url,
            prepare=slow_refresh,
            email=stack["demo_email"],
            password=stack["demo_password"],
        )
        timing["ready"] = time.time()
        # > 2 TTLs of writing: 100 messages at 8 per second.
        s.writer = writers(server.url, stack["token"], s.marker, 100, 8.0)
        for k, at in enumerate((int(8 * ttl * 1.2), int(8 * ttl * 2.2))):
            await s.wait_stored(at)  # after the first and the second expiry
            await s.page_a_create(f"after-expiry-{k + 1}")
        await s.finish()
        timing["end"] = time.time()

    loop.run(run(), SCENARIO_TIMEOUT)
    problems = s.report()
    for page in s.pages:
        states = loop.run(page.states(), 10)
        after_ready = [st for t, st in states if t / 1000 >= timing["ready"]]
        errors = page.errors_received()
        expired = [e for e in errors if (e.get("error") or {}).get("code") == "TOKEN_EXPIRED"]
        others = [e for e in errors if e not in expired]
        auths = [m for m in page.frames_sent() if isinstance(m, dict) and m.get("type") == "auth"]
        with_static = [m for m in auths if m.get("access_token") == stack["token"]]
        logins = [r for r in page.requests if "/auth/login" in r]
        refreshes = [u for m, u in page.request_log if m == "POST" and "/auth/refresh" in u]
        ended = page.console_matching("The subscription ended")
        final = loop.run(page.state(), 10)
        print(
            f"[faults] {s.name} {page.name}: TOKEN_EXPIRED={len(expired)} auth sent={len(auths)} "
            f"logins={len(logins)} refreshes={len(refreshes)} other errors received="
            f"{[(e.get('type'), (e.get('error') or {}).get('code'), e.get('uid')) for e in others]}"
            f" console={ended} states after ready={after_ready} final={final}",
            flush=True,
        )
        if with_static or not (logins or any("email" in m for m in auths)):
            problems += (
                f"\n{page.name} did not sign in with email/password "
                f"(auth frames: {auths[:3]}, login requests: {logins})"
            )
        if len(auths) < 2:
            problems += (
                f"\n{page.name} authenticated only {len(auths)} time(s) in "
                f"{timing['end'] - timing['ready']:.0f} s with a {ttl} s token: the expiry "
                "path was not exercised"
            )
        if final != "connected":
            problems += f"\n{page.name} ended {final!r}, not connected"
    assert timing["end"] - timing["ready"] > 2 * ttl
    assert not problems, problems


# ----- 5. a silent stall soon after connecting ------------------------------------------------


async def one_page_behind_a_proxy(stack, server, open_page, make_proxy):
    """A TCP proxy in front of ``server`` and one page ("page A") connected through it."""
    proxy = await make_proxy(server.port)
    page = await open_page("page A")
    await page.open(stack["app_url"], url=proxy.url, token=stack["token"])
    await page.wait_ready()
    return proxy, page


def test_silent_stall_soon_after_connecting_is_detected(
    loop, stack, kit, proxied_directus, open_page, make_proxy, remember_servers
):
    """The same stall, but right after the page got connected (before it heard two pings),
    with a create_item sent into it. Directus pings every 2 s, so the page must notice within
    3 periods (not after the default 1.5 x 30 s); the create, whose item carries its own id,
    must be stored exactly once once the network is back (not rejected)."""
    server = proxied_directus
    remember_servers(server)
    period = kit.HEARTBEAT_PERIOD
    notice_within = 3.0 * period
    marker = kit.new_marker("early-stall")
    seen: dict[str, Any] = {}

    async def run() -> None:
        proxy, page = await one_page_behind_a_proxy(stack, server, open_page, make_proxy)
        seen["pings"] = page.pings_on_last_socket()
        fault_ms = kit.now_ms()
        proxy.stall()
        seen["create_state"] = await page.fire_create("early", f"{marker} A-early", "page A")
        deadline = time.monotonic() + notice_within
        while time.monotonic() < deadline and await page.state() == "connected":
            await asyncio.sleep(0.05)
        m = kit.reconnect_after(await page.states(), fault_ms, fault_ms)
        seen["left_s"] = m["left_s"]
        seen["state"] = await page.state()
        proxy.resume()
        try:
            await kit.until(lambda: _all_done(page), 25, "the create_item promise to settle")
        except AssertionError as error:
            seen["wait"] = str(error)
        seen["create"] = (await page.creates()).get("early")
        seen["settled_s"] = (
            (seen["create"]["end"] - fault_ms) / 1000 if seen["create"].get("done") else None
        )
        seen["rows"] = await asyncio.to_thread(
            kit.rows_with_marker, server.url, stack["token"], marker
        )

    loop.run(run(), SCENARIO_TIMEOUT)
    left, create, stored = seen["left_s"], seen["create"], len(seen["rows"])
    print(
        f"\n[faults] stall soon after connecting: pings heard before the stall={seen['pings']}, "
        f"left connected after {'never (within the bound)' if left is None else f'{left:.2f}s'}"
        f"; create_item (status {seen['create_state']} at the call) -> {create} "
        f"after {seen['settled_s']} s; stored {stored} time(s)"
    )
    problems = []
    if left is None or left > notice_within:
        problems.append(
            f"the page was still {seen['state']!r} {notice_within:.0f} s into a silent stall "
            f"that began when it had heard {seen['pings']} ping(s) "
            f"(Directus pings every {period} s)"
        )
    if not create.get("ok"):
        problems.append(f"create_item sent into the stall did not resolve: {create}")
    if stored != 1:
        problems.append(f"create_item sent into the stall is in Directus {stored} times, not once")
    assert not problems, "\n".join(problems)


# ----- 6. the outbox survives a reload --------------------------------------------------------


def test_a_write_queued_while_disconnected_survives_a_reload(
    loop, stack, kit, proxied_directus, open_page, make_proxy, remember_servers
):
    """create_item while Directus is unreachable waits in the outbox, which is kept in
    localStorage: reloading the page (still unreachable) loses nothing, and once the network is
    back the write is stored exactly once and the outbox is empty."""
    server = proxied_directus
    remember_servers(server)
    marker = kit.new_marker("reload")
    text = f"{marker} queued before a reload"
    seen: dict[str, Any] = {}

    async def run() -> None:
        proxy, page = await one_page_behind_a_proxy(stack, server, open_page, make_proxy)
        await proxy.cut()  # refuses new connections until accept_again()
        await kit.until(lambda: _left_connected(page), 15, "the page to notice the cut")
        await page.page.evaluate("(t) => { window.create_item(t, 'reload'); }", text)
        seen["before"] = await page.page.evaluate(
            "localStorage.getItem('directus-realtime:outbox')"
        )
        await page.page.reload()
        await page.page.wait_for_function(
            "document.querySelector('#status')?.dataset.state !== undefined"
        )
        seen["after_reload"] = await page.page.evaluate(
            "localStorage.getItem('directus-realtime:outbox')"
        )
        await proxy.accept_again()
        await page.wait_ready()
        deadline = time.monotonic() + 20
        rows: list = []
        while time.monotonic() < deadline:
            rows = await asyncio.to_thread(kit.rows_with_marker, server.url, stack["token"], marker)
            outbox = await page.page.evaluate("localStorage.getItem('directus-realtime:outbox')")
            if rows and outbox is None:
                break
            await asyncio.sleep(0.2)
        seen["rows"] = rows
        seen["outbox_at_end"] = await page.page.evaluate(
            "localStorage.getItem('directus-realtime:outbox')"
        )

    loop.run(run(), SCENARIO_TIMEOUT)
    print(f"\n[faults] reload with a queued write: stored {len(seen['rows'])} time(s)")
    assert seen["before"] and text in seen["before"], seen
    assert seen["after_reload"] and text in seen["after_reload"], seen
    assert len(seen["rows"]) == 1, seen
    assert seen["outbox_at_end"] is None, seen


async def _left_connected(page) -> bool:
    return await page.state() != "connected"


def test_unanswered_writes_are_saved_and_survive_a_reload(
    loop, stack, kit, proxied_directus, open_page, make_proxy, remember_servers
):
    """The outbox is saved behind (main.py's Outbox): a write sent into a connection that
    silently stalled is in localStorage within OUTBOX_DELAY_MS (1 s) though the page still
    thinks it is connected, and one sent just before a reload is saved when the page goes away
    (pagehide). After the reload, with the network back, each is stored exactly once and the
    outbox ends empty."""
    server = proxied_directus
    remember_servers(server)
    marker = kit.new_marker("unanswered")
    timer_text, pagehide_text = f"{marker} saved by the timer", f"{marker} saved on pagehide"
    seen: dict[str, Any] = {}
    outbox_js = "localStorage.getItem('directus-realtime:outbox')"

    async def run() -> None:
        proxy, page = await one_page_behind_a_proxy(stack, server, open_page, make_proxy)
        proxy.stall()  # frames vanish; the socket stays open and the page connected
        await page.page.evaluate("(t) => { window.create_item(t, 'outbox'); }", timer_text)
        seen["state_at_first"] = await page.state()
        await kit.until(
            lambda: _outbox_holds(page, timer_text), 10, "the unanswered write to be saved"
        )
        await page.page.evaluate("(t) => { window.create_item(t, 'outbox'); }", pagehide_text)
        seen["before_reload"] = await page.page.evaluate(outbox_js)
        proxy.resume()  # new connections go through again (the stalled one stays stalled)
        await page.page.reload()
        await page.wait_ready()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = await asyncio.to_thread(kit.rows_with_marker, server.url, stack["token"], marker)
            if len(rows) >= 2 and await page.page.evaluate(outbox_js) is None:
                break
            await asyncio.sleep(0.2)
        seen["texts"] = sorted(
            row["text"]
            for row in await asyncio.to_thread(
                kit.rows_with_marker, server.url, stack["token"], marker
            )
        )
        seen["outbox_at_end"] = await page.page.evaluate(outbox_js)

    loop.run(run(), SCENARIO_TIMEOUT)
    print(f"\n[faults] unanswered writes across a reload: stored {seen['texts']}")
    assert seen["state_at_first"] == "connected", seen  # saved by the timer, not the status
    assert pagehide_text not in (seen["before_reload"] or ""), seen  # not due before the reload
    assert seen["texts"] == sorted([timer_text, pagehide_text]), seen  # each exactly once
    assert seen["outbox_at_end"] is None, seen


async def _outbox_holds(page, text: str) -> bool:
    saved = await page.page.evaluate("localStorage.getItem('directus-realtime:outbox')")
    return bool(saved) and text in saved
