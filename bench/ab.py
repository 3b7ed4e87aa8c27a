"""Start-up only, builds of the page side by side: ``python -m bench.ab [options] TREE...``.

Each TREE is a checkout of the repository (``git archive <commit> | tar -x -C <dir>``, or the
working tree ``.``) with ``static/runtime`` in it (a symlink to this checkout's is enough). Each
is served on a free port of its own by its own code: the page server (``stack/serve.py``), or,
with ``--dist``, make dist's build of it (``stack/build.py``) from nginx. The guide's JS page
comes from the first TREE. All of them talk to the local stack's Directus, which must allow
their origins (``EXTRA_ORIGINS=http://127.0.0.1:8201,http://127.0.0.1:8202 make up``; see
``--ports``).

In each round, every TREE's page and the JS page load cold (a fresh browser context), then warm
(a second navigation in that context, 1 s after the first was subscribed), in an order that
rotates from round to round, as `make bench` measures start-up. The report gives, per page, the
median of ``navigation -> body[data-subscribed]`` with its range, the ratio to the JS page, the
steps of the warm loads, and the load average before and after. Every snapshot goes to
var/ab-last.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

import stack
from stack import build, paths, procs
from stack.browser import CHROMIUM, CHROMIUM_ARGS

from .run import INSTRUMENT, NGINX, REFERENCE_PATH, SETTLE_MS, SNAPSHOT_JS

RAW_FILE = paths.VAR / "ab-last.json"
TIMEOUT_MS = 30_000
SERVE = (
    "import sys; from pathlib import Path; from stack import serve; "
    "serve.make_server(int(sys.argv[1]), root=Path(sys.argv[2])).serve_forever()"
)
BUILD = (
    "import sys; from pathlib import Path; from stack import build; "
    "build.build(Path(sys.argv[1]), directus_url=sys.argv[2])"
)
JS = "JS page"


def python_in(tree: Path) -> dict[str, str]:
    """The environment that makes ``python -c`` import ``tree``'s own ``stack``."""
    return {**os.environ, "PYTHONPATH": str(tree)}


@contextlib.contextmanager
def served(
    trees: list[Path], ports: list[int], directus_url: str, dist: bool, tmp: Path
) -> Iterator[list[str]]:
    """Serve each tree on its port; yields their origins."""
    pids, origins = [], []
    try:
        for n, (tree, port) in enumerate(zip(trees, ports, strict=True)):
            if procs.port_in_use(port):
                raise SystemExit(f"port {port} is taken: an older server would answer for {tree}")
            log = tmp / f"server-{n}.log"
            if dist:
                site = tmp / f"site-{n}"
                done = procs.spawn(
                    [sys.executable, "-c", BUILD, str(site), directus_url],
                    env=python_in(tree),
                    cwd=tree,
                    log_file=log,
                )
                if done.wait(timeout=300) != 0:
                    raise SystemExit(f"building {tree} failed:\n" + procs.log_tail(log))
                if n == 0:  # the JS page beside the first
                    shutil.copytree(tree / "bench" / "reference", site / "bench" / "reference")
                    shutil.copytree(
                        tree / "static" / "runtime" / "sdk", site / "static" / "runtime" / "sdk"
                    )
                prefix = tmp / f"nginx-{n}"
                prefix.mkdir()
                conf = build.nginx_main_conf(site, prefix, port)
                argv = [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "e.log")]
                proc = procs.spawn(argv, env=dict(os.environ), cwd=tmp, log_file=log)
            else:
                argv = [sys.executable, "-c", SERVE, str(port), str(tree)]
                proc = procs.spawn(argv, env=python_in(tree), cwd=tree, log_file=log)
            pids.append(proc.pid)
            origin = f"http://{paths.HOST}:{port}"
            if not procs.wait_until(
                lambda url=origin + "/": procs.http_status(url) == 200, timeout=30
            ):
                raise SystemExit(f"{tree} is not served:\n" + procs.log_tail(log))
            origins.append(origin)
        yield origins
    finally:
        for pid in pids:
            procs.stop_pid(pid)


def steps(snap: dict[str, Any]) -> dict[str, float]:
    """The warm load's steps, ms from navigation start."""
    out: dict[str, float] = {}
    if snap.get("nav"):
        out["HTML received"] = snap["nav"]["responseEnd"]
    for entry in snap["resources"]:
        if entry["name"].split("?")[0].endswith("micropython.wasm"):
            out["micropython.wasm received"] = entry["end"]
    if snap["wasm"]:
        out["wasm instantiate called"] = snap["wasm"][0][1]
        out["wasm instantiated"] = snap["wasm"][0][2]
    for name, at in sorted(snap["userMarks"].items(), key=lambda item: item[1]):
        out[name] = at  # the page's own performance.mark()s
    if snap["sockets"]:
        socket = snap["sockets"][0]
        for key, label in (
            ("created", "WebSocket created"),
            ("open", "WebSocket open"),
            ("authOk", "auth ok"),
            ("init", "subscription init"),
        ):
            if socket.get(key) is not None:
                out[label] = socket[key]
    out["subscribed"] = snap["marks"]["subscribed"]
    return out


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--names", help="comma-separated labels of the trees")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--ports",
        default="8201,8202,8203,8204",
        help="the trees' ports: Directus refuses a WebSocket from an origin it does not allow "
        "(start the stack with EXTRA_ORIGINS=http://127.0.0.1:8201,... for them)",
    )
    parser.add_argument("--dist", action="store_true", help="make dist's build from nginx")
    parser.add_argument("--block-sw", action="store_true", help="no service workers")
    parser.add_argument(
        "--stop-sw",
        action="store_true",
        help="stop the service worker before the warm load (a later visit: the browser stops "
        "an idle worker after about 30 s)",
    )
    args = parser.parse_args(argv)
    # (so that the servers started here are stopped when this is stopped)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    trees = [tree.resolve() for tree in args.trees]
    names = args.names.split(",") if args.names else [str(tree) for tree in args.trees]
    ports = [int(port) for port in args.ports.split(",")][: len(trees)]
    info, started_here = stack.ensure_up(quiet=True)
    load_start = os.getloadavg()
    cold: dict[str, list[float]] = {name: [] for name in [*names, JS]}
    warm: dict[str, list[dict]] = {name: [] for name in [*names, JS]}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp_name,
            served(trees, ports, info["directus_url"], args.dist, Path(tmp_name)) as origins,
            sync_playwright() as playwright,
        ):
            query = urllib.parse.urlencode({"url": info["directus_url"], "token": info["token"]})
            pairs = zip(names, origins, strict=True)
            pages = {name: f"{origin}/?{query}" for name, origin in pairs}
            pages[JS] = f"{origins[0]}/{REFERENCE_PATH}?{query}"
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            order = list(pages)
            for n in range(args.rounds):
                turn = order[n % len(order) :] + order[: n % len(order)]
                for name in turn:
                    context = browser.new_context(
                        service_workers="block" if args.block_sw else "allow"
                    )
                    context.add_init_script(INSTRUMENT)
                    page = context.new_page()
                    try:
                        for kind in ("cold", "warm"):
                            page.goto(pages[name], wait_until="commit", timeout=TIMEOUT_MS)
                            page.wait_for_function(
                                "() => window.__bench && window.__bench.marks.subscribed",
                                timeout=TIMEOUT_MS,
                                polling=50,
                            )
                            snap = page.evaluate(SNAPSHOT_JS)
                            at = snap["marks"]["subscribed"]
                            if kind == "cold":
                                cold[name].append(at)
                            else:
                                warm[name].append(snap)
                            print(f"round {n + 1} {name:>12} {kind}: {at:.0f} ms", flush=True)
                            page.wait_for_timeout(SETTLE_MS)
                            if args.stop_sw:
                                cdp = context.new_cdp_session(page)
                                cdp.send("ServiceWorker.enable")
                                cdp.send("ServiceWorker.stopAllWorkers")
                                cdp.detach()
                    except PlaywrightError as error:
                        print(f"round {n + 1} {name}: {error.message.splitlines()[0]}")
                    finally:
                        context.close()
            browser.close()
    finally:
        if started_here:
            stack.down()
    load_end = os.getloadavg()
    RAW_FILE.write_text(json.dumps({"cold": cold, "warm": warm, "names": names}, default=str))

    js = [s["marks"]["subscribed"] for s in warm[JS]]
    js_median = statistics.median(js) if js else float("nan")
    print()
    print(
        f"{args.rounds} rounds, {'nginx (make dist)' if args.dist else 'page server'}"
        f"{', service workers blocked' if args.block_sw else ''}"
        f"{', service worker stopped before the warm load' if args.stop_sw else ''}; load average "
        f"{load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end"
    )
    print("| page | warm, median (range) | ratio | cold, median (range) |")
    print("|---|---:|---:|---:|")
    for name in [*names, JS]:
        values = [s["marks"]["subscribed"] for s in warm[name]]
        ratio = statistics.median(values) / js_median if values else float("nan")
        print(f"| {name} | {spread(values)} ms | {ratio:.2f}x | {spread(cold[name])} ms |")
    print()
    labels: list[str] = []
    for name in [*names, JS]:
        for snap in warm[name]:
            for label in steps(snap):
                if label not in labels:
                    labels.append(label)
    print("| warm step (median, ms) | " + " | ".join([*names, JS]) + " |")
    print("|---|" + "---:|" * (len(names) + 1))
    for label in labels:
        cells = []
        for name in [*names, JS]:
            found = [steps(s)[label] for s in warm[name] if label in steps(s)]
            cells.append(f"{statistics.median(found):.1f}" if found else "—")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
