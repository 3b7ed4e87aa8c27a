"""The library's wheel (make wheel) in a Pyodide page of someone else's: PyScript unpacks it
with a [files] entry (``"./<wheel>" = "./*"``, no micropip: the local Pyodide has none), and the
page imports the library and builds a client. Served by ``python3 -m http.server`` from a
temporary folder holding the page, the wheel and a link to the runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stack import paths, procs
from tests.browser import BOOT_TIMEOUT_MS
from tests.pools import reserve_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>wheel</title>
<script type="module" src="./runtime/pyscript/core.js"></script></head>
<body><p id="out">waiting</p>
<script type="py" config='{{
  "interpreter": "./runtime/pyodide/pyodide.mjs",
  "files": {{"./{wheel}": "./*"}}
}}'>
from pyscript import document
import directus_realtime
from directus_realtime import create_directus, realtime, static_token
client = create_directus("https://x.directus.app").with_(static_token("T")).with_(realtime())
document.getElementById("out").textContent = "loaded " + type(client).__name__ + " " + (
    directus_realtime.websocket_url("https://x.directus.app"))
</script></body></html>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
        + ["--no-deps", "-w", str(root), str(paths.ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = root.glob("directus_realtime-*-py3-none-any.whl")
    (root / "index.html").write_text(PAGE.format(wheel=wheel.name))
    (root / "runtime").symlink_to(Path(paths.STATIC_RUNTIME).resolve())
    port = reserve_port(range(8280, 8300))
    proc = procs.spawn(
        [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(root), str(port)],
        env=dict(os.environ),
        cwd=root,
        log_file=root.parent / "http.server.log",
    )
    origin = f"http://127.0.0.1:{port}"
    assert procs.wait_until(lambda: procs.http_status(origin + "/") is not None, timeout=20)
    try:
        yield origin
    finally:
        procs.stop_pid(proc.pid)


def test_a_pyodide_page_loads_the_wheel(open_page, site):
    probe = open_page("wheel")
    probe.page.goto(site + "/")
    probe.page.wait_for_function(
        "document.getElementById('out').textContent !== 'waiting'", timeout=BOOT_TIMEOUT_MS
    )
    assert probe.page.text_content("#out") == (
        "loaded RealtimeClient wss://x.directus.app/websocket"
    ), probe.console_texts()
