"""The stack as an operator runs it: ``python -m stack up|status|down`` in a private copy of the
checkout (a mode-700 folder, as ``mktemp -d`` makes), in both modes, with a ``directus.env``.

For each part in turn (each Directus instance, Redis, PostgreSQL, HAProxy, the page server):

- SIGKILL with the supervisor running: the part is back, with a new pid, with no command given
  (within 10 s);
- the supervisor stopped, SIGKILL again: ``up`` starts exactly that part (it says so, and no
  other part's pid changes);

and throughout, a page connected through the stack calls ``create_item`` around every kill:
each message is stored once and shown once (lost 0, doubled 0). ``directus.env`` reaches every
instance: the WebSocket heartbeat comes at its period, and the rate limiter answers
REQUESTS_EXCEEDED. ``down`` leaves no process behind.

Run with ``-s`` to see the time each part took to come back.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

from stack import cluster as cluster_stack
from stack import directus, paths, procs
from stack.core import PageServer
from stack.parts import Part
from tests.browser import report_on_failure
from tests.pools import reserve_block

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

PORTS = range(8300, 8350)
BACK_WITHIN = 10.0  # seconds: the supervisor's promise
HEARTBEAT = 3  # seconds: WEBSOCKETS_HEARTBEAT_PERIOD in the copy's directus.env
DIRECTUS_ENV = f"""\
# Directus's own settings for every instance of this stack.
RATE_LIMITER_ENABLED=true
# REST: per IP and second; every test request comes from 127.0.0.1, so a high one.
RATE_LIMITER_POINTS=5000
# WebSocket: per connection and second.
export RATE_LIMITER_WEBSOCKETS_POINTS="40"
WEBSOCKETS_HEARTBEAT_PERIOD={HEARTBEAT}
"""


def figures(line: str) -> None:
    print(f"\n[operations] {line}", flush=True)


class Checkout:
    """A copy of this checkout in a private folder, and its stack's command line."""

    def __init__(self, root: Path, directus_port: int, app_port: int) -> None:
        self.root = root
        self.var = root / "var"
        self.env = {
            **os.environ,
            "DIRECTUS_PORT": str(directus_port),
            "APP_PORT": str(app_port),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("DIRECTUS_ENV_FILE", None)

    def stack(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(paths.VENV / "bin" / "python"), "-m", "stack", *args],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def info(self) -> dict[str, Any]:
        return json.loads((self.var / "stack.json").read_text())

    def supervisor_pid(self) -> int | None:
        return procs.read_pid(self.var / "supervisor.pid")


def _copy_checkout(dest: Path) -> None:
    """The files git knows of (tracked and not ignored, as they are now), the runtime copied
    (the page server serves no symlink out of static/), node_modules and .venv linked."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=paths.ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = paths.ROOT / name
        if src.is_file() and not src.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    shutil.copytree(paths.STATIC_RUNTIME, dest / "static" / "runtime", symlinks=False)
    for linked in (".venv", "stack/directus/node_modules", "stack/runtime/node_modules"):
        (dest / linked).symlink_to((paths.ROOT / linked).resolve())


@pytest.fixture(scope="module")
def private_checkout() -> Iterator[Path]:
    if not cluster_stack.installed():
        pytest.skip(f"the cluster needs Debian's {cluster_stack.PACKAGES} (make test installs)")
    top = Path(tempfile.mkdtemp(prefix="directus-realtime-ops-"))
    try:
        assert stat.S_IMODE(top.stat().st_mode) == 0o700
        root = top / "checkout"
        root.mkdir()
        _copy_checkout(root)
        (root / "directus.env").write_text(DIRECTUS_ENV)
        yield root
    finally:
        # As root, PostgreSQL's folder is outside the copy; var/cluster/postgres points to it.
        link = top / "checkout" / "var" / "cluster" / "postgres"
        if link.is_symlink():
            shutil.rmtree(os.readlink(link), ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def checkout(private_checkout: Path, request: pytest.FixtureRequest) -> Iterator[Checkout]:
    """The copy on free ports; whatever runs at the end is stopped with ``down``."""
    base = reserve_block(PORTS, 6)  # cluster: HAProxy, 2 instances, Redis, PostgreSQL; page
    co = Checkout(private_checkout, base, base + 5)
    report_on_failure(
        request.node, "supervisor log", lambda: procs.log_tail(co.var / "supervisor.log", 80)
    )
    try:
        yield co
    finally:
        down = co.stack("down", timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr


def parts_of(co: Checkout, info: dict[str, Any]) -> list[Part]:
    """The copy's parts, as objects of this process that read its pid files."""
    page = PageServer(
        int(info["app_port"]), pid_file=co.var / "app.pid", log_file=co.var / "app.log"
    )
    if info["mode"] == "single":
        port = int(info["directus_port"])
        single = directus.DirectusPart(
            "directus",
            "Directus",
            port=port,
            pid_file=co.var / "directus.pid",
            log_file=co.var / "directus.log",
            environment=dict,
        )
        return [single, page]
    c = cluster_stack.Cluster(
        co.var / "cluster",
        cluster_stack.ClusterPorts.from_base(int(info["directus_port"])),
        app_port=int(info["app_port"]),
    )
    return [*c.parts, page]


def all_healthy(parts: list[Part]) -> bool:
    return all(p.pid() is not None and p.health()[0] for p in parts)


def wait_back(part: Part, old_pid: int, parts: list[Part], timeout: float) -> float:
    """Seconds from now until the part runs with a new pid and every part is healthy."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pid = part.pid()
        if pid is not None and pid != old_pid and all_healthy(parts):
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{part.label} was not back within {timeout:.0f} s")


def crash(part: Part) -> int:
    """SIGKILL of the part's own process (not its group); returns the pid."""
    pid = part.pid()
    assert pid is not None, f"{part.label} does not run"
    os.kill(pid, signal.SIGKILL)
    assert procs.wait_dead(pid, 10), f"{part.label} (pid {pid}) survived SIGKILL"
    return pid


# ----- directus.env ---------------------------------------------------------------------------


def pings_and_limit(ws_url: str, token: str) -> dict[str, Any]:
    """On one socket: the time between two pings of the server, then 120 messages at once and
    how many were refused with REQUESTS_EXCEEDED."""
    with ws_connect(ws_url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "access_token": token}))
        assert json.loads(ws.recv(timeout=10)).get("status") == "ok"
        pings: list[float] = []
        deadline = time.monotonic() + 3 * HEARTBEAT + 5
        while len(pings) < 2 and time.monotonic() < deadline:
            try:
                message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                break
            if message.get("type") == "ping":
                pings.append(time.monotonic())
                ws.send(json.dumps({"type": "pong"}))
        for uid in range(120):
            ws.send(json.dumps({"type": "ping", "uid": f"p{uid}"}))
        codes: Counter = Counter()
        end = time.monotonic() + 5
        while time.monotonic() < end and sum(codes.values()) < 120:
            try:
                message = json.loads(ws.recv(timeout=1))
            except TimeoutError:
                break
            if message.get("type") == "pong":
                codes["pong"] += 1
            elif message.get("status") == "error":
                codes[message["error"]["code"]] += 1
    return {"ping_gap": pings[1] - pings[0] if len(pings) == 2 else None, "answers": codes}


def check_directus_env(urls: list[str], token: str) -> None:
    results: dict[str, Any] = {}

    def probe(url: str) -> None:
        results[url] = pings_and_limit(url.replace("http://", "ws://") + "/websocket", token)

    threads = [threading.Thread(target=probe, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for url in urls:
        got = results[url]
        figures(f"directus.env at {url}: ping every {got['ping_gap']} s, answers {got['answers']}")
        # Directus's default period is 30 s: two pings within 3 periods show the setting.
        assert got["ping_gap"] is not None and got["ping_gap"] < 2 * HEARTBEAT, got
        assert got["answers"]["REQUESTS_EXCEEDED"] > 0, got


# ----- the page ---------------------------------------------------------------------------------


class Creates:
    """create_item calls of one page, each with its own text."""

    def __init__(self, page: Any, marker: str) -> None:
        self.page, self.marker = page, marker
        self.texts: list[str] = []
        self.label_of: dict[str, str] = {}

    async def fire(self, label: str) -> None:
        text = f"{self.marker} {len(self.texts):03d} {label}"
        self.texts.append(text)
        self.label_of[text] = f"c{len(self.texts)}"
        await self.page.fire_create(self.label_of[text], text, "operations")


async def settle(creates: Creates, kit: Any, url: str, token: str) -> None:
    """Every create_item stored once in Directus and shown once on the page."""
    wanted = set(creates.texts)

    def stored() -> list[dict]:
        return kit.rows_with_marker(url, token, creates.marker)

    async def all_stored() -> bool:
        rows = await asyncio.to_thread(stored)
        return wanted <= {r["text"] for r in rows}

    await kit.until(all_stored, 90, "every create_item stored", step=0.5)
    rows = await asyncio.to_thread(stored)
    counts = Counter(r["text"] for r in rows)
    ids = [r["id"] for r in rows]
    shown = await kit.quiesce([creates.page], ids, timeout=60)
    tally = kit.tally(creates.page.name, ids, shown[creates.page.name])
    figures(f"{len(creates.texts)} create_item: {tally.line()}")
    assert sorted(counts) == sorted(wanted) and set(counts.values()) == {1}, counts
    if tally.lost or tally.doubled:
        by_id = {r["id"]: r["text"] for r in rows}
        entries = await creates.page.creates()
        details = [(by_id[i], entries.get(creates.label_of[by_id[i]])) for i in tally.missing]
        raise AssertionError(f"{tally}: not shown: {details}; states {await creates.page.states()}")


# ----- the scenario -----------------------------------------------------------------------------


def operate(co: Checkout, mode: str, loop: Any, open_page: Any, kit: Any) -> None:
    t0 = time.monotonic()
    started = co.stack("up", *(["--cluster"] if mode == "cluster" else []), timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    info = co.info()
    assert info["mode"] == mode
    parts = parts_of(co, info)
    assert all_healthy(parts)
    figures(f"{mode}: up in {time.monotonic() - t0:.1f} s from a mode-700 folder")

    status = co.stack("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = json.loads(status.stdout)["parts"]
    assert [r["label"] for r in rows] == [p.label for p in parts]
    assert all(r["up"] and r["uptime"] is not None and r["health"] for r in rows), rows

    # The same file reached every instance.
    instances = [p for p in parts if isinstance(p, directus.DirectusPart)]
    check_directus_env([i.url for i in instances], info["token"])

    creates_of: dict[str, Any] = {}

    async def open_the_page() -> None:
        page = await open_page(f"page on the {mode} stack")
        await page.open(info["app_url"], url=info["directus_url"], token=info["token"])
        await page.wait_ready()
        creates_of["page"] = Creates(page, kit.new_marker(f"ops-{mode}"))
        await creates_of["page"].fire("first")

    loop.run(open_the_page(), 120)
    creates: Creates = creates_of["page"]

    times: dict[str, dict[str, float]] = {}
    for part in parts:
        # With the supervisor: back by itself.
        loop.run(creates.fire(f"before {part.name}"), 30)
        old = crash(part)
        loop.run(creates.fire(f"during {part.name}"), 30)
        back = wait_back(part, old, parts, timeout=BACK_WITHIN)
        times.setdefault(part.label, {})["supervisor"] = back

        # Without it: `up` starts exactly that part.
        sup = co.supervisor_pid()
        assert sup is not None and procs.is_alive(sup)
        os.kill(sup, signal.SIGTERM)
        assert procs.wait_dead(sup, 30), "the supervisor did not stop"
        others = {p.name: p.pid() for p in parts if p is not part}
        old = crash(part)
        loop.run(creates.fire(f"without supervisor {part.name}"), 30)
        down = co.stack("status")
        assert down.returncode == 3, down.stdout
        assert "no supervisor" in down.stdout and "down" in down.stdout, down.stdout
        t1 = time.monotonic()
        again = co.stack("up")
        took = time.monotonic() - t1
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"started: {part.label}\n" in again.stdout, again.stdout
        assert part.pid() not in (None, old)
        assert {p.name: p.pid() for p in parts if p is not part} == others
        assert all_healthy(parts)
        times[part.label]["make up"] = took
        figures(
            f"{mode}: {part.label} back in {times[part.label]['supervisor']:.1f} s "
            f"(supervisor), {took:.1f} s (up)"
        )

    loop.run(settle(creates, kit, info["directus_url"], info["token"]), 240)

    status = co.stack("status", "--json")
    restarts = {r["label"]: r["restarts"] for r in json.loads(status.stdout)["parts"]}
    figures(f"{mode}: restarts: {restarts}")
    # Each part: once by the supervisor, once by `up`.
    assert all(n >= 2 for n in restarts.values()), restarts
    log = (co.var / "supervisor.log").read_text()
    assert "killed by SIGKILL" in log

    pids = [p.pid() for p in parts] + [co.supervisor_pid()]
    stopped = co.stack("down", timeout=180)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not [pid for pid in pids if pid and procs.is_alive(pid)]
    assert not [p.label for p in parts if procs.port_in_use(p.port)]
    assert co.stack("status").returncode == 3
    figures(
        f"{mode}: seconds to come back: "
        + "; ".join(
            f"{label} {t['supervisor']:.1f} (supervisor) / {t['make up']:.1f} (up)"
            for label, t in times.items()
        )
    )


def test_single_stack_heals_each_part_with_and_without_its_supervisor(
    checkout, loop, open_page, kit
) -> None:
    operate(checkout, "single", loop, open_page, kit)


def test_cluster_heals_each_part_with_and_without_its_supervisor(
    checkout, loop, open_page, kit
) -> None:
    operate(checkout, "cluster", loop, open_page, kit)
