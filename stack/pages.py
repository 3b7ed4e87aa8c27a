"""The page's HTML as the page server sends it: index.html with its bytecode URLs stamped, and
pyodide.html, the same page on Pyodide.

index.html is the page (MicroPython: it boots in a fraction of a second). The Pyodide build is
the same markup with Pyodide's runtime files preloaded and ``<script type="py">`` with
pyscript.toml instead of index.html's inline configuration; writing it from index.html at every
server start keeps one copy of the markup. The file is git-ignored.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

from . import mpy, snapshot

START, END = "<!-- interpreter:start -->", "<!-- interpreter:end -->"
# index.html's script tag with its inline JSON configuration (and the comment and the
# py-config just above it), and the Python in it, which imports main.py.
MICROPYTHON_SCRIPT = re.compile(
    r"(?:<!--(?:(?!-->).)*-->\s*)?"
    r"(?:<py-config>[^<]*</py-config>\s*)?"
    r"""<script type="mpy" config='(\{.*?\})'>(.*?)</script>""",
    re.DOTALL,
)
PYODIDE_SCRIPT = '<script type="py" config="./pyscript.toml">{code}</script>'
PYODIDE_PRELOADS = [
    '<link rel="modulepreload" href="./static/pyodide-loader.mjs">',
    '<link rel="modulepreload" href="./static/runtime/pyodide/pyodide.mjs">',
    '<link rel="preload" href="./static/runtime/pyodide/pyodide.asm.wasm" as="fetch" '
    'type="application/wasm" crossorigin>',
    '<link rel="preload" href="./static/runtime/pyodide/python_stdlib.zip" as="fetch" crossorigin>',
    '<link rel="preload" href="./static/runtime/wheels/pyodide_http-0.2.2-py3-none-any.whl" '
    'as="fetch" crossorigin>',
    '<link rel="preload" href="./python.zip" as="fetch" crossorigin>',
]
# Pyodide's memory snapshot (stack/snapshot.py), when there is one: static/pyodide-loader.mjs
# finds it by this link's attribute, and the download starts with the page.
SNAPSHOT_PRELOAD = '<link rel="preload" href="%s" as="fetch" crossorigin data-pyodide-snapshot>'
SNAPSHOT_DIR = "./static/runtime/pyodide/"


def pyodide_page(index_html: str, snapshot: str | None = None) -> str:
    """index.html's text, turned into the Pyodide build's; ``snapshot``: the file name of
    Pyodide's memory snapshot in static/runtime/pyodide/, linked for the page's loader."""
    if (
        len(MICROPYTHON_SCRIPT.findall(index_html)) != 1
        or START not in index_html
        or END not in index_html
    ):
        raise ValueError("index.html lacks the interpreter markers or the mpy script tag")
    head, rest = index_html.split(START, 1)
    _, tail = rest.split(END, 1)
    indent = head[head.rfind("\n") + 1 :]
    links = list(PYODIDE_PRELOADS)
    if snapshot is not None:
        links.append(SNAPSHOT_PRELOAD % (SNAPSHOT_DIR + snapshot))
    preloads = ("\n" + indent).join([START, *links, END])
    page = head + preloads + tail
    page = page.replace(
        "<title>Directus realtime, in Python</title>",
        "<title>Directus realtime, in Python (Pyodide)</title>",
    )
    return MICROPYTHON_SCRIPT.sub(pyodide_script, page)


def pyodide_script(found: re.Match) -> str:
    """index.html's script tag on Pyodide: the same Python, pyscript.toml's configuration."""
    return PYODIDE_SCRIPT.format(code=found.group(2))


def micropython_config(index_html: str) -> dict:
    """The PyScript configuration inline in index.html's ``<script type="mpy">``."""
    found = MICROPYTHON_SCRIPT.findall(index_html)
    if len(found) != 1:
        raise ValueError('index.html has no single <script type="mpy"> with a config')
    return json.loads(found[0][0])


def bytecode_sources(root: Path) -> list[str]:
    """The sources root/index.html imports as bytecode (its MicroPython config's [files]);
    none when there is no such page."""
    try:
        urls = micropython_config((root / "index.html").read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [name for name in map(mpy.source_of, urls) if name is not None]


# Where versioned() puts the bytecode preloads in index.html (within the interpreter markers, so
# the Pyodide build has none). `crossorigin` gives the preload the request mode of PyScript's
# fetch(); without it the browser would not reuse the preloaded response.
PRELOADS = "<!-- bytecode-preloads -->"
PRELOAD = '    <link rel="preload" href="%s" as="fetch" crossorigin>'

# The page's bytecode in one file: for each [files] entry its path in the interpreter's
# filesystem, a newline, its length, a newline and its bytes. PyScript fetches and writes each
# [files] entry on its own, at every load; the bundle is one entry, written
# out by BUNDLE_UNPACK (MicroPython) before main.py is imported.
BUNDLE_URL = "./bytecode.mpy"
BUNDLE_PATH = "./bytecode.bin"
BUNDLE_FILES = re.compile(r'"files": \{[^{}]*\}')
BUNDLE_UNPACK = (
    """\
def _unpack(bundle):
    import os
    with open(bundle, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        eol = data.find(b"\\n", at)
        size_end = data.find(b"\\n", eol + 1)
        path = str(data[at:eol], "utf-8")
        at = size_end + 1 + int(data[eol + 1 : size_end])
        folder = ""
        for part in path.split("/")[:-1]:
            folder += part
            try:
                os.mkdir(folder)
            except OSError:
                pass  # (there already)
            folder += "/"
        with open(path, "wb") as f:
            f.write(data[size_end + 1 : at])


_unpack("%s")
"""
    % BUNDLE_PATH
)


def bundle(index_html: str, root: Path) -> bytes:
    """The bundle of index_html's [files] (BUNDLE_URL), compiled from root's sources; raises
    mpy.CompileError or OSError when one does not compile, ValueError when an entry is not a
    source's bytecode."""
    out = bytearray()
    for url, path in micropython_config(index_html)["files"].items():
        name = mpy.source_of(url)
        if name is None:
            raise ValueError(f"{url} is not the bytecode of a source")
        data = mpy.compiled_in(root, name)
        out += b"%s\n%d\n" % (path.removeprefix("./").encode(), len(data)) + data
    return bytes(out)


def bundled(index_html: str, root: Path) -> str:
    """index.html as the page server sends it: the MicroPython config's [files] replaced by the
    bundle of them all, asked for as ``<BUNDLE_URL>?v=<its version>`` (kept by the browser for
    good: ``immutable``) and preloaded after the ``PRELOADS`` comment, so that it is fetched while
    the interpreter compiles; the Python unpacks it before main.py is imported. When a file does
    not compile or is not bytecode: each file on its own (``versioned``)."""
    try:
        data = bundle(index_html, root)
    except (mpy.CompileError, OSError, ValueError):
        return versioned(index_html, root)
    url = f"{BUNDLE_URL}?v={mpy.stamp(data)}"
    page = BUNDLE_FILES.sub(lambda _: f'"files": {{"{url}": "{BUNDLE_PATH}"}}', index_html, 1)
    page = page.replace(PRELOADS, "\n".join([PRELOADS, PRELOAD % url]), 1)
    code = MICROPYTHON_SCRIPT.search(page)
    start = code.start(2) + len(code.group(2)) - len(code.group(2).lstrip("\n"))
    return page[:start] + BUNDLE_UNPACK + page[start:]


def versioned(index_html: str, root: Path) -> str:
    """index.html with each bytecode file in the MicroPython config's [files] asked for as
    ``<url>?v=<version of its bytecode>``, which the server lets the browser keep without asking
    again (``immutable``). A file that does not compile keeps its plain URL, whose answer says
    why. After the ``PRELOADS`` comment, a preload of each stamped URL, so that the files are
    fetched while the interpreter compiles rather than after it."""
    preloads = []
    for url in micropython_config(index_html)["files"]:
        name = mpy.source_of(url)
        if name is None:
            continue
        try:
            stamp = mpy.stamp(mpy.compiled_in(root, name))
        except (mpy.CompileError, OSError):
            continue
        index_html = index_html.replace(f'"{url}": ', f'"{url}?v={stamp}": ', 1)
        preloads.append(PRELOAD % f"{url}?v={stamp}")
    if preloads:
        index_html = index_html.replace(PRELOADS, "\n".join([PRELOADS, *preloads]), 1)
    return index_html


# The Pyodide build's Python in one file (pyscript.toml's ``"./python.zip" = "./*"``, which
# PyScript unpacks into the interpreter's working folder): the sources of the modules index.html
# loads as bytecode, one list for both builds. One request instead of one per module: PyScript
# fetches and writes each [files] entry on its own, at every load.
PYTHON_ZIP = "./python.zip"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the same sources make the same bytes (and ETag)


def python_zip(root: Path) -> bytes:
    """PYTHON_ZIP's bytes: root's sources (``bytecode_sources``), stored at their paths."""
    names = bytecode_sources(root)
    if not names:
        raise ValueError(f"{root / 'index.html'} names no Python to load")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, (root / name).read_bytes())
    return out.getvalue()


def write_pyodide_page(root: Path) -> Path | None:
    """Write root/pyodide.html from root/index.html (only when it changes)."""
    index = root / "index.html"
    if not index.is_file():
        return None
    target = root / "pyodide.html"
    built = snapshot.current(root / "static" / "runtime" / "pyodide")
    text = pyodide_page(index.read_text(), built.name if built else None)
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)
    return target
