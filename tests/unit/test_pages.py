"""pyodide.html is written from index.html: the same markup, Pyodide's runtime instead."""

from __future__ import annotations

import io
import json
import os
import tomllib
import zipfile

import pytest

from stack import mpy, paths
from stack.pages import (
    BUNDLE_PATH,
    BUNDLE_UNPACK,
    BUNDLE_URL,
    MICROPYTHON_SCRIPT,
    PYODIDE_SCRIPT,
    PYTHON_ZIP,
    bundle,
    bundled,
    bytecode_sources,
    micropython_config,
    pyodide_page,
    python_zip,
    versioned,
    write_pyodide_page,
)

INDEX = (paths.ROOT / "index.html").read_text()


def body(html: str) -> str:
    return html.split("<body>", 1)[1]


def test_the_pyodide_page_is_index_html_on_pyodide():
    page = pyodide_page(INDEX)
    code = MICROPYTHON_SCRIPT.search(INDEX).group(2)
    assert "from main import start" in code and "await start()" in code
    assert PYODIDE_SCRIPT.format(code=code) in page and not MICROPYTHON_SCRIPT.search(page)
    assert "micropython" not in page and ".mpy" not in page
    assert "./static/runtime/pyodide/pyodide.asm.wasm" in page
    assert "./static/runtime/pyodide/python_stdlib.zip" in page
    assert body(page) == MICROPYTHON_SCRIPT.sub(PYODIDE_SCRIPT.format(code=code), body(INDEX))
    # The same Python on both: what index.html gets as bytecode, pyodide.html as source (in
    # one zip).
    pyodide_files = tomllib.loads((paths.ROOT / "pyscript.toml").read_text())["files"]
    assert pyodide_files[PYTHON_ZIP] == "./*"
    assert not [f for f in pyodide_files if f.endswith(".py")]
    mpy_files = micropython_config(INDEX)["files"]
    with zipfile.ZipFile(io.BytesIO(python_zip(paths.ROOT))) as archive:
        assert {f[2:-4] for f in mpy_files} == {n[:-3] for n in archive.namelist()}
        assert archive.read("main.py") == (paths.ROOT / "main.py").read_bytes()


def test_index_html_without_its_markers_is_refused():
    with pytest.raises(ValueError):
        pyodide_page(INDEX.replace("<!-- interpreter:start -->", ""))
    with pytest.raises(ValueError):
        pyodide_page(MICROPYTHON_SCRIPT.sub("", INDEX))


def test_write_pyodide_page_writes_once_and_follows_index(tmp_path):
    (tmp_path / "index.html").write_text(INDEX)
    target = write_pyodide_page(tmp_path)
    assert target.read_text() == pyodide_page(INDEX)
    changed = INDEX.replace("<h1>Messages</h1>", "<h1>Chat</h1>")
    (tmp_path / "index.html").write_text(changed)
    write_pyodide_page(tmp_path)
    assert "<h1>Chat</h1>" in target.read_text()
    assert write_pyodide_page(tmp_path / "nowhere") is None


def preloaded(html: str) -> set[str]:
    import re

    return set(re.findall(r'<link rel="preload" href="([^"]+)" as="fetch"', html))


def test_the_page_preloads_its_interpreter_and_not_its_python():
    """The bytecode files come stamped with their version (``versioned``) and a warm load reads
    them from the cache with no request; preloading them made MicroPython start 20-40 ms later
    (measured). Pyodide takes longer to start: its build preloads its runtime and the archives
    of its [files] (the pyodide-http wheel, the page's Python in one zip)."""
    files = micropython_config(INDEX)["files"]
    assert files and all(url.endswith(".mpy") for url in files)
    assert preloaded(INDEX) and all("/runtime/micropython/" in f for f in preloaded(INDEX))

    pyodide_files = set(tomllib.loads((paths.ROOT / "pyscript.toml").read_text())["files"])
    archives = {f for f in pyodide_files if f.endswith((".whl", ".zip"))}
    assert archives == pyodide_files and archives <= preloaded(pyodide_page(INDEX))
    assert all("/runtime/pyodide/" in f or f in archives for f in preloaded(pyodide_page(INDEX)))


def test_the_server_stamps_each_bytecode_url_with_its_version(tmp_path):
    """What the page server sends as index.html: [files] keys (URLs) get ``?v=``, the paths in
    the interpreter's filesystem stay as they are, and the stamp follows the bytecode."""
    page = versioned(INDEX, paths.ROOT)
    files = micropython_config(page)["files"]
    assert set(files.values()) == set(micropython_config(INDEX)["files"].values())
    for url, path in files.items():
        plain, _, stamp = url.partition("?v=")
        assert plain == path
        assert stamp == mpy.stamp(mpy.compiled_in(paths.ROOT, mpy.source_of(plain)))

    # Each stamped URL is also preloaded (fetched while the interpreter compiles), the same
    # request PyScript's fetch() then makes.
    for url in files:
        assert f'<link rel="preload" href="{url}" as="fetch" crossorigin>' in page

    # No source to compile (here: an empty root): the plain URL, whose answer says why.
    assert versioned(INDEX, tmp_path) == INDEX


def test_the_page_gets_its_bytecode_in_one_stamped_preloaded_bundle(tmp_path):
    """What the page server and make dist send: [files] is one bundle of every file's bytecode,
    under the path each file had, stamped with the bundle's version and preloaded; the Python
    writes the files out before main.py is imported."""
    page = bundled(INDEX, paths.ROOT)
    data = bundle(INDEX, paths.ROOT)
    url = f"{BUNDLE_URL}?v={mpy.stamp(data)}"
    assert micropython_config(page)["files"] == {url: BUNDLE_PATH}
    assert f'<link rel="preload" href="{url}" as="fetch" crossorigin>' in page
    code = MICROPYTHON_SCRIPT.search(page).group(2)
    assert code.strip().startswith(BUNDLE_UNPACK.strip())
    assert code.strip().endswith("from main import start\nawait start()")

    unpacked, at = {}, 0
    while at < len(data):
        eol = data.index(b"\n", at)
        size_end = data.index(b"\n", eol + 1)
        end = size_end + 1 + int(data[eol + 1 : size_end])
        unpacked["./" + data[at:eol].decode()] = data[size_end + 1 : end]
        at = end
    files = micropython_config(INDEX)["files"]
    assert unpacked == {
        path: mpy.compiled_in(paths.ROOT, mpy.source_of(url)) for url, path in files.items()
    }

    # The unpacking, run by CPython on the bundle: the same files, folders made as needed.
    (tmp_path / BUNDLE_PATH).write_bytes(data)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(BUNDLE_UNPACK, {})
    finally:
        os.chdir(cwd)
    for path, content in unpacked.items():
        assert (tmp_path / path).read_bytes() == content

    # A file that does not compile (here: an empty root): each file on its own, plain URLs.
    assert bundled(INDEX, tmp_path) == INDEX


def with_files(index_html: str, urls: list[str]) -> str:
    """index.html whose MicroPython [files] are ``urls``."""
    config = micropython_config(index_html)
    config["files"] = {url: url for url in urls}
    found = MICROPYTHON_SCRIPT.search(index_html)
    start, end = found.span(1)
    return index_html[:start] + json.dumps(config, indent=2) + index_html[end:]


def test_the_page_packages_bytecode_is_stamped_too(tmp_path):
    """A module of page/ is stamped like the library's; a URL that is no source's bytecode
    (or a source that does not compile) keeps its plain URL."""
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "tiny.py").write_text("X = 1\n")
    (tmp_path / "page" / "broken.py").write_text("def broken(:\n")
    (tmp_path / "main.py").write_text("async def start():\n    pass\n")
    urls = ["./main.mpy", "./page/tiny.mpy", "./page/broken.mpy", "./stack/core.mpy"]
    index = with_files(INDEX, urls)
    (tmp_path / "index.html").write_text(index)
    assert bytecode_sources(tmp_path) == ["main.py", "page/tiny.py", "page/broken.py"]

    stamped = micropython_config(versioned(index, tmp_path))["files"]
    tiny = mpy.stamp(mpy.compiled_in(tmp_path, "page/tiny.py"))
    main = mpy.stamp(mpy.compiled_in(tmp_path, "main.py"))
    assert stamped == {
        f"./main.mpy?v={main}": "./main.mpy",
        f"./page/tiny.mpy?v={tiny}": "./page/tiny.mpy",
        "./page/broken.mpy": "./page/broken.mpy",
        "./stack/core.mpy": "./stack/core.mpy",
    }


def test_bytecode_sources_of_a_root_without_a_page_is_empty(tmp_path):
    assert bytecode_sources(tmp_path) == []
    (tmp_path / "index.html").write_text("<html></html>")
    assert bytecode_sources(tmp_path) == []


def test_the_pyodide_builds_python_zip_is_the_same_bytes_for_the_same_sources(tmp_path):
    (tmp_path / "index.html").write_text(INDEX)
    for name in bytecode_sources(paths.ROOT):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((paths.ROOT / name).read_bytes())
    first = python_zip(tmp_path)
    assert python_zip(tmp_path) == first
    (tmp_path / "main.py").write_text("# changed\n")
    changed = python_zip(tmp_path)
    assert changed != first
    with zipfile.ZipFile(io.BytesIO(changed)) as archive:
        assert archive.read("main.py") == b"# changed\n"
    with pytest.raises(ValueError):
        python_zip(tmp_path / "nowhere")
