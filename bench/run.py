"""The benchmark run: the stack, the browser, the three measurements, the report."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

import stack
from stack import build, directus, paths, procs, serve
from stack.browser import CHROMIUM, CHROMIUM_ARGS

from . import report
from .seed import ensure_messages

BENCH = Path(__file__).resolve().parent
INSTRUMENT = (BENCH / "instrument.js").read_text()


BOOT_TIMEOUT_MS = 120_000  # Pyodide on a busy 2-core machine
HISTORY_TIMEOUT_MS = 180_000
CREATE_TIMEOUT_MS = 10_000  # one create's row; more than 3 misses end the series
WARMUP_CREATES = 5
SLOW_HISTORY_MS = 30_000  # a page this slow on the history gets one run, not three
SETTLE_MS = 1000  # after subscribed, before the latency series (our page reads its history)
# The creates are split over this many alternating rounds (a fresh page each): a slow spell
# of the machine or of Directus then falls on both pages alike instead of on one page's round.
# Every phase also takes the pages in turn, ABBA (in_turn).
LATENCY_ROUNDS = 8
BUDGET_S = 570  # the whole run; every phase stops its rounds early when its share is used

REFERENCE_PATH = "bench/reference/index.html"
RAW_FILE = paths.VAR / "bench-last.json"  # every snapshot of the last run (git-ignored)


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    path: str  # below app_url


OURS = Target("py", "Python page", "")
GUIDE = Target("js", "JS SDK page", REFERENCE_PATH)
TARGETS = (OURS, GUIDE)

# Everything the page recorded (bench/instrument.js), plus resource timing and the row count.
SNAPSHOT_JS = """() => {
    const B = window.__bench;
    const nav = performance.getEntriesByType('navigation')[0];
    return {
        marks: B.marks,
        progress: B.progress,
        longtasks: B.longtasks,
        stalls: B.stalls,
        sockets: B.sockets,
        wasm: B.wasm,
        wasmMemory: B.wasmMemoryBytes(),
        nav: nav ? {responseEnd: nav.responseEnd, transfer: nav.transferSize} : null,
        resources: performance.getEntriesByType('resource').map((e) => ({
            name: e.name, start: e.startTime, end: e.responseEnd, transfer: e.transferSize,
        })),
        userMarks: Object.fromEntries(
            performance.getEntriesByType('mark').map((m) => [m.name, m.startTime])),
        rows: document.querySelectorAll('#messages li.message[data-id]').length,
    };
}"""

# n sequential create_item calls, each timed from the call to its row in #messages: when the row
# first shows (our page shows a write at once, marked data-pending) and when it shows as stored
# (no data-pending: the server's reply or event came). The JS page shows a row only from the
# subscription's event, so both times are the same there; the stored one is the comparable one.
LATENCY_JS = """async ({n, prefix, timeoutMs}) => {
    const list = document.getElementById('messages');
    const shownAt = new Map();  // text -> time its row first showed
    const waiting = new Map();  // text -> resolve(time its row showed as stored)
    const look = (row, at) => {
        const text = row.querySelector('.text');
        if (!text) return;
        const key = text.textContent;
        if (!shownAt.has(key)) shownAt.set(key, at);
        const done = waiting.get(key);
        if (done && !row.hasAttribute('data-pending')) { waiting.delete(key); done(at); }
    };
    const observer = new MutationObserver((records) => {
        const at = performance.now();
        for (const record of records) {
            if (record.type === 'attributes') { look(record.target, at); continue; }
            for (const node of record.addedNodes) {
                if (node.nodeType !== 1) continue;
                // A row, or (our page) a new chunk of rows.
                if (node.matches('.message')) look(node, at);
                for (const row of node.querySelectorAll('.message')) look(row, at);
            }
        }
    });
    observer.observe(list, {childList: true, subtree: true, attributes: true,
                            attributeFilter: ['data-pending']});  // (our rows are in chunks)
    const latencies = [];
    const shown = [];
    let misses = 0;
    for (let i = 0; i < n && misses <= 3; i++) {
        const text = `${prefix} ${i}`;
        const stored = new Promise((resolve) => waiting.set(text, resolve));
        const timeout = new Promise((resolve) => setTimeout(() => resolve(null), timeoutMs));
        const start = performance.now();
        Promise.resolve(window.create_item(text, 'bench')).catch(() => {});
        const end = await Promise.race([stored, timeout]);
        if (end === null) { waiting.delete(text); misses++; continue; }
        latencies.push(end - start);
        shown.push(shownAt.get(text) - start);
    }
    observer.disconnect();
    return {latencies, shown, misses};
}"""


def in_turn(n: int) -> tuple[Target, ...]:
    """The pages in round ``n``: ours first, then the JS page first, and so on (ABBA), so a
    drift of the machine or of Directus across a round weighs on both alike."""
    return TARGETS if n % 2 == 0 else TARGETS[::-1]


def http_get(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


class Runner:
    def __init__(self, browser: Browser, info: dict[str, Any], args: argparse.Namespace, say):
        self.browser = browser
        self.info = info
        self.args = args
        self.say = say
        self.app_url = info["app_url"]
        self.origin = self.app_url.rstrip("/")
        self.errors: dict[str, list[str]] = {t.key: [] for t in TARGETS}
        # The page server serves bench/ only when it was started after bench/ joined its
        # allow-list. An older one answers 404: then the reference page's two files (HTML and
        # guide.js) are handed to Chromium from disk (CDP Fetch), on the same origin and with
        # the server's headers; the SDK and everything else still come from the server.
        status, _ = http_get(self.app_url + REFERENCE_PATH)
        self.intercept_reference = status != 200
        _, headers = http_get(self.app_url)
        self.csp = headers.get("Content-Security-Policy")
        self.browser_cdp = browser.new_browser_cdp_session()

    def url(self, target: Target, **extra: Any) -> str:
        query = {"url": self.info["directus_url"], "token": self.info["token"], **extra}
        return self.app_url + target.path + "?" + urllib.parse.urlencode(query)

    # ----- contexts and loads -----

    def open(self, target: Target) -> tuple[BrowserContext, Page]:
        context = self.browser.new_context()
        context.add_init_script(INSTRUMENT)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors[target.key].append(str(error)))
        if self.intercept_reference and target is GUIDE:
            self._serve_reference_from_disk(context, page)
        return context, page

    def _serve_reference_from_disk(self, context: BrowserContext, page: Page) -> None:
        cdp = context.new_cdp_session(page)

        def paused(event: dict[str, Any]) -> None:
            path = urllib.parse.urlsplit(event["request"]["url"]).path
            file = serve.resolve(paths.ROOT, path)
            if file is None:
                body, code, headers = b"not found\n", 404, {"Content-Type": "text/plain"}
            else:
                body, code = file.read_bytes(), 200
                headers = {
                    "Content-Type": serve.content_type(file),
                    "Cache-Control": "no-cache",
                    "X-Content-Type-Options": "nosniff",
                }
                if self.csp:
                    headers["Content-Security-Policy"] = self.csp
            cdp.send(
                "Fetch.fulfillRequest",
                {
                    "requestId": event["requestId"],
                    "responseCode": code,
                    "responseHeaders": [{"name": k, "value": v} for k, v in headers.items()],
                    "body": base64.b64encode(body).decode(),
                },
            )

        cdp.on("Fetch.requestPaused", paused)
        cdp.send("Fetch.enable", {"patterns": [{"urlPattern": self.app_url + "bench/reference/*"}]})
        # A document that did not come from the network has no address space: Chromium's
        # Local Network Access checks would block its requests to Directus on 127.0.0.1.
        context_id = cdp.send("Target.getTargetInfo")["targetInfo"]["browserContextId"]
        for permission in ("localNetworkAccess", "loopbackNetwork", "localNetwork"):
            try:
                self.browser_cdp.send(
                    "Browser.grantPermissions",
                    {
                        "permissions": [permission],
                        "origin": self.origin,
                        "browserContextId": context_id,
                    },
                )
            except PlaywrightError:
                pass  # not a permission of this Chromium

    def load(self, page: Page, url: str, mark: str, timeout_ms: float) -> dict[str, Any]:
        """Navigate, wait for window.__bench.marks[mark], return the page's records."""
        page.goto(url, wait_until="commit", timeout=timeout_ms)
        page.wait_for_function(
            "mark => window.__bench && window.__bench.marks[mark] !== undefined",
            arg=mark,
            timeout=timeout_ms,
            polling=50,
        )
        return page.evaluate(SNAPSHOT_JS)

    def left(self, deadline: float) -> bool:
        return time.monotonic() < deadline

    # ----- (a) start-up -----

    def startup(self, rounds: int, deadline: float) -> dict[str, dict[str, list]]:
        out: dict[str, dict[str, list]] = {t.key: {"cold": [], "warm": []} for t in TARGETS}
        for n in range(rounds):
            if n and not self.left(deadline):
                self.say(f"  start-up: time is up after {n} rounds")
                break
            for target in in_turn(n):
                context, page = self.open(target)
                try:
                    url = self.url(target)
                    for kind in ("cold", "warm"):
                        try:
                            snap = self.load(page, url, "subscribed", BOOT_TIMEOUT_MS)
                        except PlaywrightError as error:
                            self.say(f"  {target.label} {kind}: {error.message.splitlines()[0]}")
                            continue
                        out[target.key][kind].append(snap)
                        self.say(
                            f"  round {n + 1} {target.label:12} {kind}: subscribed at "
                            f"{snap['marks']['subscribed']:,.0f} ms"
                        )
                        # Let the page finish what it does after subscribing (ours reads its
                        # history) before the reload: a reload the moment the page is up
                        # measured the previous page's wind-down too.
                        page.wait_for_timeout(SETTLE_MS)
                finally:
                    context.close()
        return out

    # ----- (b) create-to-render latency -----

    def latency(self, total: int, rounds: int, deadline: float) -> dict[str, dict[str, Any]]:
        out = {t.key: {"latencies": [], "shown": [], "misses": 0} for t in TARGETS}
        per_round = -(-total // rounds)
        for n in range(rounds):
            if n and not self.left(deadline):
                self.say(f"  latency: time is up after {n} rounds")
                break
            for target in in_turn(n):
                context, page = self.open(target)
                try:
                    self.load(page, self.url(target), "subscribed", BOOT_TIMEOUT_MS)
                    page.wait_for_timeout(SETTLE_MS)
                    prefix = f"bench {uuid.uuid4().hex[:8]}"
                    page.evaluate(
                        LATENCY_JS,
                        {"n": WARMUP_CREATES, "prefix": prefix + " warm-up", "timeoutMs": 5000},
                    )
                    want = min(per_round, total - len(out[target.key]["latencies"]))
                    result = page.evaluate(
                        LATENCY_JS,
                        {"n": want, "prefix": prefix, "timeoutMs": CREATE_TIMEOUT_MS},
                    )
                except PlaywrightError as error:
                    self.say(f"  {target.label}: {error.message.splitlines()[0]}")
                    continue
                finally:
                    context.close()
                out[target.key]["latencies"] += result["latencies"]
                out[target.key]["shown"] += result["shown"]
                out[target.key]["misses"] += result["misses"]
                got = result["latencies"]
                self.say(
                    f"  round {n + 1} {target.label:12} {len(got)} creates, p50 "
                    f"{report.percentile(got, 50):.1f} ms"
                    + (f", {result['misses']} never shown" if result["misses"] else "")
                )
        return out

    # ----- (c) + (d) the 10k history, long tasks, memory -----

    def history(self, size: int, rounds: int, deadline: float) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {t.key: [] for t in TARGETS}
        slow: set[str] = set()
        for n in range(rounds):
            if n and not self.left(deadline):
                self.say(f"  history: time is up after {n} rounds")
                break
            for target in in_turn(n):
                if target.key in slow:
                    continue
                context, page = self.open(target)
                try:
                    # Warm the cache first: this measures the history, not the download.
                    self.load(page, self.url(target), "subscribed", BOOT_TIMEOUT_MS)
                    snap = self.load(
                        page, self.url(target, history=size), "history", HISTORY_TIMEOUT_MS
                    )
                    snap["memory"] = self.memory(context, page)
                except PlaywrightError as error:
                    self.say(f"  {target.label}: {error.message.splitlines()[0]}")
                    continue
                finally:
                    context.close()
                out[target.key].append(snap)
                if snap["marks"]["history"] > SLOW_HISTORY_MS:
                    slow.add(target.key)
                self.say(
                    f"  round {n + 1} {target.label:12} {snap['rows']} rows at "
                    f"{snap['marks']['history']:,.0f} ms, longest task while rendering "
                    f"{report.fmt_ms(report.render_longest_task(snap))}"
                )
        return out

    def memory(self, context: BrowserContext, page: Page) -> dict[str, Any]:
        cdp = context.new_cdp_session(page)
        try:
            cdp.send("HeapProfiler.collectGarbage")
            cdp.send("Performance.enable")
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        finally:
            cdp.detach()
        return {
            "js_heap": metrics.get("JSHeapUsedSize"),
            "nodes": metrics.get("Nodes"),
            "wasm": page.evaluate("() => window.__bench.wasmMemoryBytes()"),
        }


# ----- the run -----


PAGE_FILES = [
    "index.html",
    "main.py",
    "pyscript.toml",
    "directus_realtime",
    "page",
    "static/app.css",
]


def page_version() -> dict[str, Any]:
    """The commit the pages were measured at, and which page files differed from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", *argv], cwd=paths.ROOT, capture_output=True, text=True, timeout=10
        )
        return done.stdout.rstrip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", *PAGE_FILES, "bench/reference")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "changed": [line[3:] for line in changed.splitlines()]}


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "load": os.getloadavg()}


NGINX = "/usr/sbin/nginx"


@contextlib.contextmanager
def dist_site(info: dict[str, Any], say) -> Iterator[dict[str, Any]]:
    """``--dist``: make dist's build, with the guide's JS page beside it, served by Debian's
    nginx on a free loopback port (the sample config the build writes), and a Directus of its
    own that allows that origin (a copy of the main database: the seeded history included;
    Directus reads CORS_ORIGIN only at its start). Yields ``info`` pointing at them."""
    if not Path(NGINX).exists():
        raise SystemExit("--dist serves dist/ with nginx: `make nginx` installs it")
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp_name:
        tmp = Path(tmp_name)
        site = tmp / "site"
        build.build(site)
        shutil.copytree(BENCH / "reference", site / "bench" / "reference")
        shutil.copytree(paths.STATIC_RUNTIME / "sdk", site / "static" / "runtime" / "sdk")
        port = procs.free_port()
        origin = f"http://{paths.HOST}:{port}"
        say(f"dist/ built into {site}, served by nginx on {origin}/; starting its Directus…")
        server = directus.start_directus(
            procs.free_port(),
            directus.copy_of_main_db(tmp),
            {"CORS_ORIGIN": origin},
            log_file=tmp / "directus.log",
        )
        prefix = tmp / "nginx"
        prefix.mkdir()
        conf = build.nginx_main_conf(site, prefix, port)
        nginx = procs.spawn(
            [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            env=dict(os.environ),
            cwd=tmp,
            log_file=prefix / "error.log",
        )
        try:
            if not procs.wait_until(
                lambda: procs.http_status(origin + "/") is not None, timeout=20
            ):
                raise SystemExit("nginx did not start:\n" + procs.log_tail(prefix / "error.log"))
            yield {**info, "app_url": origin + "/", "directus_url": server.url}
        finally:
            procs.stop_pid(nginx.pid)
            directus.stop(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    # Start-up rounds: single warm loads spread widely within a run, and fewer rounds made the
    # median's ratio move between runs of the same code.
    parser.add_argument("--rounds", type=int, default=11, help="start-up rounds (cold + warm)")
    parser.add_argument("--creates", type=int, default=200, help="create-to-render samples")
    parser.add_argument("--history", type=int, default=10_000, help="history size")
    parser.add_argument("--history-rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the run")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    parser.add_argument(
        "--page",
        choices=["micropython", "pyodide"],
        default="micropython",
        help="which build of our page to measure: the page (index.html, MicroPython) or "
        "pyodide.html",
    )
    parser.add_argument(
        "--dist",
        action="store_true",
        help="serve make dist's build (and the JS page) from nginx instead of the page server; "
        "prints the report without rewriting the READMEs",
    )
    parser.add_argument(
        "--from-raw", type=Path, help=f"only render the report of a saved run (e.g. {RAW_FILE})"
    )
    args = parser.parse_args(argv)
    if args.dist:
        args.no_readme = True  # the READMEs' tables are the page server's
    if args.page == "pyodide":
        global OURS, TARGETS
        OURS = Target("py", "Pyodide page", "pyodide.html")
        TARGETS = (OURS, GUIDE)
    if args.from_raw:
        raw = json.loads(args.from_raw.read_text())
        args.history = raw["env"].get("history", args.history)
        return publish(raw, args, new_run=False)

    def say(msg: str) -> None:
        print(msg, flush=True)

    t0 = time.monotonic()
    info, started_here = stack.ensure_up(quiet=False)
    try:
        have = ensure_messages(info, args.history, say)
        env = machine() | page_version()
        say(f"load average {env['load'][0]:.2f} on {env['nproc']} cores")
        env["served_by"] = "nginx (make dist)" if args.dist else "the page server"
        with contextlib.ExitStack() as served:
            if args.dist:
                info = served.enter_context(dist_site(info, say))
            startup, latency, history, errors = measure(info, args, env, t0, say)
    finally:
        if started_here:
            stack.down()
    env["load_end"] = os.getloadavg()
    env["seconds"] = time.monotonic() - t0
    env["messages"] = have
    env["history"] = args.history
    env["latency_rounds"], env["creates"] = LATENCY_ROUNDS, args.creates
    raw = {"env": env, "startup": startup, "latency": latency, "history": history, "errors": errors}
    raw_file = RAW_FILE.with_name("bench-dist-last.json") if args.dist else RAW_FILE
    raw_file.parent.mkdir(parents=True, exist_ok=True)
    raw_file.write_text(json.dumps(raw, default=str))
    return publish(raw, args)


def measure(
    info: dict[str, Any], args: argparse.Namespace, env: dict[str, Any], t0: float, say
) -> tuple[Any, Any, Any, dict[str, list[str]]]:
    """The three measurements against ``info``'s page and Directus."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            runner = Runner(browser, info, args, say)
            if runner.intercept_reference:
                say(
                    f"note: the page server does not serve /{REFERENCE_PATH} (it started "
                    "before bench/ was allowed): the reference page's own two files are "
                    "handed to Chromium from disk"
                )
            budget = args.budget - (time.monotonic() - t0)
            start = time.monotonic()
            say(f"start-up, {args.rounds} rounds (cold + warm), alternating…")
            startup = runner.startup(args.rounds, start + 0.40 * budget)
            say(f"create-to-render, {args.creates} creates per page…")
            latency = runner.latency(args.creates, LATENCY_ROUNDS, start + 0.60 * budget)
            say(f"{args.history}-message history, {args.history_rounds} rounds…")
            history = runner.history(args.history, args.history_rounds, start + 0.90 * budget)
            env["chromium"] = browser.version
            env["intercepted"] = runner.intercept_reference
            errors = runner.errors
        finally:
            browser.close()
    return startup, latency, history, errors


def publish(raw: dict[str, Any], args: argparse.Namespace, new_run: bool = True) -> int:
    """Print the report; write its tables into bench/README.md and, for a new run, a line of
    its run history (and, for the MicroPython page, README.md's headline figures)."""
    text = report.render(
        raw["startup"], raw["latency"], raw["history"], raw["env"], raw.get("errors", {}), args
    )
    build = "Pyodide: pyodide.html" if args.page == "pyodide" else "MicroPython: index.html"
    text = text.replace("Python page", f"Python page ({build})")
    print()
    print(text)
    if not args.no_readme:
        report.write_readme(text, section=args.page)
        if new_run:
            found = report.figures(raw["startup"], raw["latency"], raw["history"])
            report.add_history(report.history_row(raw["env"], found, build.split(":")[0]))
            if args.page == "micropython":
                report.write_headline(report.headline(found))
        print(f"(written into {report.README}; every snapshot in {RAW_FILE})")
    return 0
