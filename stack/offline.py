"""The service worker as it goes out (/sw.js), for the page server and `make dist` alike.

static/sw.js is the worker; between its build markers go the build's ``VERSION`` and the URLs
it stores at install (``PRECACHE``): the MicroPython page's own files (index.html, config.json,
the stylesheet, the manifest and icons, the bytecode bundle's URL as index.html stamps it,
PyScript and MicroPython). Pyodide's files are stored only once a visit asks for them.

``VERSION`` is a hash of those files' contents: a deploy that changes any of them changes
/sw.js, and the browser installs the new worker, which replaces the cache. config.json does not
count (the page server's holds the local stack's token, which the worker never stores).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from . import pages

TEMPLATE = Path(__file__).resolve().parent.parent / "static" / "sw.js"
BUILD_BLOCK = re.compile(r"/\* build:start \*/\n.*?/\* build:end \*/\n", re.DOTALL)
# Files of the page the worker stores besides those index.html names.
PAGE_FILES = (
    "./",
    "./config.json",
    "./static/icons/icon-192.png",
    "./static/icons/icon-512.png",
)
LINKED = re.compile(r"""(?:href|src)="(\./[^"]+)\"""")
# PyScript's files and MicroPython, relative to static/runtime (what the MicroPython page loads;
# PyScript imports its chunks as it needs them).
RUNTIME_DIRS = ("pyscript/", "micropython/")


def precache_urls(index_html: str, runtime_files: Iterable[str]) -> list[str]:
    """What the worker stores at install: ``index_html``'s own links and bytecode URLs (as
    stamped), the page files above and the runtime's (``runtime_files``: paths under
    static/runtime)."""
    urls = list(PAGE_FILES)
    urls += LINKED.findall(index_html)
    urls += list(pages.micropython_config(index_html)["files"])
    urls += [
        "./static/runtime/" + name
        for name in sorted(runtime_files)
        if name.startswith(RUNTIME_DIRS) and name.endswith((".js", ".mjs", ".css", ".wasm"))
    ]
    return list(dict.fromkeys(url for url in urls if "/runtime/pyodide/" not in url))


def version(index_html: str, urls: list[str], read: Callable[[str], bytes]) -> str:
    """A hash of the page (``index_html``) and of every file of ``urls`` (``read(url)``: its
    bytes) but config.json; a stamped bytecode URL counts by its stamp."""
    digest = hashlib.sha256(index_html.encode())
    for url in urls:
        digest.update(url.encode() + b"\0")
        if url in ("./", "./config.json") or "?v=" in url:
            continue
        digest.update(hashlib.sha256(read(url)).digest())
    return digest.hexdigest()[:16]


def service_worker(index_html: str, runtime_files: Iterable[str], read) -> str:
    """static/sw.js with this build's VERSION and PRECACHE (``read(url)``: a file's bytes)."""
    urls = precache_urls(index_html, runtime_files)
    block = "/* build:start */\nconst VERSION = %s;\nconst PRECACHE = %s;\n/* build:end */\n" % (
        json.dumps(version(index_html, urls, read)),
        json.dumps(urls, indent=2),
    )
    text = TEMPLATE.read_text()
    if not BUILD_BLOCK.search(text):
        raise ValueError(f"{TEMPLATE} lacks its build markers")
    return BUILD_BLOCK.sub(lambda _: block, text, count=1)
