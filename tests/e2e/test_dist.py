"""The page as `make dist` builds it (stack/build.py), served by stock web servers.

``dist/`` has no Python server behind it: it is served here by ``python3 -m http.server`` and by
Debian's nginx (``make nginx`` installs it; started on a free loopback port with its own
configuration, the sample ``nginx.conf`` that the build writes, under a temporary prefix, and
stopped by pid). The page is built with ``DIRECTUS_URL`` naming a Directus of its own, started
for this module on a copy of the main database with ``EXTRA_ORIGINS`` naming the two servers'
origins (Directus reads ``CORS_ORIGIN`` only at its start, so the stack's own Directus cannot
learn them). On both servers: connect, the guide's three messages via ``window.create_item``,
another client's message, bad input refused, and a write queued while Directus is down that
survives a reload. Opened from disk (``file://``), the page says it must be served.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import build, directus, procs
from stack.api import DirectusAPI
from tests.browser import BOOT_TIMEOUT_MS, STEP_TIMEOUT_MS, report_on_failure
from tests.engines import Engine, missing
from tests.pools import reserve_port

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

PORTS = range(8230, 8260)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
GUIDE_ITEMS = [
    ("Hello World!", "Ben"),
    ("Hello Universe!", "Rijk"),
    ("Hello Everyone Everywhere All At Once!", "Kevin"),
]
CSP_SPY = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def unique(text: str) -> str:
    return f"{text} [dist {secrets.token_hex(4)}]"


class Served:
    """A stock web server serving a folder on 127.0.0.1:port."""

    def __init__(self, name: str, port: int, argv: list[str], log: Path, cwd: Path) -> None:
        self.name = name
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.log = log
        self.argv, self.cwd = argv, cwd
        self.start()

    def start(self) -> None:
        self.proc = procs.spawn(self.argv, env=dict(os.environ), cwd=self.cwd, log_file=self.log)
        ok = procs.wait_until(
            lambda: procs.http_status(self.origin + "/") is not None,
            timeout=20,
            alive=lambda: self.proc.poll() is None,
        )
        if not ok:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; log:\n" + procs.log_tail(self.log))

    def stop(self) -> None:
        procs.stop_pid(self.proc.pid)


@pytest.fixture(scope="module")
def dist_site(stack, tmp_path_factory) -> Iterator[dict]:
    """dist/ built for its own Directus (EXTRA_ORIGINS: the two servers), served by
    ``python3 -m http.server`` and by nginx."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: `make nginx` installs it (make test does)")
    tmp = tmp_path_factory.mktemp("dist")
    ports = {"http.server": reserve_port(PORTS), "nginx": reserve_port(PORTS)}
    origins = ",".join(f"http://127.0.0.1:{port}" for port in ports.values())
    db = directus.copy_of_main_db(tmp)
    saved = os.environ.get("EXTRA_ORIGINS")
    os.environ["EXTRA_ORIGINS"] = origins  # what `EXTRA_ORIGINS=... make up` does
    try:
        cors = directus.app_origins(stack["app_port"])
    finally:
        if saved is None:
            del os.environ["EXTRA_ORIGINS"]
        else:
            os.environ["EXTRA_ORIGINS"] = saved
    assert all(origin in cors.split(",") for origin in origins.split(",")), cors
    # (in extra_env, so that a restart keeps it)
    server = directus.start_directus(
        reserve_port(PORTS), db, {"CORS_ORIGIN": cors}, log_file=tmp / "directus.log"
    )
    servers: dict[str, Served] = {}
    site = {"directus": server, "servers": servers, "tmp": tmp}
    try:
        dist = tmp / "site"
        build.build(dist, directus_url=server.url)
        http_port = ports["http.server"]
        servers["http.server"] = Served(
            "http.server",
            http_port,
            [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(dist)]
            + [str(http_port)],
            tmp / "http.server.log",
            tmp,
        )
        prefix = tmp / "nginx"
        prefix.mkdir()
        conf = build.nginx_main_conf(dist, prefix, ports["nginx"])
        servers["nginx"] = Served(
            "nginx",
            ports["nginx"],
            [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            prefix / "error.log",
            tmp,
        )
        site["dist"] = dist
        yield site
    finally:
        for served in servers.values():
            served.stop()  # (by pid: the one running now, when a test restarted it)
        directus.stop(site["directus"])  # (a test may have restarted it: the one running now)


@pytest.fixture(params=["http.server", "nginx"])
def site(request, dist_site) -> dict:
    """One of the two servers: {origin, directus (handle), dist, name}."""
    served = dist_site["servers"][request.param]
    for title, log in (
        ("directus log", dist_site["tmp"] / "directus.log"),
        (served.name, served.log),
    ):
        report_on_failure(request.node, title, lambda log=log: procs.log_tail(log))
    return {**dist_site, "origin": served.origin, "name": request.param}


def open_dist(open_page, site: dict, stack: dict, path: str = "", name: str = "dist"):
    """The built page on ``site``, pointed at its Directus with the demo token."""
    probe = open_page(f"{name} ({site['name']})")
    probe.goto(site["origin"] + "/" + path, url=site["directus"].url, token=stack["token"])
    return probe


def rest_create(url: str, token: str, item: dict) -> dict:
    return DirectusAPI(url, token).post("/items/messages", item)


def rows_with(url: str, token: str, text: str) -> list:
    return DirectusAPI(url, token).get(
        "/items/messages", filter={"text": {"_eq": text}}, fields=["id"]
    )


# ----- what make dist writes -----


def test_dist_holds_the_page_and_no_secret(dist_site, stack):
    dist = dist_site["dist"]
    index = (dist / "index.html").read_text()
    assert '<meta http-equiv="Content-Security-Policy"' in index
    assert "?v=" in index, "the bytecode URLs are not stamped"
    for url in json.loads(index.split("config='", 1)[1].split("'>", 1)[0])["files"]:
        assert (dist / url.split("?", 1)[0]).is_file(), url
    assert json.loads((dist / "config.json").read_text()) == {
        "directus_url": dist_site["directus"].url
    }
    for file in dist.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            if file.suffix == ".gz":
                data = gzip.decompress(data)  # (a secret must not hide in a compressed copy)
            for secret in (stack["token"], stack["admin_password"], stack["demo_password"]):
                assert secret.encode() not in data, f"{file} holds a secret"


# ----- served -----


def test_the_built_page_connects_and_shows_the_guide_messages(open_page, site, stack):
    probe = open_dist(open_page, site, stack)
    probe.context.add_init_script(CSP_SPY)
    probe.page.reload(wait_until="domcontentloaded")  # (the spy is installed from now on)
    probe.wait_ready()
    other = open_dist(open_page, site, stack, name="other")
    other.wait_ready()

    ids = []
    for text, user in GUIDE_ITEMS:
        result = probe.create_item(unique(text), user)
        assert result["ok"], result
        ids.append(result["value"]["id"])
    for page in (probe, other):
        for item_id in ids:
            page.wait_rendered(item_id)
    assert probe.console_count("Connection is open") >= 1

    # Another client's message (over REST) appears.
    item = rest_create(site["directus"].url, stack["token"], {"text": unique("REST"), "user": "X"})
    probe.wait_rendered(item["id"])

    # Bad input is refused, with an Error that names what is wrong.
    bad = probe.create_item("", "Ben")
    assert not bad["ok"] and bad["isError"] and "text" in bad["message"].lower(), bad
    assert probe.page.evaluate("window.__cspViolations") == []


def test_the_built_page_keeps_a_queued_write_across_a_reload(open_page, site, stack, dist_site):
    """Directus down: a write waits in the outbox (localStorage), a reload keeps it, and it is
    stored once when Directus is back."""
    probe = open_dist(open_page, site, stack, name="outbox")
    probe.wait_ready()
    server = dist_site["directus"]
    text = unique("queued before a reload")
    directus.stop(server)
    try:
        probe.page.wait_for_selector(
            '#status:not([data-state="connected"])', timeout=STEP_TIMEOUT_MS
        )
        probe.page.evaluate("(t) => { window.create_item(t, 'reload'); }", text)
        probe.page.wait_for_function(
            "t => (localStorage.getItem('directus-realtime:outbox') || '').includes(t)",
            arg=text,
            timeout=STEP_TIMEOUT_MS,
        )
        # (the page took the token out of its address: load it as it was first opened)
        probe.goto(site["origin"] + "/", url=server.url, token=stack["token"])
        assert text in (probe.page.evaluate("localStorage.getItem('directus-realtime:outbox')"))
    finally:
        dist_site["directus"] = directus.start_directus(
            server.port, server.db_file, log_file=server.log_file, extra_env=server.extra_env
        )
    probe.wait_ready(timeout=BOOT_TIMEOUT_MS)
    assert procs.wait_until(
        lambda: len(rows_with(server.url, stack["token"], text)) >= 1, timeout=20
    ), "the queued write was not stored"
    probe.page.wait_for_function(
        "localStorage.getItem('directus-realtime:outbox') === null", timeout=STEP_TIMEOUT_MS
    )
    assert len(rows_with(server.url, stack["token"], text)) == 1


def test_the_built_pyodide_page_connects(open_page, dist_site, stack):
    site = {**dist_site, "origin": dist_site["servers"]["nginx"].origin, "name": "nginx"}
    probe = open_dist(open_page, site, stack, path="pyodide.html", name="pyodide")
    probe.wait_ready()
    # Pyodide started from the memory snapshot that make dist copies and links (make setup
    # builds it): static/pyodide-loader.mjs leaves this mark.
    restored = "performance.getEntriesByName('pyodide-loader: restored from the snapshot').length"
    assert probe.page.evaluate(restored) == 1
    result = probe.create_item(unique("from the built Pyodide page"), "Ben")
    assert result["ok"], result
    probe.wait_rendered(result["value"]["id"])


def test_nginx_sends_the_headers_a_meta_tag_cannot_carry(dist_site):
    origin = dist_site["servers"]["nginx"].origin
    with urllib.request.urlopen(origin + "/") as response:
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-cache"
    with urllib.request.urlopen(origin + "/bytecode.mpy") as response:
        assert "immutable" in response.headers["Cache-Control"]
    with urllib.request.urlopen(origin + "/static/runtime/micropython/micropython.wasm") as r:
        assert r.headers["Content-Type"] == "application/wasm"


def test_nginx_sends_the_precompressed_copy_to_a_browser_that_accepts_gzip(dist_site):
    """make dist's .gz beside a stamped file goes out gzipped (the same bytes once
    decompressed, the same type); without Accept-Encoding the file goes out as it is."""
    origin, dist = dist_site["servers"]["nginx"].origin, dist_site["dist"]
    for path in ("static/runtime/micropython/micropython.wasm", "bytecode.mpy"):
        plain = (dist / path).read_bytes()
        assert (dist / (path + ".gz")).is_file(), path
        asked = urllib.request.Request(origin + "/" + path, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(asked) as r:
            assert r.headers["Content-Encoding"] == "gzip", path
            assert "Accept-Encoding" in r.headers["Vary"]
            assert "immutable" in r.headers["Cache-Control"]
            body = r.read()
        assert len(body) < len(plain) and gzip.decompress(body) == plain, path
        with urllib.request.urlopen(origin + "/" + path) as r:
            assert r.headers["Content-Encoding"] is None and r.read() == plain, path


def test_with_no_token_the_built_page_asks_for_one_for_its_directus(open_page, dist_site):
    """config.json names the Directus (never a token): the Settings panel opens with its URL."""
    probe = open_page("no token")
    probe.goto(dist_site["servers"]["http.server"].origin + "/")
    probe.page.wait_for_selector('#status[data-state="error"]', timeout=BOOT_TIMEOUT_MS)
    assert probe.page.input_value("#settings-form input[name=url]") == dist_site["directus"].url
    assert "static token" in probe.page.text_content("#status")
    assert not probe.sockets


# ----- opened from disk -----


def test_opened_from_disk_the_page_says_it_must_be_served(open_page, dist_site):
    probe = open_page("file")
    probe.page.goto((dist_site["dist"] / "index.html").as_uri())
    probe.page.wait_for_selector('#problem[data-kind="not-served"]', timeout=5_000)
    problem = probe.page.locator("#problem")
    assert problem.is_visible()
    text = problem.text_content()
    assert "http" in text and "make run" in text and "make dist" in text, text
    assert probe.page.locator("#status").get_attribute("data-state") == "error"
    probe.page.wait_for_timeout(1_000)
    assert not probe.sockets, "nothing connects from disk"
    assert probe.page.evaluate("typeof window.create_item") == "undefined"


def test_the_disk_notice_is_the_one_the_policy_allows(dist_site):
    """The inline script's hash in the meta policy is the script's own."""
    index = (dist_site["dist"] / "index.html").read_text()
    (hashed,) = build.script_hashes(index)
    meta = index.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    assert hashed in meta


# ----- offline, and a new deploy -----

CACHE_NAMES_JS = "async () => (await caches.keys()).filter(n => n.startsWith('directus-realtime-'))"
CACHED_TEXT_JS = """async () => {
  const out = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      out.push([request.url, await (await cache.match(request)).text()]);
    }
  }
  return out;
}"""


def nginx_site(dist_site: dict) -> dict:
    return {**dist_site, "origin": dist_site["servers"]["nginx"].origin, "name": "nginx"}


def wait_worker(probe) -> None:
    probe.page.wait_for_function("!!navigator.serviceWorker.controller", timeout=STEP_TIMEOUT_MS)


def offline_reload(probe) -> None:
    probe.context.set_offline(True)
    probe.page.reload(wait_until="domcontentloaded")
    probe.page.wait_for_function(
        "document.getElementById('status').dataset.state === 'offline'"
        " && typeof window.create_item === 'function'",
        timeout=BOOT_TIMEOUT_MS,
    )


def test_the_built_page_opens_offline_and_sends_a_write_made_there(open_page, dist_site, stack):
    site = nginx_site(dist_site)
    probe = open_dist(open_page, site, stack, name="offline")
    probe.wait_ready()
    wait_worker(probe)
    for url, body in probe.page.evaluate(CACHED_TEXT_JS):
        assert stack["token"] not in url + body, f"the token is in the cached {url}"

    offline_reload(probe)
    text = unique("written offline")
    probe.page.evaluate("(t) => { window.create_item(t, 'offline'); }", text)
    probe.page.wait_for_function(
        "t => (localStorage.getItem('directus-realtime:outbox') || '').includes(t)", arg=text
    )
    probe.context.set_offline(False)
    probe.wait_ready()
    url = dist_site["directus"].url
    assert procs.wait_until(lambda: len(rows_with(url, stack["token"], text)) >= 1, timeout=20)
    probe.page.wait_for_function(
        "localStorage.getItem('directus-realtime:outbox') === null", timeout=STEP_TIMEOUT_MS
    )
    assert len(rows_with(url, stack["token"], text)) == 1


PAGE_FILES = ("index.html", "pyscript.toml", "main.py", "page", "directus_realtime", "examples")


def page_tree_with_new_code(tmp: Path) -> Path:
    """A copy of the page's sources whose main.py marks the page as build B (new Python code,
    as a deploy brings), with the same runtime."""
    root = tmp / "root-b"
    root.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    for name in PAGE_FILES:
        source = build.paths.ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        else:
            shutil.copy(source, root / name)
    static = build.paths.ROOT / "static"
    shutil.copytree(static, root / "static", ignore=shutil.ignore_patterns("runtime"))
    (root / "static" / "runtime").symlink_to(static / "runtime")
    main = (root / "main.py").read_text()
    start = "async def start() -> None:\n"
    assert start in main
    (root / "main.py").write_text(
        main.replace(start, start + '    document.documentElement.dataset.build = "B"\n', 1)
    )
    return root


def test_a_new_deploy_reaches_the_next_visit_and_replaces_the_cache(
    open_page, dist_site, stack, tmp_path
):
    """Build A is cached by a visit; build B is deployed; the next visit runs B (online, then
    offline from the cache, which now holds B's files and nothing of A's)."""
    site = nginx_site(dist_site)
    dist, url = dist_site["dist"], dist_site["directus"].url
    probe = open_dist(open_page, site, stack, name="update")
    probe.wait_ready()
    wait_worker(probe)
    (cache_a,) = probe.page.evaluate(CACHE_NAMES_JS)
    assert probe.page.evaluate("document.documentElement.dataset.build") is None
    try:
        build.build(dist, directus_url=url, root=page_tree_with_new_code(tmp_path))
        probe.goto(site["origin"] + "/", url=url, token=stack["token"])  # the next visit
        probe.wait_ready()
        assert probe.page.evaluate("document.documentElement.dataset.build") == "B"
        # (the browser looks for a new worker at each navigation; it installs and takes over)
        names = []

        def only_a_new_cache() -> bool:
            names[:] = probe.page.evaluate(CACHE_NAMES_JS)
            return len(names) == 1 and names[0] != cache_a

        probe.wait_until(only_a_new_cache, what="the new build's cache alone")
        offline_reload(probe)
        assert probe.page.evaluate("document.documentElement.dataset.build") == "B"
    finally:
        probe.context.set_offline(False)
        build.build(dist, directus_url=url)  # build A again, for the other tests


def test_in_firefox_the_built_page_opens_with_its_server_gone(
    playwright, dist_site, stack, tmp_path
):
    """Firefox (tests/engines.py): nginx stopped and the browser offline, a reload comes from
    the service worker's cache; the write made there is stored once when both are back.
    (Firefox's offline emulation does not reach a worker's requests: nginx is really gone.)"""
    absent = missing("firefox")
    if absent:
        pytest.fail(f"firefox is not installed ({absent}): `make browsers` installs it")
    nginx, url = dist_site["servers"]["nginx"], dist_site["directus"].url
    engine = Engine("firefox", playwright, tmp_path)
    page = engine.session()
    try:
        query = urllib.parse.urlencode({"url": url, "token": stack["token"]})
        page.goto(nginx.origin + "/?" + query)
        page.wait_for(
            "return document.body.dataset.subscribed === 'true'"
            " && !!navigator.serviceWorker.controller;",
            timeout=BOOT_TIMEOUT_MS / 1000,
            what="subscribed, with the service worker in control",
        )
        page.set_offline(True)
        nginx.stop()
        try:
            page.reload()
            page.wait_for(
                "return document.getElementById('status').dataset.state === 'offline'"
                " && typeof window.create_item === 'function';",
                timeout=BOOT_TIMEOUT_MS / 1000,
                what="status offline and create_item, from the cache",
            )
            text = unique("written offline in Firefox")
            page.run("window.create_item(args[0], 'offline'); return true;", text)
            page.wait_for(
                "return (localStorage.getItem('directus-realtime:outbox') || '')"
                ".includes(args[0]);",
                text,
                what="the write in the outbox",
            )
        finally:
            nginx.start()
        page.set_offline(False)
        assert procs.wait_until(lambda: len(rows_with(url, stack["token"], text)) >= 1, timeout=20)
        page.wait_for(
            "return localStorage.getItem('directus-realtime:outbox') === null;",
            what="the outbox to empty",
        )
        assert len(rows_with(url, stack["token"], text)) == 1
    finally:
        page.close()
        engine.close()
