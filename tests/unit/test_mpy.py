"""The page server's MicroPython bytecode (stack/mpy.py), and the page's use of it."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from stack import mpy, pages, paths
from stack.pages import micropython_config

LIBRARY = paths.ROOT / "directus_realtime"
PAGE = paths.ROOT / "page"


def test_mpy_cross_is_the_release_of_the_pages_micropython():
    """.mpy files carry a format version; the compiler must match the runtime that loads them."""
    runtime = json.loads((paths.ROOT / "stack/runtime/package.json").read_text())["dependencies"]
    release = runtime["@micropython/micropython-webassembly-pyscript"].split("-")[0]
    assert f"MicroPython v{release} " in mpy.version()


def test_compiles_a_library_file_to_mpy_bytecode():
    data = mpy.compiled(LIBRARY / "protocol.py", "directus_realtime/protocol.py")
    assert data[:2] == b"M\x06"  # .mpy format 6
    assert b"directus_realtime/protocol.py" in data  # the name tracebacks show
    assert 0 < len(data) < (LIBRARY / "protocol.py").stat().st_size


def test_recompiles_when_the_source_changes(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("X = 1\n")
    first = mpy.compiled(source, "m.py")
    assert mpy.compiled(source, "m.py") is first  # cached
    source.write_text("X = 22222\n")
    os.utime(source, ns=(source.stat().st_mtime_ns + 10**9,) * 2)
    second = mpy.compiled(source, "m.py")
    assert second != first and mpy.etag(second) != mpy.etag(first)


def test_a_syntax_error_is_reported_with_its_line(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("x = 1\ndef broken(:\n")
    with pytest.raises(mpy.CompileError, match="line 2"):
        mpy.compiled(source, "bad.py")


def holds_code(source: Path) -> bool:
    """Whether a module has more than a docstring (a package __init__ without code need not be
    loaded: MicroPython imports its folder as a namespace package)."""
    body = ast.parse(source.read_text()).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def test_the_page_loads_main_py_and_every_browser_module_as_mpy():
    """main.py, the library's modules that run in a browser, and the page package, if any."""
    files = micropython_config((paths.ROOT / "index.html").read_text())["files"]
    browser_side = {"main.py"} | {
        p.relative_to(paths.ROOT).as_posix()
        for p in [*LIBRARY.rglob("*.py"), *PAGE.rglob("*.py")]
        if p.name not in ("cli.py", "cpython.py")  # CPython only
        and (p.name != "__init__.py" or holds_code(p))
    }
    assert {mpy.url_of(name) for name in browser_side} == set(files) == set(files.values())
    assert {mpy.source_of(url) for url in files} == browser_side


@pytest.mark.parametrize(
    ("source", "url"),
    [
        ("main.py", "./main.mpy"),
        ("directus_realtime/client.py", "./directus_realtime/client.mpy"),
        ("directus_realtime/transports/browser.py", "./directus_realtime/transports/browser.mpy"),
        ("page/__init__.py", "./page/__init__.mpy"),
        ("page/outbox.py", "./page/outbox.mpy"),
    ],
)
def test_a_source_and_its_bytecode_url_map_both_ways(source, url):
    assert mpy.url_of(source) == url
    assert mpy.source_of(url) == source
    assert mpy.source_of(url.removeprefix(".")) == source  # the path the server is asked for
    assert mpy.source_of(url + "?v=0123456789abcdef") == source


@pytest.mark.parametrize(
    "url",
    [
        "./main.py",
        "/nothing.mpy",
        "/page.mpy",  # a module named like a package
        "/main.py/x.mpy",
        "/stack/core.mpy",
        "/tests/conftest.mpy",
        "/directus_realtime/../stack/core.mpy",
        "/page/../stack/core.mpy",
        "/page/./x.mpy",
        "/page//x.mpy",
        "../main.mpy",
        "/static/runtime/x.mpy",
    ],
)
def test_no_other_url_is_bytecode_of_a_source(url):
    assert mpy.source_of(url) is None


def test_the_served_sources_are_main_py_the_library_and_the_page_package():
    assert mpy.SOURCES == {"main.py", "directus_realtime", "page"}


def test_main_py_compiles_to_mpy_as_a_module():
    """index.html imports main.py as bytecode: no top-level await (mpy-cross refuses it)."""
    data = mpy.compiled(paths.ROOT / "main.py", "main.py")
    assert data[:2] == b"M\x06" and b"main.py" in data


def test_warm_compiles_what_index_html_imports_ahead_of_the_first_request():
    names = pages.bytecode_sources(paths.ROOT)
    assert "main.py" in names and "directus_realtime/client.py" in names
    mpy.warm(paths.ROOT, names).join(timeout=60)
    for name in names:
        source = (paths.ROOT / name).resolve()
        assert mpy.compiled_in(paths.ROOT, name) is mpy._cache[source][1], name


def test_a_page_module_compiles_under_its_own_name(tmp_path):
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "tiny.py").write_text("def hello():\n    return 1\n")
    mpy.warm(tmp_path, ["page/tiny.py", "page/missing.py"]).join(timeout=60)
    data = mpy.compiled_in(tmp_path, "page/tiny.py")
    assert data[:2] == b"M\x06" and b"page/tiny.py" in data
    assert mpy._cache[(tmp_path / "page" / "tiny.py").resolve()][1] is data  # warmed
